"""Sign-in, sign-out, the account page and API tokens (web pages)."""

from __future__ import annotations

import math
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import login_required, login_user, logout_user
from werkzeug.wrappers import Response

from appliance.auth import TooManyAttempts
from appliance.directory import AuthenticationFailed, DirectoryUnavailable
from appliance.errors import InvalidInput
from appliance.web.auth.forms import LoginForm, PlainForm, TokenForm
from appliance.web.auth.principal import SessionUser, auth_service, client_info, session_user
from appliance.web.context import current_services
from appliance.web.errors import set_retry_after

bp = Blueprint("auth", __name__)

MAX_NEXT_LENGTH = 2000


def invalid_login_message() -> str:
    return _("The user name or password is incorrect, or the account cannot sign in.")


def safe_next(target: str | None) -> str | None:
    """`target` when it is a path on this site, else None.

    Browsers drop tabs and newlines from URLs and read a backslash as a slash (WHATWG URL),
    so "/<tab>/evil.example" and "/\\evil.example" would become "//evil.example", another
    host; a newline would also break the Location header. Such characters are refused
    outright, then the rest must parse with no scheme and no host and be a single-slash path.
    """
    if not target or len(target) > MAX_NEXT_LENGTH:
        return None
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 or c == "\\" for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return None
    return target


def _render_login(form: LoginForm, status: int = 200, error: str | None = None) -> Response:
    response = Response(render_template("auth/login.html", form=form, error=error), mimetype="text/html")
    response.status_code = status
    return response


def _locked_response(form: LoginForm, error: TooManyAttempts) -> Response:
    # the sign-in form again, with the wait in words; status and Retry-After as for any RateLimited
    seconds = (error.retry_at - current_services().clock.now()).total_seconds()
    message = _(
        "Too many failed sign-in attempts. Try again in %(minutes)d minutes.",
        minutes=max(1, math.ceil(seconds / 60)),
    )
    return set_retry_after(_render_login(form, 429, message), error)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response:
    form = LoginForm()
    if request.method == "GET":
        if session_user() is not None:
            return redirect(url_for("auth.account"), code=303)
        return _render_login(form)
    if not form.validate_on_submit():
        return _render_login(form, 400, _("Enter your user name and password."))
    # a session of this browser (another person's too) ends when someone signs in here
    current = session_user()
    try:
        result = auth_service().login(
            form.username.data or "",
            form.password.data or "",
            client_info(),
            previous_session=current.session_token if current is not None else None,
        )
    except InvalidInput:
        # text no name or password can hold (a NUL in the name): nothing was counted or asked
        return _render_login(form, 400, _("The user name or password holds characters that cannot be used."))
    except AuthenticationFailed:
        return _render_login(form, 401, invalid_login_message())
    except TooManyAttempts as exc:
        return _locked_response(form, exc)
    except DirectoryUnavailable:
        response = Response(render_template("auth/unavailable.html"), mimetype="text/html")
        response.status_code = 503
        response.headers["Retry-After"] = "30"
        return response
    locale = session.get("locale")
    # a fresh cookie content after login: nothing from before survives but the language
    session.clear()
    if locale:
        session["locale"] = locale
    session.permanent = True
    login_user(SessionUser(result.principal, result.session_token), remember=False)
    target = safe_next(request.args.get("next")) or url_for("auth.account")
    return redirect(target, code=303)


@bp.post("/logout")
def logout() -> Response:
    form = PlainForm()
    user = session_user()
    if form.validate_on_submit() and user is not None:
        auth_service().logout(user.session_token, client_info())
    forget_web_session()
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"), code=303)


def forget_web_session() -> None:
    """Sign out in this browser: the cookie's session is emptied, its language kept."""
    logout_user()
    locale = session.get("locale")
    session.clear()
    if locale:
        session["locale"] = locale


@bp.get("/account")
@login_required  # type: ignore[misc]
def account() -> str:
    user = session_user()
    assert user is not None
    tokens = auth_service().list_tokens(user.principal.user_id)
    return render_template(
        "auth/account.html",
        principal=user.principal,
        tokens=tokens,
        token_form=TokenForm(),
        plain_form=PlainForm(),
        now=current_services().clock.now(),
    )


@bp.post("/account/tokens")
@login_required  # type: ignore[misc]
def create_token() -> Response | str:
    user = session_user()
    assert user is not None
    form = TokenForm()
    if not form.validate_on_submit():
        flash(_("Give the token a name and enter your password."), "error")
        return redirect(url_for("auth.account"), code=303)
    try:
        issued = auth_service().create_token_with_password(
            user.principal.user_id, form.password.data or "", form.name.data or "", client_info()
        )
    except InvalidInput:
        # a name of spaces only: refused before the password is checked
        flash(_("Give the token a name and enter your password."), "error")
        return redirect(url_for("auth.account"), code=303)
    except AuthenticationFailed:
        flash(_("The password is incorrect; no token was created."), "error")
        return redirect(url_for("auth.account"), code=303)
    except TooManyAttempts:
        flash(_("Too many failed sign-in attempts. Try again later."), "error")
        return redirect(url_for("auth.account"), code=303)
    except DirectoryUnavailable:
        flash(_("The company directory cannot check your password right now; try again later."), "error")
        return redirect(url_for("auth.account"), code=303)
    # shown once, on this response only; never stored in the session
    return render_template("auth/token_created.html", issued=issued, principal=user.principal)


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required  # type: ignore[misc]
def revoke_token(token_id: int) -> Response:
    user = session_user()
    assert user is not None
    if PlainForm().validate_on_submit():
        auth_service().revoke_token(user.principal.user_id, token_id, client_info())
        flash(_("The token is revoked."), "info")
    return redirect(url_for("auth.account"), code=303)


@bp.post("/account/freeze")
@login_required  # type: ignore[misc]
def freeze_account() -> Response:
    user = session_user()
    assert user is not None
    if not PlainForm().validate_on_submit():
        return redirect(url_for("auth.account"), code=303)
    auth_service().freeze_my_account(user.principal.user_id, client_info())
    forget_web_session()
    flash(
        _(
            "Your account is frozen: every session and API token of yours has ended, and nobody can "
            "sign in or sign as you. Ask an administrator of your organisation to lift it."
        ),
        "info",
    )
    return redirect(url_for("auth.login"), code=303)


@bp.get("/admin/sign-in-locks")
@login_required  # type: ignore[misc]
def sign_in_locks() -> str:
    user = session_user()
    assert user is not None
    locks = auth_service().list_locks(user.principal.user_id)
    frozen = auth_service().list_frozen(user.principal.user_id)
    return render_template("auth/locks.html", locks=locks, frozen=frozen, form=PlainForm())


@bp.post("/admin/frozen-accounts/lift")
@login_required  # type: ignore[misc]
def lift_freeze() -> Response:
    user = session_user()
    assert user is not None
    if PlainForm().validate_on_submit():
        person = request.form.get("user_id", type=int) or 0
        auth_service().lift_freeze(user.principal.user_id, person, client_info())
        flash(_("The freeze is lifted; the person can sign in again."), "info")
    return redirect(url_for("auth.sign_in_locks"), code=303)


@bp.post("/admin/sign-in-locks/lift")
@login_required  # type: ignore[misc]
def lift_sign_in_lock() -> Response:
    user = session_user()
    assert user is not None
    if PlainForm().validate_on_submit():
        auth_service().lift_lock(user.principal.user_id, request.form.get("key", ""), client_info())
        flash(_("The lock is lifted; the person can sign in again."), "info")
    return redirect(url_for("auth.sign_in_locks"), code=303)
