"""What the appliance trusts: its own roots and admin-added roots, never the OS store.

A `TrustMaterial` is plain data (DER certificates and CRLs) loaded from the database
or handed in by a caller; validation contexts are built from it fresh for every signing
and every validation of a document, because pyHanko's contexts accumulate state (paths,
checked CRLs, the certificates of the signatures they saw) while they validate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator import ValidationContext
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from appliance.models.enums import CertificateKind, CertificateStatus
from appliance.models.pki import Certificate, Crl

ROOT_KINDS = (CertificateKind.ROOT_CA, CertificateKind.TRUST_ROOT)
INTERMEDIATE_KINDS = (CertificateKind.ISSUING_CA, CertificateKind.TSA, CertificateKind.EXTERNAL_CA)

_Asn1 = TypeVar("_Asn1", asn1_x509.Certificate, asn1_crl.CertificateList)

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
        """Add path-building certificates and CRLs (e.g. from a document's DSS); roots stay the same.

        What is here already is left out: a document's DSS mostly repeats the appliance's own
        certificates and CRLs, and every copy is another candidate that the validator compares
        name by name (asn1crypto prepares each name's strings again for each comparison).
        """
        known = {item.dump() for item in (*self.roots, *self.other_certs, *self.crls)}
        return TrustMaterial(
            roots=self.roots,
            other_certs=self.other_certs + _new_only(other_certs, known),
            crls=self.crls + _new_only(crls, known),
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


def _new_only(items: Sequence[_Asn1], known: set[bytes]) -> tuple[_Asn1, ...]:
    """`items` without those in `known` and without repeats; adds what it keeps to `known`."""
    kept = []
    for item in items:
        der = item.dump()
        if der not in known:
            known.add(der)
            kept.append(item)
    return tuple(kept)


def load_trust_material(session: Session) -> TrustMaterial:
    """Trust roots, intermediates and the newest CRL of each issuer, from the database."""
    rows = session.scalars(
        select(Certificate).where(Certificate.kind.in_(ROOT_KINDS + INTERMEDIATE_KINDS))
    ).all()
    # a retired (superseded) admin-added root is no anchor any more
    roots = [row.der for row in rows if row.kind in ROOT_KINDS and row.status is CertificateStatus.ACTIVE]
    others = [row.der for row in rows if row.kind in INTERMEDIATE_KINDS]
    # every CRL ever published stays on record (a new one at least daily): read the newest only
    newest_numbers = (
        select(Crl.issuer_id, func.max(Crl.number).label("number")).group_by(Crl.issuer_id).subquery()
    )
    newest = session.scalars(
        select(Crl.der).join(
            newest_numbers,
            and_(Crl.issuer_id == newest_numbers.c.issuer_id, Crl.number == newest_numbers.c.number),
        )
    ).all()
    return TrustMaterial.from_der(roots, others, newest)


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
