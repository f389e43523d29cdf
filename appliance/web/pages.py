"""The home page and the language switch: pages that need no sign-in.

Home is the start page for a visitor, and the to-do list for someone signed in
(appliance.web.contracts.home).
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import StringField
from wtforms.validators import AnyOf, InputRequired

from appliance import __version__
from appliance.web.auth.principal import session_user
from appliance.web.context import current_services
from appliance.web.contracts.home import todo_page
from appliance.web.i18n import LOCALE_SESSION_KEY, SUPPORTED_LOCALES

bp = Blueprint("pages", __name__)


class LanguageForm(FlaskForm):
    locale = StringField(_l("Language"), validators=[InputRequired(), AnyOf(list(SUPPORTED_LOCALES))])


@bp.get("/")
def home() -> str:
    if session_user() is not None:
        return todo_page()
    cfg = current_services().config
    return render_template("home.html", version=__version__, private_cloud_address=cfg.private_cloud_address)


@bp.post("/language")
def switch_language() -> Response:
    form = LanguageForm()
    if form.validate_on_submit():
        session[LOCALE_SESSION_KEY] = form.locale.data
    target = request.referrer if _same_site(request.referrer) else None
    return redirect(target or url_for("pages.home"), code=303)


def _same_site(url: str | None) -> bool:
    return bool(url) and url.startswith(request.host_url)  # type: ignore[union-attr]
