"""The appliance's own certificate authority: a root CA and an issuing CA, keys in the HSM.

Everything here takes the caller's SQLAlchemy session and never commits (the caller owns the
transaction). Keys generated in the HSM for a transaction that is then rolled back stay in
the token unrecorded; `appliance hsm list-keys` shows them.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from asn1crypto import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.clock import Clock
from appliance.config import AppConfig
from appliance.hsm import HsmUnavailable, KeyAlgorithm, KeyCustody, KeyRef, KeySpec
from appliance.models.enums import CertificateKind, CertificateStatus, KeyPurpose
from appliance.models.pki import Certificate, HsmKey
from appliance.pki import certs
from appliance.pki.errors import CaNotUsable, PkiNotInitialised

log = logging.getLogger(__name__)

CLOCK_SKEW = timedelta(minutes=5)
"""Certificates start this much in the past, so a node whose clock is a little behind accepts them."""


@dataclass(frozen=True)
class PkiContext:
    """What PKI operations need: the custody, the config, time and randomness (all injected)."""

    custody: KeyCustody
    config: AppConfig
    clock: Clock
    random_bytes: Callable[[int], bytes] = field(default=secrets.token_bytes)

    def now(self) -> datetime:
        return self.clock.now().replace(microsecond=0)

    def new_serial(self) -> int:
        # 127 random bits, positive, non-zero: RFC 5280 allows at most 20 octets
        return (int.from_bytes(self.random_bytes(16), "big") >> 1) | 1

    def new_label(self, purpose: KeyPurpose) -> str:
        return f"{purpose.value}-{self.random_bytes(8).hex()}"

    @property
    def key_algorithm(self) -> KeyAlgorithm:
        if self.config.hsm is None:
            # make_context refuses this already; a context built by hand must not reach the HSM
            raise HsmUnavailable("no HSM configured (config section `hsm`); the PKI needs it")
        return self.config.hsm.key_algorithm


def make_context(custody: KeyCustody | None, config: AppConfig, clock: Clock) -> PkiContext:
    """:raises HsmUnavailable: no HSM configured (the PKI never falls back to software keys)."""
    if custody is None or config.hsm is None:
        raise HsmUnavailable("no HSM configured (config section `hsm`); the PKI needs it")
    return PkiContext(custody=custody, config=config, clock=clock)


# -- URLs published in certificates ----------------------------------------------------------


def crl_url(config: AppConfig, *, root: bool = False) -> str:
    return f"{config.private_cloud_address}/pki/crl" + ("/root" if root else "")


def ca_url(config: AppConfig, *, root: bool = False) -> str:
    return f"{config.private_cloud_address}/pki/ca" + ("/root" if root else "")


# -- keys and rows ---------------------------------------------------------------------------


def key_ref_of(row: HsmKey) -> KeyRef:
    return KeyRef(label=row.label, key_id=bytes.fromhex(row.key_id), algorithm=KeyAlgorithm(row.algorithm))


def generate_recorded_key(
    session: Session,
    ctx: PkiContext,
    purpose: KeyPurpose,
    *,
    owner_user_id: int | None = None,
    owner_organisation_id: int | None = None,
) -> tuple[HsmKey, KeyRef]:
    """Generate a key pair in the HSM and record it in `hsm_keys`."""
    key = ctx.custody.generate(KeySpec(label=ctx.new_label(purpose), algorithm=ctx.key_algorithm))
    row = HsmKey(
        label=key.label,
        key_id=key.key_id_hex,
        algorithm=key.algorithm.value,
        purpose=purpose,
        public_key_der=ctx.custody.public_key_info(key),
        owner_user_id=owner_user_id,
        owner_organisation_id=owner_organisation_id,
        created_at=ctx.now(),
    )
    session.add(row)
    session.flush()
    return row, key


def store_certificate(
    session: Session,
    ctx: PkiContext,
    cert: x509.Certificate,
    *,
    kind: CertificateKind,
    issuer_id: int | None,
    key_row: HsmKey | None,
    user_id: int | None = None,
    organisation_id: int | None = None,
) -> Certificate:
    der = cert.dump()
    row = Certificate(
        serial=format(cert.serial_number, "x"),
        kind=kind,
        subject=cert.subject.human_friendly[:1000],
        issuer_id=issuer_id,
        key_id=key_row.id if key_row is not None else None,
        user_id=user_id,
        organisation_id=organisation_id,
        not_before=cert.not_valid_before,
        not_after=cert.not_valid_after,
        der=der,
        sha256_fingerprint=certs.fingerprint(der),
        status=CertificateStatus.ACTIVE,
        created_at=ctx.now(),
    )
    session.add(row)
    session.flush()
    return row


def active_certificate(session: Session, kind: CertificateKind) -> Certificate | None:
    """The newest active certificate of a CA/TSA kind."""
    return session.scalars(
        select(Certificate)
        .where(Certificate.kind == kind, Certificate.status == CertificateStatus.ACTIVE)
        .order_by(Certificate.not_after.desc(), Certificate.id.desc())
        .limit(1)
    ).first()


_LABELS = {
    CertificateKind.ROOT_CA: "root CA",
    CertificateKind.ISSUING_CA: "issuing CA",
    CertificateKind.TSA: "TSA",
}
_RENEW = "run `appliance pki init` to renew it"


def _label(row: Certificate) -> str:
    return f"the {_LABELS.get(row.kind, row.kind.value)} certificate ({row.subject})"


@dataclass(frozen=True)
class CaMaterial:
    """A CA (or TSA) certificate with its HSM key, ready to sign."""

    row: Certificate
    certificate: x509.Certificate
    key: KeyRef
    valid_from: datetime
    """Latest notBefore along the chain up to the root: nothing signed earlier would verify."""
    valid_until: datetime
    """Earliest notAfter along the chain up to the root."""
    limited_by: str
    """Which certificate sets `valid_until` (for the error message)."""
    issuers: tuple[x509.Certificate, ...] = ()
    """The CAs above it, nearest first, up to and including the root."""

    def ensure_valid(self, now: datetime) -> None:
        """:raises CaNotUsable: `now` is outside the validity of the certificate or a CA above it."""
        if now >= self.valid_until:
            raise CaNotUsable(f"{self.limited_by} expired on {self.valid_until:%Y-%m-%d %H:%M} UTC; {_RENEW}")
        if now < self.valid_from:
            raise CaNotUsable(
                f"a certificate of the appliance CA is not valid before {self.valid_from:%Y-%m-%d %H:%M} UTC;"
                " check the system clock"
            )


def load_active_material(session: Session, kind: CertificateKind) -> CaMaterial:
    """The newest active certificate of `kind` with its HSM key; every CA above it must be active.

    Validity in time is left to `CaMaterial.ensure_valid`, for holders that keep the material
    across time (the in-process TSA checks it on every token).
    :raises PkiNotInitialised: nothing of that kind was ever created.
    :raises CaNotUsable: it, or a CA above it, is revoked or superseded.
    """
    row = active_certificate(session, kind)
    if row is None:
        retired = session.scalars(select(Certificate).where(Certificate.kind == kind).limit(1)).first()
        if retired is not None:
            raise CaNotUsable(f"{_label(retired)} is {retired.status.value}; {_RENEW}")
        raise PkiNotInitialised()
    if row.key_id is None or (key_row := session.get(HsmKey, row.key_id)) is None:
        raise CaNotUsable(f"{_label(row)} has no key recorded in hsm_keys; {_RENEW}")
    valid_from, valid_until, limited_by = row.not_before, row.not_after, _label(row)
    seen = {row.id}
    issuers: list[x509.Certificate] = []
    issuer_id = row.issuer_id
    while issuer_id is not None:
        issuer = session.get(Certificate, issuer_id)
        if issuer is None or issuer.id in seen:
            raise CaNotUsable(f"the chain above {_label(row)} is broken; {_RENEW}")
        seen.add(issuer.id)
        if issuer.status is not CertificateStatus.ACTIVE:
            raise CaNotUsable(f"{_label(issuer)} is {issuer.status.value}; {_RENEW}")
        issuers.append(x509.Certificate.load(issuer.der))
        valid_from = max(valid_from, issuer.not_before)
        if issuer.not_after < valid_until:
            valid_until, limited_by = issuer.not_after, _label(issuer)
        issuer_id = issuer.issuer_id
    return CaMaterial(
        row=row,
        certificate=x509.Certificate.load(row.der),
        key=key_ref_of(key_row),
        valid_from=valid_from,
        valid_until=valid_until,
        limited_by=limited_by,
        issuers=tuple(issuers),
    )


def load_material(session: Session, kind: CertificateKind, now: datetime) -> CaMaterial:
    """The CA/TSA certificate and key to sign with at `now`.

    :raises PkiNotInitialised: nothing of that kind was ever created.
    :raises CaNotUsable: it, or a CA above it, is expired, not yet valid, revoked or superseded
        (the message says to renew it with `appliance pki init`).
    """
    material = load_active_material(session, kind)
    material.ensure_valid(now)
    return material


def ca_name(ctx: PkiContext, common_name: str) -> x509.Name:
    return certs.build_name(
        [
            ("country_name", ctx.config.pki.country),
            ("organization_name", ctx.config.pki.organisation),
            ("common_name", common_name),
        ]
    )
