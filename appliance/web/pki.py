"""Published PKI material: /pki/ca, /pki/crl (DER, for AIA and CRL distribution points), /pki/tsa.

Unauthenticated by design (relying parties and PDF readers fetch these), but still behind
the allowed-networks guard. The TSA is rate-limited per client address.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, request
from flask.blueprints import BlueprintSetupState
from flask_babel import gettext as _
from flask_limiter import Limiter

from appliance.errors import InvalidInput
from appliance.pki.ca import make_context
from appliance.pki.publish import (
    MAX_TIMESTAMP_QUERY_BYTES,
    ca_bundle_pem,
    ca_certificate_der,
    crl_der,
    timestamp_reply,
)
from appliance.web.context import current_services
from appliance.web.extensions import csrf

bp = Blueprint("pki", __name__, url_prefix="/pki")

CACHE_SECONDS = 300
TSA_RATE_LIMIT = "60 per minute"
"""Per client address. In-process signing does not go through HTTP, so this only bounds how
much HSM time outside clients can take from document signing."""
LIMITER_EXTENSION_KEY = "appliance.tsa_limiter"


def _der(body: bytes, mimetype: str, filename: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
    return response


@bp.get("/ca")
def issuing_ca() -> Response:
    return _der(ca_certificate_der(current_services().sessions), "application/pkix-cert", "issuing-ca.cer")


@bp.get("/ca/root")
def root_ca() -> Response:
    return _der(
        ca_certificate_der(current_services().sessions, root=True), "application/pkix-cert", "root-ca.cer"
    )


@bp.get("/ca.pem")
def ca_bundle() -> Response:
    return _der(
        ca_bundle_pem(current_services().sessions).encode("ascii"), "application/x-pem-file", "ca.pem"
    )


@bp.get("/crl")
def issuing_crl() -> Response:
    services = current_services()
    ctx = make_context(services.custody, services.config, services.clock)
    return _der(crl_der(services.sessions, ctx), "application/pkix-crl", "issuing-ca.crl")


@bp.get("/crl/root")
def root_crl() -> Response:
    services = current_services()
    ctx = make_context(services.custody, services.config, services.clock)
    return _der(crl_der(services.sessions, ctx, root=True), "application/pkix-crl", "root-ca.crl")


def _read_query() -> bytes:
    """The request body, reading at most one byte past the limit.

    Content-Length is only a first check: a chunked upload has none, and
    `request.get_data()` would read the whole body (up to MAX_CONTENT_LENGTH) first.
    """
    if (request.content_length or 0) > MAX_TIMESTAMP_QUERY_BYTES:
        raise InvalidInput(_("The timestamp query is too large."))
    stream = request.stream
    chunks: list[bytes] = []
    remaining = MAX_TIMESTAMP_QUERY_BYTES + 1
    while remaining > 0:
        # a stream may return fewer bytes than asked (chunked input): loop until EOF
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    if remaining <= 0:
        raise InvalidInput(_("The timestamp query is too large."))
    return b"".join(chunks)


@bp.post("/tsa")
@csrf.exempt  # RFC 3161 clients post DER without a browser session
def tsa() -> Response:
    if request.mimetype != "application/timestamp-query":
        raise InvalidInput(_("Send an RFC 3161 query as application/timestamp-query."))
    query = _read_query()
    services = current_services()
    ctx = make_context(services.custody, services.config, services.clock)
    reply = timestamp_reply(services.sessions, ctx, query)
    response = Response(reply, mimetype="application/timestamp-reply")
    response.headers["Cache-Control"] = "no-store"
    return response


def _install_tsa_limit(state: BlueprintSetupState) -> None:
    app = state.app
    if not isinstance(app, Flask):  # BlueprintSetupState is typed for the sansio App
        raise TypeError("the pki blueprint needs a Flask app")
    # In-memory counters, per gunicorn worker (and per node): a client gets up to
    # workers x nodes x TSA_RATE_LIMIT. Acceptable here: the limit only has to keep one
    # client from monopolising the HSM, not to be exact, and it needs no Redis.
    limiter = Limiter(
        key_func=lambda: request.remote_addr or "unknown",
        storage_uri="memory://",
        key_prefix="appliance-tsa",
        headers_enabled=True,
        default_limits=[],
        strategy="moving-window",
    )
    limiter.init_app(app)
    # Flask-Limiter checks a decorated limit inside the wrapper, so the wrapper must
    # become the registered view
    app.view_functions["pki.tsa"] = limiter.limit(TSA_RATE_LIMIT, methods=["POST"])(tsa)
    app.extensions[LIMITER_EXTENSION_KEY] = limiter


# registered after the routes, so the view exists when this runs (create_app registers bp)
bp.record_once(_install_tsa_limit)
