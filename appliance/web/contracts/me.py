"""My data (and requests about it), my certificates (with the agreement to get one) and the
Verify page for any PDF."""

from __future__ import annotations

import base64
import json
from typing import BinaryIO, cast

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from werkzeug.wrappers import Response
from wtforms import SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired

from appliance.errors import Conflict
from appliance.signing.errors import PdfRejected
from appliance.web.auth.principal import client_info, page_principal
from appliance.web.context import current_services
from appliance.web.contracts.forms import ConsentForm, consent_of
from appliance.web.contracts.problems import problem_text, rejection_text
from appliance.web.files import ID, allow_upload_body, attachment_disposition
from appliance.web.privacy import DataRequestForm
from appliance.workflow.certificates import (
    HolderReason,
    apply_personal_certificate,
    certificate_agreement,
    certificate_standing,
    list_my_certificates,
    my_certificate_pem,
    renew_personal_certificate,
    revoke_my_certificate,
)
from appliance.workflow.data_requests import my_requests
from appliance.workflow.personal_data import export_my_personal_data, my_personal_data
from appliance.workflow.verification import verify_document

bp = Blueprint("me_pages", __name__)


class RevokeForm(FlaskForm):
    reason = SelectField(
        _l("Reason"),
        choices=[
            SelectChoice(HolderReason.KEY_COMPROMISE.value, _l("The key may be in someone else's hands")),
            SelectChoice(HolderReason.INFORMATION_CHANGED.value, _l("My information in it has changed")),
            SelectChoice(HolderReason.NO_LONGER_NEEDED.value, _l("I no longer need it")),
        ],
        validators=[InputRequired()],
    )


SIGN_IN_LABELS = {
    "auth.login": _l("Signed in"),
    "auth.login_failed": _l("Sign-in refused"),
    "auth.locked_out": _l("Sign-in blocked after failed attempts"),
    "auth.logout": _l("Signed out"),
}


class VerifyForm(FlaskForm):
    file = FileField(_l("PDF file"), validators=[FileRequired()])


@bp.get("/me")
@login_required  # type: ignore[misc]
def my_data() -> str:
    principal = page_principal()
    workflow = current_services().workflow
    data = my_personal_data(workflow, principal)
    labels = {action: str(label) for action, label in SIGN_IN_LABELS.items()}
    return render_template(
        "contracts/my_data.html",
        data=data,
        roles=sorted(principal.roles),
        sign_in_labels=labels,
        requests=my_requests(workflow, principal),
        request_form=DataRequestForm(),
        request_days=current_services().config.privacy.request_working_days,
    )


@bp.get("/me/export.json")
@login_required  # type: ignore[misc]
def my_data_export() -> Response:
    services = current_services()
    data = export_my_personal_data(services.workflow, page_principal(), client_info())
    filename = f"my-data-{services.clock.now():%Y%m%d}.json"
    return Response(
        data.to_json(),
        mimetype="application/json",
        headers={"Content-Disposition": attachment_disposition(filename)},
    )


@bp.get("/certificates")
@login_required  # type: ignore[misc]
def certificates() -> str:
    principal = page_principal()
    workflow = current_services().workflow
    rows = list_my_certificates(workflow, principal)
    now = current_services().clock.now()
    standing = certificate_standing(workflow, principal)
    renewable = standing.renewable_from is not None and now >= standing.renewable_from
    return render_template(
        "contracts/certificates.html",
        certificates=rows,
        now=now,
        standing=standing,
        renewable=renewable,
        agreement=certificate_agreement(str(get_locale())) if standing.usable is None or renewable else None,
        consent_form=ConsentForm(),
        revoke_form=RevokeForm(),
    )


@bp.post("/certificates")
@login_required  # type: ignore[misc]
def apply() -> Response:
    apply_with_consent()
    return redirect(url_for(".certificates"), code=303)


def apply_with_consent() -> None:
    """Issue the person's certificate if the posted agreement form accepts it; flash the outcome.
    The certificates page and the sign page both offer the agreement."""
    form = ConsentForm()
    if not form.validate_on_submit():
        flash(_("Tick the box to accept the certificate agreement."), "error")
    else:
        try:
            apply_personal_certificate(
                current_services().workflow, page_principal(), client_info(), consent_of(form)
            )
            flash(_("Your signing certificate is issued. You can sign now."), "info")
        except Conflict as refused:
            flash(problem_text(refused), "error")


@bp.post("/certificates/renew")
@login_required  # type: ignore[misc]
def renew() -> Response:
    form = ConsentForm()
    if not form.validate_on_submit():
        flash(_("Tick the box to accept the certificate agreement."), "error")
    else:
        try:
            renew_personal_certificate(
                current_services().workflow, page_principal(), client_info(), consent_of(form)
            )
            flash(_("Your certificate is renewed. The new one signs from now on."), "info")
        except Conflict as refused:
            flash(problem_text(refused), "error")
    return redirect(url_for(".certificates"), code=303)


@bp.post(f"/certificates/<{ID}:certificate_id>/revoke")
@login_required  # type: ignore[misc]
def revoke(certificate_id: int) -> Response:
    form = RevokeForm()
    if not form.validate_on_submit():
        flash(_("Choose why you revoke the certificate."), "error")
    else:
        try:
            revoke_my_certificate(
                current_services().workflow,
                page_principal(),
                client_info(),
                certificate_id,
                HolderReason(form.reason.data),
            )
            flash(_("The certificate is revoked and can no longer sign."), "info")
        except Conflict as refused:
            flash(problem_text(refused), "error")
    return redirect(url_for(".certificates"), code=303)


@bp.get(f"/certificates/<{ID}:certificate_id>.pem")
@login_required  # type: ignore[misc]
def download_certificate(certificate_id: int) -> Response:
    filename, pem = my_certificate_pem(current_services().workflow, page_principal(), certificate_id)
    return Response(
        pem,
        mimetype="application/x-pem-file",
        headers={"Content-Disposition": attachment_disposition(filename)},
    )


@bp.route("/verify", methods=["GET", "POST"])
@login_required  # type: ignore[misc]
def verify() -> Response:
    allow_upload_body()
    form = VerifyForm()
    report, error, status = None, None, 200
    if request.method == "POST":
        if not form.validate_on_submit():
            error, status = _("Choose a PDF file to check."), 400
        else:
            try:
                report = verify_document(
                    current_services().workflow, page_principal(), cast(BinaryIO, form.file.data.stream)
                )
            except PdfRejected as refused:
                error, status = _("This file cannot be checked: %(why)s", why=rejection_text(refused)), 422
    report_json = (
        base64.b64encode(json.dumps(report.to_json(), ensure_ascii=False, indent=2).encode()).decode()
        if report is not None
        else None
    )
    page = render_template(
        "contracts/verify.html", form=form, report=report, report_json=report_json, error=error
    )
    return Response(page, status=status, mimetype="text/html")
