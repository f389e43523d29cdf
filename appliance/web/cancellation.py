"""Cancelling one's own account from the My data page: what it does, what stands in the way,
the e-mailed code that confirms it."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import StringField
from wtforms.validators import InputRequired, Length

from appliance.errors import Forbidden, InvalidInput, RateLimited, Unavailable
from appliance.web.auth.forms import PlainForm
from appliance.web.auth.principal import client_info, page_principal
from appliance.web.auth.views import forget_web_session
from appliance.web.context import current_services
from appliance.workflow.cancellation import (
    BlockerKind,
    CancellationRefused,
    check_cancellation,
    confirm_cancellation,
    start_cancellation,
)

bp = Blueprint("cancellation_pages", __name__)


class ConfirmCancellationForm(FlaskForm):
    code = StringField(
        _l("Code from the e-mail"),
        validators=[InputRequired(), Length(max=20)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )


@bp.get("/me/cancel")
@login_required  # type: ignore[misc]
def page() -> str:
    check = check_cancellation(current_services().workflow, page_principal())
    return render_template(
        "privacy/cancel.html",
        check=check,
        to_sign=BlockerKind.TO_SIGN,
        to_approve=BlockerKind.TO_APPROVE,
        start_form=PlainForm(),
        confirm_form=ConfirmCancellationForm(),
    )


@bp.post("/me/cancel")
@login_required  # type: ignore[misc]
def start() -> Response:
    if PlainForm().validate_on_submit():
        try:
            started = start_cancellation(current_services().workflow, page_principal(), client_info())
        except CancellationRefused:
            flash(_("Your account cannot be cancelled yet: see the list below."), "error")
        except (Forbidden, InvalidInput, RateLimited, Unavailable) as refused:
            flash(refused.public, "error")
        else:
            flash(
                _(
                    "A code was sent to %(to)s. Enter it below before %(time)s UTC.",
                    to=started.destination,
                    time=started.expires_at.strftime("%H:%M"),
                ),
                "info",
            )
    return redirect(url_for(".page"), code=303)


@bp.post("/me/cancel/confirm")
@login_required  # type: ignore[misc]
def confirm() -> Response:
    form = ConfirmCancellationForm()
    if not form.validate_on_submit():
        flash(_("Enter the code from the e-mail."), "error")
        return redirect(url_for(".page"), code=303)
    try:
        confirm_cancellation(
            current_services().workflow, page_principal(), client_info(), form.code.data or ""
        )
    except CancellationRefused:
        flash(_("Your account cannot be cancelled yet: see the list below."), "error")
    except InvalidInput as refused:  # the code refusals among them
        flash(refused.public, "error")
    else:
        forget_web_session()
        flash(
            _("Your account is cancelled. Your personal data was removed; signed contracts are kept."), "info"
        )
        return redirect(url_for("auth.login"), code=303)
    return redirect(url_for(".page"), code=303)
