"""The privacy notice (accepted before anything else, at each new major version) and requests
about personal data: filed from the My data page, answered by system administrators on their
queue page."""

from __future__ import annotations

from flask import Blueprint, Flask, flash, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import BooleanField, HiddenField, SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length

from appliance.errors import Conflict, InvalidInput
from appliance.models import DataRequestKind, DataRequestStatus
from appliance.web.auth.principal import client_info, page_principal, session_user
from appliance.web.auth.views import safe_next
from appliance.web.context import current_services
from appliance.web.files import ID
from appliance.workflow.data_requests import ANSWERERS, MAX_TEXT, answer_request, file_request, open_requests
from appliance.workflow.privacy_notice import (
    accept_privacy_notice,
    major_version,
    needs_acceptance,
    privacy_notice,
)

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


class AcceptNoticeForm(FlaskForm):
    version = HiddenField(validators=[InputRequired()])
    sha256 = HiddenField(validators=[InputRequired()])
    locale = HiddenField(validators=[InputRequired()])
    agree = BooleanField(_l("I have read the privacy notice and accept it."), validators=[InputRequired()])


ACCEPTED_KEY = "privacy_notice"
"""Session key: the major version the person has accepted, so pages need not ask the database."""
_UNGATED = frozenset({"privacy_pages.notice", "privacy_pages.accept", "static"})
_UNGATED_BLUEPRINTS = frozenset({"auth", "inbox", "webapp", "discovery"})
"""Signing in and out, the account's own pages (tokens, freezing it, sign-in locks) and the
notices about it never wait for the privacy notice: the account must stay in reach. Nor do
what the browser and the app fetch by themselves (the web app's manifest and worker, the
discovery document)."""


@bp.get("/privacy")
def notice() -> str:
    """The notice: for anyone to read, and for a signed-in person who has not accepted it, to accept."""
    shown = privacy_notice(str(get_locale()))
    user = session_user()
    pending = user is not None and needs_acceptance(current_services().workflow, user.principal.user_id)
    form = AcceptNoticeForm(version=shown.version, sha256=shown.sha256, locale=shown.locale)
    return render_template(
        "privacy/notice.html", notice=shown, form=form, pending=pending, next=request.args.get("next", "")
    )


@bp.post("/privacy/accept")
@login_required  # type: ignore[misc]
def accept() -> Response:
    form = AcceptNoticeForm()
    next_page = safe_next(request.args.get("next")) or url_for("auth.account")
    if not form.validate_on_submit():
        flash(_("Tick the box to accept the privacy notice."), "error")
        return redirect(url_for(".notice", next=next_page), code=303)
    try:
        accept_privacy_notice(
            current_services().workflow,
            page_principal(),
            client_info(),
            form.version.data or "",
            form.sha256.data or "",
            form.locale.data or "",
        )
    except InvalidInput as refused:
        flash(str(refused), "error")
        return redirect(url_for(".notice", next=next_page), code=303)
    except Conflict:
        pass  # accepted in another tab meanwhile: the same result
    session[ACCEPTED_KEY] = major_version()
    return redirect(next_page, code=303)


def _ask_for_the_notice() -> Response | None:
    """Before any page of a signed-in person who has not accepted the current major version."""
    if (
        request.endpoint is None
        or request.endpoint in _UNGATED
        or request.blueprint in _UNGATED_BLUEPRINTS
        or request.path.startswith("/api/")
    ):
        return None
    user = session_user()
    if user is None or session.get(ACCEPTED_KEY) == major_version():
        return None
    if needs_acceptance(current_services().workflow, user.principal.user_id):
        return redirect(url_for("privacy_pages.notice", next=request.full_path.rstrip("?")), code=303)
    session[ACCEPTED_KEY] = major_version()
    return None


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
    app.before_request(_ask_for_the_notice)
    app.context_processor(
        lambda: {
            "data_request_roles": ANSWERERS,
            "data_request_kinds": KIND_LABELS,
            "data_request_statuses": STATUS_LABELS,
        }
    )
