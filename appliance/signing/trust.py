"""What the appliance trusts: its own roots and admin-added roots, never the OS store.

A `TrustMaterial` is plain data (DER certificates and CRLs) loaded from the database
or handed in by a caller; validation contexts are built from it fresh for every
signature, because pyHanko's contexts accumulate state while they validate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator import ValidationContext
from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.models.enums import CertificateKind, CertificateStatus
from appliance.models.pki import Certificate, Crl

ROOT_KINDS = (CertificateKind.ROOT_CA, CertificateKind.TRUST_ROOT)
INTERMEDIATE_KINDS = (CertificateKind.ISSUING_CA, CertificateKind.TSA, CertificateKind.EXTERNAL_CA)

REVOCATION_MODE = "hard-fail"
"""Our certificates name a CRL distribution point; a missing CRL is a failure, not a shrug."""


@dataclass(frozen=True)
class TrustMaterial:
    roots: tuple[asn1_x509.Certificate, ...]
    """Trust anchors: the appliance's root CA and admin-added roots."""
    other_certs: tuple[asn1_x509.Certificate, ...] = ()
    """Intermediates (issuing CA, TSA) used to build paths; never trusted on their own."""
    crls: tuple[asn1_crl.CertificateList, ...] = ()

    @classmethod
    def from_der(
        cls,
        roots: Iterable[bytes],
        other_certs: Iterable[bytes] = (),
        crls: Iterable[bytes] = (),
    ) -> TrustMaterial:
        return cls(
            roots=tuple(asn1_x509.Certificate.load(der) for der in roots),
            other_certs=tuple(asn1_x509.Certificate.load(der) for der in other_certs),
            crls=tuple(asn1_crl.CertificateList.load(der) for der in crls),
        )

    def with_extra(
        self,
        other_certs: Sequence[asn1_x509.Certificate] = (),
        crls: Sequence[asn1_crl.CertificateList] = (),
    ) -> TrustMaterial:
        """Add path-building certificates and CRLs (e.g. from a document's DSS); roots stay the same."""
        return TrustMaterial(
            roots=self.roots,
            other_certs=self.other_certs + tuple(other_certs),
            crls=self.crls + tuple(crls),
        )

    def validation_context(self, *, moment: datetime | None = None) -> ValidationContext:
        """A fresh context: only our roots, no network, CRLs required where a certificate names them."""
        return ValidationContext(
            # an explicit list, even an empty one: None would fall back to the OS trust store
            trust_roots=list(self.roots),
            other_certs=list(self.other_certs),
            crls=list(self.crls),
            allow_fetching=False,
            revocation_mode=REVOCATION_MODE,
            moment=moment,
        )


def load_trust_material(session: Session) -> TrustMaterial:
    """Trust roots, intermediates and the newest CRL of each issuer, from the database."""
    rows = session.scalars(
        select(Certificate).where(Certificate.kind.in_(ROOT_KINDS + INTERMEDIATE_KINDS))
    ).all()
    # a retired (superseded) admin-added root is no anchor any more
    roots = [row.der for row in rows if row.kind in ROOT_KINDS and row.status is CertificateStatus.ACTIVE]
    others = [row.der for row in rows if row.kind in INTERMEDIATE_KINDS]
    newest: dict[int, Crl] = {}
    for crl in session.scalars(select(Crl)).all():
        current = newest.get(crl.issuer_id)
        if current is None or crl.number > current.number:
            newest[crl.issuer_id] = crl
    return TrustMaterial.from_der(roots, others, [crl.der for crl in newest.values()])


def load_chain(session: Session, certificate: Certificate) -> tuple[asn1_x509.Certificate, ...]:
    """Issuers of `certificate` from the database, nearest first, stopping before a self-signed root."""
    chain: list[asn1_x509.Certificate] = []
    seen = {certificate.id}
    issuer_id = certificate.issuer_id
    while issuer_id is not None and issuer_id not in seen:
        seen.add(issuer_id)
        issuer = session.get(Certificate, issuer_id)
        if issuer is None or issuer.kind in ROOT_KINDS:
            break
        chain.append(asn1_x509.Certificate.load(issuer.der))
        issuer_id = issuer.issuer_id
    return tuple(chain)
