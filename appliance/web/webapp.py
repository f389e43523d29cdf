"""The installable web app: its manifest and a service worker that keeps only the static
shell (styles, scripts, icons, an offline page), never pages, documents or API answers.

The worker is served from the root so that its scope is the whole site, with the
appliance's version in its cache name: an upgrade replaces the old shell at once.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, render_template, url_for
from flask_babel import get_locale
from flask_babel import gettext as _

from appliance import __version__
from appliance.web.i18n import SUPPORTED_LOCALES

bp = Blueprint("webapp", __name__)

SHELL = (
    "app.css",
    "contracts.css",
    "contracts.js",
    "webapp.js",
    "favicon.svg",
    "icon-192.png",
    "icon-512.png",
    "offline.html",
)
THEME = "#b3261e"


@bp.get("/manifest.webmanifest")
def manifest() -> Response:
    body = {
        "name": _("E-Signature Appliance"),
        "short_name": _("E-Signature"),
        "lang": SUPPORTED_LOCALES.get(str(get_locale()), "en"),
        "start_url": "/",
        "scope": "/",
        "display": "standalone",
        "background_color": "#ffffff",
        "theme_color": THEME,
        "icons": [
            {
                "src": url_for("static", filename=f"icon-{size}.png"),
                "sizes": f"{size}x{size}",
                "type": "image/png",
            }
            for size in (192, 512)
        ],
    }
    response = Response(json.dumps(body, ensure_ascii=False), mimetype="application/manifest+json")
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/sw.js")
def service_worker() -> Response:
    script = render_template(
        "webapp/sw.js",
        cache=f"shell-{__version__}",
        shell=[url_for("static", filename=name) for name in SHELL],
        offline=url_for("static", filename="offline.html"),
    )
    response = Response(script, mimetype="text/javascript")
    # the browser checks for a new worker on each visit; the shell itself is versioned
    response.headers["Cache-Control"] = "no-cache"
    return response
