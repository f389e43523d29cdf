"""Sign-in for the web app: Flask-Login over server-side sessions, bearer tokens for /api/v1,
and Flask-Limiter on the sign-in endpoints when Redis is configured."""

from __future__ import annotations

from flask import Flask, request
from flask_babel import lazy_gettext as _l
from flask_limiter import Limiter
from flask_login import LoginManager

from appliance.auth.locks import LOCK_ADMINS
from appliance.services import Services
from appliance.web.auth import api, views
from appliance.web.auth.principal import SessionUser
from appliance.web.extensions import csrf

__all__ = ["install_auth"]

LIMITER_EXTENSION_KEY = "appliance.login_limiter"


def install_auth(app: Flask, services: Services) -> None:
    cfg = services.config
    service = services.auth

    login_manager = LoginManager()
    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Sign in to see this page.")
    login_manager.login_message_category = "info"
    # the server-side session record decides; the IP/UA heuristic would log out VPN users
    login_manager.session_protection = None
    login_manager.init_app(app)

    @login_manager.user_loader  # type: ignore[untyped-decorator]
    def load_user(session_token: str) -> SessionUser | None:
        principal = service.resolve_session(session_token)
        return SessionUser(principal, session_token) if principal is not None else None

    app.context_processor(lambda: {"lock_admin_roles": LOCK_ADMINS})
    app.config["REMEMBER_COOKIE_DURATION"] = 0
    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)

    storage = cfg.auth.rate_limit_storage
    if storage.startswith(("redis://", "rediss://", "redis+unix://")):
        # Counts every sign-in request per client address in Redis, shared by all workers
        # and nodes; the per-account and per-address failure lockout lives in the database.
        limiter = Limiter(
            key_func=lambda: request.remote_addr or "unknown",
            storage_uri=storage,
            key_prefix="appliance-login",
            headers_enabled=True,
            default_limits=[],
            strategy="moving-window",
        )
        limiter.init_app(app)
        per_minute = cfg.auth.max_failed_logins * 4
        # Flask-Limiter checks a decorated limit inside the wrapper, so the wrapper must
        # become the registered view
        # one counter for both sign-in endpoints (web form and API token)
        shared = limiter.shared_limit(f"{per_minute} per minute", scope="sign-in", methods=["POST"])
        for endpoint, view in (("auth.login", views.login), ("auth_api.issue_token", api.issue_token)):
            app.view_functions[endpoint] = shared(view)
        app.extensions[LIMITER_EXTENSION_KEY] = limiter
