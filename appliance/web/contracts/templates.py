"""The template pages: save a draft as a template, the organisation's templates, and starting
a contract from one by naming the people of its roles (left as a draft, or sent at once)."""

from __future__ import annotations

from datetime import UTC, datetime, time

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import BooleanField, DateField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

from appliance.errors import Conflict, Forbidden, InvalidInput, NotFound
from appliance.models import ContractState, PartyKind
from appliance.web.after_response import follow_up
from appliance.web.auth.principal import client_info, page_principal
from appliance.web.context import current_services
from appliance.web.contracts.forms import NewContractForm
from appliance.web.contracts.problems import problem_text
from appliance.web.errors import status_for
from appliance.web.files import ID
from appliance.workflow.drafts import MAX_MESSAGE, MAX_TITLE
from appliance.workflow.templates import (
    MAX_NAME,
    TEMPLATE_NOT_FOUND,
    StartFromTemplate,
    get_template,
    list_templates,
    retire_template,
    save_template,
    start_from_template,
)

bp = Blueprint("template_pages", __name__)
TEMPLATE = f"/templates/<{ID}:template_id>"


class SaveTemplateForm(FlaskForm):
    name = StringField(_l("Template name"), validators=[InputRequired(), Length(max=MAX_NAME)])
    """Each party's role label comes as `label-<party id>`: the number of parties varies."""


class StartForm(FlaskForm):
    title = StringField(_l("Title"), validators=[InputRequired(), Length(max=MAX_TITLE)])
    message = TextAreaField(
        _l("Message to the parties (empty: the template's)"), validators=[Optional(), Length(max=MAX_MESSAGE)]
    )
    deadline = DateField(_l("Deadline (end of the day, UTC)"), validators=[Optional()])
    not_excluded = NewContractForm.not_excluded
    send = BooleanField(_l("Send it for signing at once"))
    """Each person role's login name comes as `role-<role id>`."""


@bp.get("/templates")
@login_required  # type: ignore[misc]
def templates() -> str:
    rows = list_templates(current_services().workflow, page_principal())
    return render_template("contracts/templates.html", templates=rows)


@bp.get(TEMPLATE)
@login_required  # type: ignore[misc]
def template(template_id: int) -> Response:
    return _render(template_id, StartForm(formdata=None))


def _render(template_id: int, form: StartForm, *, error: str | None = None, status: int = 200) -> Response:
    view = get_template(current_services().workflow, page_principal(), template_id)
    people = {role.id: request.form.get(f"role-{role.id}", "") for role in view.roles}
    page = render_template("contracts/template.html", template=view, form=form, people=people, error=error)
    return Response(page, status=status, mimetype="text/html")


@bp.post(f"{TEMPLATE}/contracts")
@login_required  # type: ignore[misc]
def start(template_id: int) -> Response:
    form = StartForm()
    if not form.validate_on_submit():
        problem = form.not_excluded.errors[0] if form.not_excluded.errors else _("Give the contract a title.")
        return _render(template_id, form, error=str(problem), status=400)
    workflow = current_services().workflow
    roles = get_template(workflow, page_principal(), template_id).roles
    deadline = (
        datetime.combine(form.deadline.data, time(23, 59, 59), tzinfo=UTC) if form.deadline.data else None
    )
    spec = StartFromTemplate(
        title=form.title.data or "",
        not_excluded=bool(form.not_excluded.data),
        people={
            role.id: (request.form.get(f"role-{role.id}") or "").strip()
            for role in roles
            if role.kind is PartyKind.PERSON
        },
        deadline=deadline,
        message=form.message.data or None,
        send=bool(form.send.data),
    )
    try:
        view = start_from_template(workflow, page_principal(), client_info(), template_id, spec)
    except (InvalidInput, Conflict, Forbidden) as refused:
        return _render(template_id, form, error=problem_text(refused), status=status_for(refused))
    except NotFound as missing:
        if missing.public == TEMPLATE_NOT_FOUND:
            raise
        return _render(template_id, form, error=problem_text(missing), status=404)  # nobody of that name
    if view.state is ContractState.DRAFT:
        flash(_("The draft is ready: check it and send it."), "info")
        return redirect(url_for("draft_pages.edit", contract_id=view.id), code=303)
    follow_up(workflow, view)
    flash(_("The contract is sent. The first parties are asked to sign."), "info")
    return redirect(url_for("contract_pages.show", contract_id=view.id), code=303)


@bp.post(f"{TEMPLATE}/retire")
@login_required  # type: ignore[misc]
def retire(template_id: int) -> Response:
    try:
        retire_template(current_services().workflow, page_principal(), client_info(), template_id)
        flash(_("The template is retired: no new contract starts from it."), "info")
    except Forbidden as refused:
        flash(problem_text(refused), "error")
    return redirect(url_for(".template", template_id=template_id), code=303)


@bp.post(f"/contracts/<{ID}:contract_id>/template")
@login_required  # type: ignore[misc]
def save(contract_id: int) -> Response:
    form = SaveTemplateForm()
    if not form.validate_on_submit():
        flash(_("Give the template a name of up to %(count)d characters.", count=MAX_NAME), "error")
        return redirect(url_for("draft_pages.edit", contract_id=contract_id), code=303)
    labels = {
        int(key.removeprefix("label-")): value.strip()
        for key, value in request.form.items()
        if key.startswith("label-") and key.removeprefix("label-").isdecimal() and value.strip()
    }
    try:
        view = save_template(
            current_services().workflow,
            page_principal(),
            client_info(),
            contract_id,
            form.name.data or "",
            labels,
        )
    except (InvalidInput, Conflict, Forbidden) as refused:
        flash(problem_text(refused), "error")
        return redirect(url_for("draft_pages.edit", contract_id=contract_id), code=303)
    flash(_("The template is saved. Your organisation can start contracts from it."), "info")
    return redirect(url_for(".template", template_id=view.id), code=303)
