"""Flask application factory."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask_babel import get_locale

from appliance.config import AppConfig
from appliance.db import ensure_migrated
from appliance.services import Services, build_services
from appliance.web import api, cancellation, discovery, health, inbox, pages, webapp
from appliance.web.auth import install_auth
from appliance.web.context import EXTENSION_KEY
from appliance.web.contracts import install_contract_pages
from appliance.web.errors import install_error_handlers
from appliance.web.extensions import babel, csrf
from appliance.web.i18n import select_locale
from appliance.web.metrics import install_metrics
from appliance.web.metrics_access import install_metrics_access
from appliance.web.mobile import install_mobile_pages
from appliance.web.oplog import install_oplog_pages
from appliance.web.pki import bp as pki_bp
from appliance.web.privacy import install_privacy_pages
from appliance.web.proxy import TrustedProxyMiddleware, parse_networks
from appliance.web.roles import install_role_labels
from appliance.web.seal_usage import install_seal_usage_pages
from appliance.web.seals import install_seal_pages
from appliance.web.security import install_security
from appliance.web.webhooks import install_webhook_pages


def create_app(cfg: AppConfig, services: Services | None = None) -> Flask:
    """Build the web app. Refuses (NotMigrated) when the database schema is not current.

    Touches no HSM: under gunicorn each worker opens the PKCS#11 module lazily.
    """
    services = services or build_services(cfg)
    ensure_migrated(services.engine)

    app = Flask(__name__)
    assert cfg.secrets.session_secret is not None  # load_config guarantees it
    app.config.update(
        SECRET_KEY=cfg.secrets.session_secret.get_secret_value(),
        MAX_CONTENT_LENGTH=cfg.server.max_upload_mb * 1024 * 1024,
        SESSION_COOKIE_NAME="__Host-appliance" if cfg.server.tls else "appliance_session",
        SESSION_COOKIE_SECURE=cfg.server.tls,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=cfg.auth.absolute_timeout_hours),
        # the cookie is written only when its content changes: re-sent on every answer, a slow
        # answer (a page preview) begun before a form post put the old content back after it;
        # the timeouts are kept on the server, so nothing needs the cookie's expiry renewed
        SESSION_REFRESH_EACH_REQUEST=False,
        WTF_CSRF_TIME_LIMIT=cfg.auth.absolute_timeout_hours * 3600,
        WTF_CSRF_SSL_STRICT=cfg.server.tls,
        BABEL_DEFAULT_LOCALE=cfg.locale.default,
        BABEL_TRANSLATION_DIRECTORIES="translations",
        JSON_SORT_KEYS=False,
    )
    app.extensions[EXTENSION_KEY] = services
    app.wsgi_app = TrustedProxyMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, parse_networks(cfg.network.trusted_proxies)
    )

    csrf.init_app(app)
    babel.init_app(app, locale_selector=lambda: select_locale(cfg.locale.default))
    app.context_processor(lambda: {"current_locale": str(get_locale())})
    install_security(app, cfg)
    install_metrics_access(app, cfg)
    install_metrics(app)
    install_role_labels(app)
    install_error_handlers(app)

    app.register_blueprint(health.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(inbox.bp)
    for blueprint in api.BLUEPRINTS:
        app.register_blueprint(blueprint)
        csrf.exempt(blueprint)
    app.register_blueprint(pki_bp)
    app.register_blueprint(discovery.bp)
    app.register_blueprint(webapp.bp)
    install_auth(app, services)
    install_contract_pages(app)
    install_oplog_pages(app)
    install_privacy_pages(app)
    app.register_blueprint(cancellation.bp)
    install_seal_pages(app)
    install_seal_usage_pages(app)
    install_mobile_pages(app)
    install_webhook_pages(app)
    csrf.exempt(health.bp)
    return app
