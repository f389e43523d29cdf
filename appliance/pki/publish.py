"""What the appliance publishes over HTTP: CA certificates, CRLs, timestamp replies.

One function per view of `appliance/web/pki.py`; each takes the session factory and runs
one transaction (serving a CRL that is past its nextUpdate writes a new one, see
`appliance.pki.crl.current_crl`).
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from appliance.config import TsaMode
from appliance.db import transaction
from appliance.errors import InvalidInput, NotFound
from appliance.models.enums import CertificateKind
from appliance.pki import certs
from appliance.pki.ca import PkiContext, active_certificate
from appliance.pki.crl import current_crl
from appliance.pki.errors import PkiNotInitialised
from appliance.pki.tsa import load_tsa, respond_timestamp

MAX_TIMESTAMP_QUERY_BYTES = 8192
"""A TimeStampReq with a SHA-512 imprint, policy and nonce is well under 200 bytes."""


def ca_certificate_der(sessions: sessionmaker[Session], *, root: bool = False) -> bytes:
    """DER of the issuing CA (the AIA caIssuers target of end-entity certificates) or the root."""
    with transaction(sessions) as session:
        row = active_certificate(session, CertificateKind.ROOT_CA if root else CertificateKind.ISSUING_CA)
        if row is None:
            raise PkiNotInitialised()
        return row.der


def ca_bundle_pem(sessions: sessionmaker[Session]) -> str:
    """PEM of the issuing CA, the root CA and the TSA certificate (for trust-store import)."""
    with transaction(sessions) as session:
        parts = []
        for kind in (CertificateKind.ISSUING_CA, CertificateKind.ROOT_CA, CertificateKind.TSA):
            row = active_certificate(session, kind)
            if row is None:
                raise PkiNotInitialised()
            parts.append(certs.certificate_pem(row.der))
        return "".join(parts)


def crl_der(sessions: sessionmaker[Session], ctx: PkiContext, *, root: bool = False) -> bytes:
    """The newest CRL; regenerated first only when it is already past its nextUpdate."""
    with transaction(sessions) as session:
        return current_crl(session, ctx, CertificateKind.ROOT_CA if root else CertificateKind.ISSUING_CA).der


def timestamp_reply(sessions: sessionmaker[Session], ctx: PkiContext, query: bytes) -> bytes:
    """DER TimeStampResp for a DER TimeStampReq (RFC 3161 over HTTP).

    :raises NotFound: the internal TSA is not enabled (tsa.mode).
    :raises InvalidInput: empty or oversized query.
    """
    if ctx.config.tsa.mode is not TsaMode.INTERNAL:
        raise NotFound("this appliance does not run a timestamp authority")
    if not query or len(query) > MAX_TIMESTAMP_QUERY_BYTES:
        raise InvalidInput("the timestamp query is empty or too large")
    with transaction(sessions) as session:
        material = load_tsa(session)
    return respond_timestamp(ctx, material, query)
