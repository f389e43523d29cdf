"""Requests about personal data: filed from the My data page, answered by system
administrators on their queue page."""

from __future__ import annotations

from flask import Blueprint, Flask, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length

from appliance.errors import Conflict, InvalidInput
from appliance.models import DataRequestKind, DataRequestStatus
from appliance.web.auth.principal import client_info, page_principal
from appliance.web.context import current_services
from appliance.web.files import ID
from appliance.workflow.data_requests import ANSWERERS, MAX_TEXT, answer_request, file_request, open_requests

bp = Blueprint("privacy_pages", __name__)

KIND_LABELS = {
    DataRequestKind.CORRECTION: _l("Correct my data"),
    DataRequestKind.DELETION: _l("Delete my data (where the law allows)"),
    DataRequestKind.CONSENT_WITHDRAWAL: _l("Withdraw a consent"),
}
STATUS_LABELS = {
    DataRequestStatus.OPEN: _l("open"),
    DataRequestStatus.DONE: _l("done"),
    DataRequestStatus.REFUSED: _l("refused"),
}


class DataRequestForm(FlaskForm):
    kind = SelectField(
        _l("What you ask for"),
        choices=[SelectChoice(kind.value, label) for kind, label in KIND_LABELS.items()],
        validators=[InputRequired()],
    )
    text = TextAreaField(_l("Details"), validators=[InputRequired(), Length(max=MAX_TEXT)])


class AnswerForm(FlaskForm):
    outcome = SelectField(
        _l("Outcome"),
        choices=[
            SelectChoice(DataRequestStatus.DONE.value, _l("Done")),
            SelectChoice(DataRequestStatus.REFUSED.value, _l("Refused, for the reason given")),
        ],
        validators=[InputRequired()],
    )
    answer = TextAreaField(_l("Answer to the person"), validators=[InputRequired(), Length(max=MAX_TEXT)])


@bp.post("/me/requests")
@login_required  # type: ignore[misc]
def file() -> Response:
    form = DataRequestForm()
    if not form.validate_on_submit():
        flash(_("Choose what you ask for and describe it."), "error")
    else:
        try:
            request = file_request(
                current_services().workflow,
                page_principal(),
                client_info(),
                DataRequestKind(form.kind.data),
                form.text.data or "",
            )
        except (InvalidInput, Conflict) as refused:
            flash(str(refused), "error")
        else:
            flash(
                _(
                    "Your request was filed. It is answered by %(date)s.",
                    date=request.due_at.strftime("%Y-%m-%d"),
                )
            )
    return redirect(url_for("me_pages.my_data") + "#my-requests", code=303)


@bp.get("/admin/data-requests")
@login_required  # type: ignore[misc]
def queue() -> str:
    requests = open_requests(current_services().workflow, page_principal())
    return render_template("privacy/queue.html", requests=requests, form=AnswerForm())


@bp.post(f"/admin/data-requests/<{ID}:request_id>/answer")
@login_required  # type: ignore[misc]
def answer(request_id: int) -> Response:
    form = AnswerForm()
    if not form.validate_on_submit():
        flash(_("Choose an outcome and write the answer."), "error")
    else:
        try:
            answer_request(
                current_services().workflow,
                page_principal(),
                client_info(),
                request_id,
                DataRequestStatus(form.outcome.data),
                form.answer.data or "",
            )
        except (InvalidInput, Conflict) as refused:
            flash(str(refused), "error")
        else:
            flash(_("The answer was recorded and the person told."))
    return redirect(url_for(".queue"), code=303)


def install_privacy_pages(app: Flask) -> None:
    app.register_blueprint(bp)
    app.context_processor(
        lambda: {
            "data_request_roles": ANSWERERS,
            "data_request_kinds": KIND_LABELS,
            "data_request_statuses": STATUS_LABELS,
        }
    )
