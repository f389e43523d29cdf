"""The New-contract pages: upload a PDF with its title, message, deadline and routing (a
draft), then add the parties (people found in the directory, or seals) with their fields
placed on the rendered pages, and send it. Only the draft's initiator sees the edit page."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, time
from typing import BinaryIO, cast

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required
from werkzeug.wrappers import Response

from appliance.errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from appliance.models import ContractState, PartyKind, Routing
from appliance.web.after_response import follow_up
from appliance.web.auth.principal import client_info, page_principal
from appliance.web.context import current_services
from appliance.web.contracts.forms import NewContractForm, PartyForm
from appliance.web.contracts.problems import problem_text
from appliance.web.errors import status_for
from appliance.web.files import ID, allow_upload_body, upload_sha256
from appliance.workflow.drafts import (
    NewContract,
    NewField,
    NewParty,
    add_party,
    create_contract,
    find_people,
    list_seals,
    remove_party,
    send_contract,
)
from appliance.workflow.idempotency import IdempotencyKey
from appliance.workflow.queries import get_contract
from appliance.workflow.store import CONTRACT_NOT_FOUND
from appliance.workflow.views import ContractView

bp = Blueprint("draft_pages", __name__)

CONTRACT = f"/contracts/<{ID}:contract_id>"
SEARCH_LIMIT = 20


@bp.route("/contracts/new", methods=["GET", "POST"])
@login_required  # type: ignore[misc]
def new() -> Response:
    allow_upload_body()
    form = NewContractForm()
    error = None
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                view = _create(form)
            except (InvalidInput, Conflict, Forbidden) as refused:
                error = problem_text(refused)
            else:
                return redirect(url_for(".edit", contract_id=view.id), code=303)
        elif form.not_excluded.errors:
            error = str(form.not_excluded.errors[0])
        else:
            error = _("Choose a PDF and give the contract a title.")
    form.attempt.data = secrets.token_urlsafe(24)
    page = render_template(
        "contracts/new.html", form=form, error=error, limits=current_services().config.uploads
    )
    return Response(page, status=400 if error else 200, mimetype="text/html")


def _create(form: NewContractForm) -> ContractView:
    upload = cast(BinaryIO, form.file.data.stream)
    deadline = (
        datetime.combine(form.deadline.data, time(23, 59, 59), tzinfo=UTC) if form.deadline.data else None
    )
    spec = NewContract(
        title=form.title.data or "",
        filename=form.file.data.filename or "",
        not_excluded=bool(form.not_excluded.data),
        routing=Routing(form.routing.data),
        message=form.message.data or None,
        deadline=deadline,
    )
    content = f"{upload_sha256(upload)}|{spec.title}|{spec.routing}|{spec.message}|{deadline}"
    return create_contract(
        current_services().workflow,
        page_principal(),
        client_info(),
        spec,
        upload,
        idempotency=IdempotencyKey(
            key=f"page-{form.attempt.data}",
            operation="create",
            request_sha256=hashlib.sha256(content.encode()).hexdigest(),
        ),
    )


@bp.get(f"{CONTRACT}/edit")
@login_required  # type: ignore[misc]
def edit(contract_id: int) -> Response:
    return _render_edit(contract_id)


def _render_edit(contract_id: int, party_form: PartyForm | None = None, status: int = 200) -> Response:
    principal = page_principal()
    workflow = current_services().workflow
    view = get_contract(workflow, principal, client_info(), contract_id)
    if view.initiator_id != principal.user_id or view.state is not ContractState.DRAFT:
        return redirect(url_for("contract_pages.show", contract_id=contract_id), code=303)
    query = (request.args.get("q") or "").strip()
    people, search_error = [], None
    if query:
        try:
            people = find_people(workflow, principal, query[:100], limit=SEARCH_LIMIT)
        except Unavailable as unavailable:
            search_error = unavailable.public
    page = render_template(
        "contracts/edit.html",
        contract=view,
        form=party_form or PartyForm(formdata=None, username=request.args.get("username") or None),
        people=people,
        query=query,
        search_error=search_error,
        seals=list_seals(workflow, principal),
    )
    return Response(page, status=status, mimetype="text/html")


@bp.post(f"{CONTRACT}/parties")
@login_required  # type: ignore[misc]
def add(contract_id: int) -> Response:
    form = PartyForm()
    if not form.validate_on_submit():
        flash(_("Check the party's fields: every number is needed."), "error")
        return _render_edit(contract_id, form, 400)
    kind = PartyKind(form.kind.data)
    spec = NewParty(
        kind=kind,
        fields=(
            NewField(
                page=form.page.data or 1,
                x=form.x.data or 0.0,
                y=form.y.data or 0.0,
                width=form.width.data or 0.0,
                height=form.height.data or 0.0,
            ),
        ),
        username=(form.username.data or "").strip() or None if kind is PartyKind.PERSON else None,
        seal_id=form.seal_id.data if kind is PartyKind.SEAL else None,
        routing_order=form.routing_order.data or 1,
    )
    try:
        add_party(current_services().workflow, page_principal(), client_info(), contract_id, spec)
    except (InvalidInput, Conflict, Forbidden) as refused:
        flash(problem_text(refused), "error")
        return _render_edit(contract_id, form, status_for(refused))
    except NotFound as missing:
        if missing.public == CONTRACT_NOT_FOUND:
            raise
        flash(problem_text(missing), "error")  # no such person or seal
        return _render_edit(contract_id, form, 404)
    flash(_("The party is added."), "info")
    return redirect(url_for(".edit", contract_id=contract_id), code=303)


@bp.post(f"{CONTRACT}/parties/<{ID}:party_id>/remove")
@login_required  # type: ignore[misc]
def remove(contract_id: int, party_id: int) -> Response:
    # the CSRF token is checked for every POST (Flask-WTF's CSRFProtect) before this runs
    try:
        remove_party(current_services().workflow, page_principal(), client_info(), contract_id, party_id)
        flash(_("The party is removed."), "info")
    except (Conflict, Forbidden) as refused:
        flash(problem_text(refused), "error")
    return redirect(url_for(".edit", contract_id=contract_id), code=303)


@bp.post(f"{CONTRACT}/send")
@login_required  # type: ignore[misc]
def send(contract_id: int) -> Response:
    workflow = current_services().workflow
    try:
        follow_up(workflow, send_contract(workflow, page_principal(), client_info(), contract_id))
    except (InvalidInput, Conflict, Forbidden) as refused:
        flash(problem_text(refused), "error")
        return redirect(url_for(".edit", contract_id=contract_id), code=303)
    flash(_("The contract is sent. The first parties are asked to sign."), "info")
    return redirect(url_for("contract_pages.show", contract_id=contract_id), code=303)
