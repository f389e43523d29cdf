"""`/.well-known/esign-configuration`: the signed discovery document a mobile app reads after
its user enters the private-cloud address (appliance.pki.discovery says what it holds).

Unauthenticated like /pki, and like every route behind the allowed-networks guard. The HSM
signs a document once per content and signing certificate; later requests reuse that
signature, so anonymous clients cannot spend the HSM's time.
"""

from __future__ import annotations

import hashlib

from flask import Blueprint, Response, current_app

from appliance.errors import Unavailable
from appliance.pki.discovery import (
    DISCOVERY_PATH,
    SIGNATURE_HEADER,
    appliance_certificate,
    discovery_document,
    sign_discovery,
)
from appliance.web.context import current_services
from appliance.web.i18n import SUPPORTED_LOCALES

bp = Blueprint("discovery", __name__)

CACHE_SECONDS = 300
_SIGNATURES = "appliance.discovery_signatures"


@bp.get(DISCOVERY_PATH)
def configuration() -> Response:
    services = current_services()
    with services.sessions() as session:
        body = discovery_document(session, services.config, list(SUPPORTED_LOCALES.values()))
        signer = appliance_certificate(session).sha256_fingerprint
        signatures: dict[tuple[str, str], str] = current_app.extensions.setdefault(_SIGNATURES, {})
        key = (signer, hashlib.sha256(body).hexdigest())
        if key not in signatures:
            if services.custody is None:
                raise Unavailable("no HSM is configured, so the discovery document cannot be signed")
            signatures.clear()  # only the newest document is asked for
            signatures[key] = sign_discovery(session, services.custody, services.config, body).signature
        signature = signatures[key]
    response = Response(body, mimetype="application/json")
    response.headers[SIGNATURE_HEADER] = signature
    response.headers["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
    return response
