"""The person's in-app notices (account locked, lock lifted, ...): opening the page reads them."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_babel import get_locale
from flask_login import login_required

from appliance.notify import open_inbox
from appliance.web.auth.principal import session_user
from appliance.web.context import current_services

bp = Blueprint("inbox", __name__)


@bp.get("/inbox")
@login_required  # type: ignore[misc]
def inbox() -> str:
    user = session_user()
    assert user is not None
    services = current_services()
    items = open_inbox(
        services.sessions, user.principal.user_id, now=services.clock.now(), locale=str(get_locale())
    )
    return render_template("inbox.html", items=items)
