"""Published PKI material: /pki/ca, /pki/crl (DER, for AIA and CRL distribution points), /pki/tsa.

Unauthenticated by design (relying parties and PDF readers fetch these), but still behind
the allowed-networks guard. The TSA is rate-limited per client address, counted in the
database so that the limit holds over all gunicorn workers and nodes.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, Response, request
from flask_babel import gettext as _

from appliance.errors import InvalidInput
from appliance.pki.ca import make_context
from appliance.pki.discovery import appliance_chain_pem
from appliance.pki.publish import (
    MAX_TIMESTAMP_QUERY_BYTES,
    ca_bundle_pem,
    ca_certificate_der,
    crl_der,
    timestamp_reply,
)
from appliance.web.context import current_services
from appliance.web.extensions import csrf
from appliance.web.request_limit import RequestLimit, enforce_request_limit

bp = Blueprint("pki", __name__, url_prefix="/pki")

CACHE_SECONDS = 300
TSA_RATE_LIMIT = RequestLimit("tsa", limit=60, window=timedelta(minutes=1))
"""Per client address. In-process signing does not go through HTTP, so this only bounds how
much HSM time outside clients can take from document signing."""


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


@bp.get("/appliance-chain.pem")
def appliance_chain() -> Response:
    """The discovery document's signing certificate and its CAs (its JWS `x5u`)."""
    with current_services().sessions() as session:
        chain = appliance_chain_pem(session)
    return _der(chain.encode("ascii"), "application/x-pem-file", "appliance-chain.pem")


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
    # counted before anything is read: the limit is about the HSM and the worker's time
    enforce_request_limit(
        TSA_RATE_LIMIT, _("Too many timestamp requests from your address. Wait a minute and try again.")
    )
    if request.mimetype != "application/timestamp-query":
        raise InvalidInput(_("Send an RFC 3161 query as application/timestamp-query."))
    query = _read_query()
    services = current_services()
    ctx = make_context(services.custody, services.config, services.clock)
    reply = timestamp_reply(services.sessions, ctx, query)
    response = Response(reply, mimetype="application/timestamp-reply")
    response.headers["Cache-Control"] = "no-store"
    return response
