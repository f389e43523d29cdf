"""The organisation admin's seal pages: the organisation's seals, creating one (drawn or
uploaded), and per seal its certificate (apply, renew, revoke), who applies it, who approves
its use, whose contracts the appliance seals itself, its
state (enabled, disabled, retired) and its usage log."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField
from werkzeug.wrappers import Response
from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length

from appliance.errors import Conflict, Forbidden, InvalidInput, NotFound
from appliance.models import SealKind
from appliance.permissions import Action, roles_for
from appliance.signing.errors import PdfRejected
from appliance.web.auth.principal import client_info, page_principal
from appliance.web.context import current_services
from appliance.web.contracts.forms import ConsentForm, consent_of
from appliance.web.contracts.problems import problem_text, rejection_text
from appliance.web.files import ID
from appliance.workflow.approvals import MAX_APPROVERS, set_seal_approvers
from appliance.workflow.certificates import certificate_agreement
from appliance.workflow.context import WorkflowContext
from appliance.workflow.seal_keepers import set_seal_keepers
from appliance.workflow.seal_policy import set_seal_automation
from appliance.workflow.seal_usage import seal_usage_log
from appliance.workflow.seals import (
    OrganisationReason,
    SealState,
    apply_seal_certificate,
    create_seal,
    list_organisation_seals,
    organisation_seal,
    renew_seal_certificate,
    revoke_seal_certificate,
    seal_image,
    set_seal_state,
)
from appliance.workflow.templates import list_templates

bp = Blueprint("seal_pages", __name__)
SEAL = f"/admin/seals/<{ID}:seal_id>"

KIND_LABELS = {
    SealKind.OFFICIAL: _l("Official seal"),
    SealKind.CONTRACT: _l("Contract seal"),
    SealKind.FINANCE: _l("Finance seal"),
    SealKind.INVOICE: _l("Invoice seal"),
    SealKind.HR: _l("HR seal"),
    SealKind.LEGAL_REPRESENTATIVE: _l("Legal representative's seal"),
}
STATE_LABELS = {
    SealState.ACTIVE: _l("In use"),
    SealState.DISABLED: _l("Disabled"),
    SealState.RETIRED: _l("Retired"),
}
REASON_LABELS = {
    OrganisationReason.KEY_COMPROMISE: _l("The key may be in someone else's hands"),
    OrganisationReason.INFORMATION_CHANGED: _l("The organisation's information has changed"),
    OrganisationReason.NO_LONGER_NEEDED: _l("The seal is no longer needed"),
    OrganisationReason.DISSOLVED: _l("The organisation was dissolved"),
    OrganisationReason.MERGED: _l("The organisation merged into another"),
}


class NewSealForm(FlaskForm):
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=64)])
    kind = SelectField(
        _l("Kind"),
        choices=[SelectChoice(kind.value, label) for kind, label in KIND_LABELS.items()],
        default=SealKind.CONTRACT.value,
    )
    image = FileField(
        _l("Stamp image (PNG with transparency; leave empty to have the round seal drawn)"),
        validators=[FileAllowed(["png"], _l("Upload a PNG file."))],
    )


class ApproversForm(FlaskForm):
    usernames = TextAreaField(
        _l("Approvers, one per line, in the order they decide: a login name, or a directory group's DN")
    )


class KeepersForm(FlaskForm):
    usernames = TextAreaField(_l("Keepers' login names, one per line"))
    groups = TextAreaField(_l("Directory groups (DN), one per line"))


class AutomationForm(FlaskForm):
    initiators = TextAreaField(_l("Initiators' login names, one per line"))
    """The authorised templates come as the checked `template` boxes."""


class StateForm(FlaskForm):
    state = SelectField(choices=[SelectChoice(s.value, label) for s, label in STATE_LABELS.items()])


class RevokeSealForm(FlaskForm):
    reason = SelectField(
        _l("Reason"),
        choices=[SelectChoice(r.value, label) for r, label in REASON_LABELS.items()],
        validators=[InputRequired()],
    )


@bp.get("/admin/seals")
@login_required  # type: ignore[misc]
def seals() -> str:
    rows = list_organisation_seals(current_services().workflow, page_principal())
    return render_template("seals/list.html", seals=rows, form=NewSealForm())


@bp.post("/admin/seals")
@login_required  # type: ignore[misc]
def create() -> Response:
    form = NewSealForm()
    if not form.validate_on_submit():
        flash(_("Give the seal a name of up to 64 characters, and a PNG image or none."), "error")
        return redirect(url_for(".seals"), code=303)
    upload = form.image.data
    image = upload.read() if upload and upload.filename else None
    try:
        seal_id = create_seal(
            current_services().workflow,
            page_principal(),
            client_info(),
            form.name.data or "",
            image,
            kind=SealKind(form.kind.data),
        )
    except PdfRejected as refused:  # the image checks share the upload's refusals
        flash(rejection_text(refused), "error")
        return redirect(url_for(".seals"), code=303)
    except InvalidInput as refused:
        flash(problem_text(refused), "error")
        return redirect(url_for(".seals"), code=303)
    flash(_("The seal is created. Apply for its certificate before it can be used."), "info")
    return redirect(url_for(".seal", seal_id=seal_id), code=303)


@bp.get(SEAL)
@login_required  # type: ignore[misc]
def seal(seal_id: int) -> str:
    principal = page_principal()
    workflow = current_services().workflow
    view = organisation_seal(workflow, principal, seal_id)
    now = current_services().clock.now()
    renewable = view.renewable_from is not None and now >= view.renewable_from
    return render_template(
        "seals/show.html",
        seal=view,
        usage=seal_usage_log(workflow, principal, seal_id),
        agreement=certificate_agreement(str(get_locale()))
        if not view.certificate_usable or renewable
        else None,
        renewable=renewable,
        now=now,
        consent_form=ConsentForm(),
        revoke_form=RevokeSealForm(),
        approvers_form=ApproversForm(),
        automation_form=AutomationForm(),
        keepers_form=KeepersForm(),
        seal_templates=[
            t for t in list_templates(workflow, principal) if any(r.seal_id == seal_id for r in t.roles)
        ],
        state_form=StateForm(),
        max_approvers=MAX_APPROVERS,
    )


@bp.get(f"{SEAL}/image.png")
@login_required  # type: ignore[misc]
def image(seal_id: int) -> Response:
    return Response(seal_image(current_services().workflow, page_principal(), seal_id), mimetype="image/png")


@bp.post(f"{SEAL}/approvers")
@login_required  # type: ignore[misc]
def approvers(seal_id: int) -> Response:
    form = ApproversForm()
    names = _lines(form.usernames.data)
    return _act(
        seal_id,
        form,
        lambda workflow: set_seal_approvers(workflow, page_principal(), client_info(), seal_id, names),
        _("The approvers are saved; contracts sent from now on wait for them."),
    )


@bp.post(f"{SEAL}/keepers")
@login_required  # type: ignore[misc]
def keepers(seal_id: int) -> Response:
    form = KeepersForm()
    names = _lines(form.usernames.data)
    groups = _lines(form.groups.data)
    return _act(
        seal_id,
        form,
        lambda workflow: set_seal_keepers(
            workflow, page_principal(), client_info(), seal_id, usernames=names, groups=groups
        ),
        _("The keepers are saved; they apply the seal from now on, on contracts already sent too."),
    )


@bp.post(f"{SEAL}/automation")
@login_required  # type: ignore[misc]
def automation(seal_id: int) -> Response:
    form = AutomationForm()
    names = _lines(form.initiators.data)
    template_ids = [int(value) for value in request.form.getlist("template") if value.isdecimal()]
    return _act(
        seal_id,
        form,
        lambda workflow: set_seal_automation(
            workflow, page_principal(), client_info(), seal_id, initiators=names, template_ids=template_ids
        ),
        _("Saved: the appliance applies the seal itself to those contracts, with no approval."),
    )


@bp.post(f"{SEAL}/state")
@login_required  # type: ignore[misc]
def state(seal_id: int) -> Response:
    form = StateForm()
    return _act(
        seal_id,
        form,
        lambda workflow: set_seal_state(
            workflow, page_principal(), client_info(), seal_id, SealState(form.state.data)
        ),
        _("The seal's state is changed."),
    )


@bp.post(f"{SEAL}/certificate")
@login_required  # type: ignore[misc]
def apply(seal_id: int) -> Response:
    form = ConsentForm()
    return _act(
        seal_id,
        form,
        lambda workflow: apply_seal_certificate(
            workflow, page_principal(), client_info(), seal_id, consent_of(form)
        ),
        _("The seal's certificate is issued; the seal can be used."),
    )


@bp.post(f"{SEAL}/certificate/renew")
@login_required  # type: ignore[misc]
def renew(seal_id: int) -> Response:
    form = ConsentForm()
    return _act(
        seal_id,
        form,
        lambda workflow: renew_seal_certificate(
            workflow, page_principal(), client_info(), seal_id, consent_of(form)
        ),
        _("The seal's certificate is renewed; the old one signs no more."),
    )


@bp.post(f"{SEAL}/certificate/revoke")
@login_required  # type: ignore[misc]
def revoke(seal_id: int) -> Response:
    form = RevokeSealForm()
    return _act(
        seal_id,
        form,
        lambda workflow: revoke_seal_certificate(
            workflow, page_principal(), client_info(), seal_id, OrganisationReason(form.reason.data)
        ),
        _("The seal's certificate is revoked and the revocation list published."),
    )


def _lines(text: str | None) -> list[str]:
    """A textarea's entries: one per line, blank lines dropped."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _act(seal_id: int, form: FlaskForm, action: Callable[[WorkflowContext], object], done: str) -> Response:
    """Run a seal page's form `action`; its outcome, or why not, shows on the seal's page."""
    if not form.validate_on_submit():
        flash(_("The form was incomplete; nothing was changed."), "error")
    else:
        try:
            action(current_services().workflow)
            flash(done, "info")
        except (Conflict, Forbidden, InvalidInput, NotFound) as refused:
            flash(problem_text(refused), "error")
    return redirect(url_for(".seal", seal_id=seal_id), code=303)


def install_seal_pages(app: Flask) -> None:
    app.register_blueprint(bp)
    app.context_processor(
        lambda: {
            "seal_admin_roles": roles_for(Action.MANAGE_SEALS),
            "seal_kinds": KIND_LABELS,
            "seal_states": STATE_LABELS,
        }
    )
