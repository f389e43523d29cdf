"""`appliance pki init`: root CA, issuing CA, TSA and appliance document certificate, each key in
the HSM (idempotent)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from asn1crypto import keys
from sqlalchemy.orm import Session

from appliance.models.enums import CertificateKind, KeyPurpose
from appliance.models.pki import Certificate
from appliance.pki import certs
from appliance.pki.ca import (
    CLOCK_SKEW,
    PkiContext,
    active_certificate,
    ca_name,
    ca_url,
    crl_url,
    generate_recorded_key,
    load_material,
    store_certificate,
)
from appliance.pki.crl import publish_crl
from appliance.pki.errors import PkiNotInitialised
from appliance.pki.issue import issue_appliance_certificate, issue_tsa_certificate, tsa_certificate_end

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PkiSummary:
    root: Certificate
    issuing: Certificate
    tsa: Certificate
    appliance: Certificate
    """The appliance's own document-signing certificate (certificates of completion)."""
    created: tuple[str, ...]
    """Which of "root", "issuing", "tsa", "appliance" this call created (empty when all existed)."""


def _years(start: datetime, years: int) -> datetime:
    return start + timedelta(days=365 * years + years // 4)


def _current(row: Certificate | None, now: datetime, issuer: Certificate | None = None) -> bool:
    """Usable to sign at `now` (and issued by `issuer`, when given)."""
    if row is None or now >= row.not_after:
        return False
    return issuer is None or row.issuer_id == issuer.id


def init_pki(session: Session, ctx: PkiContext) -> PkiSummary:
    """Create whatever is missing or expired of root CA, issuing CA, TSA and appliance certificate.

    An expired certificate is renewed with a new key; a renewed CA renews what it signs
    below it. Old certificates stay (active) so signatures they made still validate; the
    newest one is used from now on. Also publishes the first CRLs. Idempotent: a second run
    creates nothing. Flushes, never commits.
    """
    created: list[str] = []
    now = ctx.now()
    org = ctx.config.pki.organisation

    root = active_certificate(session, CertificateKind.ROOT_CA)
    if root is None or not _current(root, now):
        key_row, key = generate_recorded_key(session, ctx, KeyPurpose.ROOT_CA)
        spki = keys.PublicKeyInfo.load(key_row.public_key_der)
        name = ca_name(ctx, f"{org} Root CA")
        template = certs.CertificateTemplate(
            serial=ctx.new_serial(),
            subject=name,
            subject_key=spki,
            not_before=now - CLOCK_SKEW,
            not_after=_years(now, ctx.config.pki.root_validity_years),
            extensions=certs.ca_extensions(
                spki, issuer_spki=None, path_length=1, crl_url=None, ca_issuers_url=None
            ),
        )
        cert = certs.issue_certificate_der(ctx.custody, template, issuer_key=key, issuer_name=name)
        root = store_certificate(
            session, ctx, cert, kind=CertificateKind.ROOT_CA, issuer_id=None, key_row=key_row
        )
        created.append("root")
        log.info("created the root CA %s", root.subject)

    issuing = active_certificate(session, CertificateKind.ISSUING_CA)
    if issuing is None or not _current(issuing, now, root):
        root_material = load_material(session, CertificateKind.ROOT_CA, now)
        key_row, _key = generate_recorded_key(session, ctx, KeyPurpose.ISSUING_CA)
        spki = keys.PublicKeyInfo.load(key_row.public_key_der)
        template = certs.CertificateTemplate(
            serial=ctx.new_serial(),
            subject=ca_name(ctx, f"{org} Issuing CA"),
            subject_key=spki,
            not_before=now - CLOCK_SKEW,
            not_after=min(_years(now, ctx.config.pki.issuing_validity_years), root_material.row.not_after),
            extensions=certs.ca_extensions(
                spki,
                issuer_spki=root_material.certificate.public_key,
                path_length=0,
                crl_url=crl_url(ctx.config, root=True),
                ca_issuers_url=ca_url(ctx.config, root=True),
            ),
        )
        cert = certs.issue_certificate_der(
            ctx.custody, template, issuer_key=root_material.key, issuer_name=root_material.certificate.subject
        )
        issuing = store_certificate(
            session,
            ctx,
            cert,
            kind=CertificateKind.ISSUING_CA,
            issuer_id=root_material.row.id,
            key_row=key_row,
        )
        created.append("issuing")
        log.info("created the issuing CA %s", issuing.subject)

    tsa = active_certificate(session, CertificateKind.TSA)
    if tsa is None or not _current(tsa, now, issuing):
        tsa = issue_tsa_certificate(session, ctx)
        created.append("tsa")

    appliance = active_certificate(session, CertificateKind.APPLIANCE)
    if appliance is None or not _current(appliance, now, issuing):
        appliance = issue_appliance_certificate(session, ctx)
        created.append("appliance")

    if created:
        publish_crl(session, ctx, CertificateKind.ROOT_CA)
        publish_crl(session, ctx, CertificateKind.ISSUING_CA)
    return PkiSummary(root=root, issuing=issuing, tsa=tsa, appliance=appliance, created=tuple(created))


def renew_tsa_ahead(session: Session, ctx: PkiContext, needed_until: datetime) -> Certificate | None:
    """A new TSA certificate when the active one ends before `needed_until` and a new one
    would end later (archive timestamps made with it must outlast the ones they renew).
    The old certificate stays, for the tokens it signed. Flushes, never commits.

    :raises PkiNotInitialised: no issuing CA yet.
    :raises CaNotUsable: the issuing CA is expired, revoked or superseded.
    """
    tsa = active_certificate(session, CertificateKind.TSA)
    if tsa is not None and tsa.not_after >= needed_until:
        return None
    issuer = load_material(session, CertificateKind.ISSUING_CA, ctx.now())
    if tsa is not None and tsa_certificate_end(ctx, issuer.valid_until) <= tsa.not_after:
        return None  # the issuing CA ends first: only a new CA helps (appliance pki init, once it has)
    return issue_tsa_certificate(session, ctx)


def export_pem(session: Session, directory: Path) -> list[Path]:
    """Write root.pem, issuing.pem, tsa.pem and chain.pem (issuing + root) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    pems = {}
    for kind, name in (
        (CertificateKind.ROOT_CA, "root"),
        (CertificateKind.ISSUING_CA, "issuing"),
        (CertificateKind.TSA, "tsa"),
    ):
        row = active_certificate(session, kind)
        if row is None:
            raise PkiNotInitialised()
        pems[name] = certs.certificate_pem(row.der)
    pems["chain"] = pems["issuing"] + pems["root"]
    for name, text in pems.items():
        path = directory / f"{name}.pem"
        tmp = path.with_suffix(".pem.tmp")
        tmp.write_text(text, encoding="ascii")
        tmp.replace(path)
        written.append(path)
    return written
