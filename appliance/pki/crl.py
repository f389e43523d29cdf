"""Certificate revocation lists: built with asn1crypto, signed in the HSM, stored in `crls`.

A CRL is published on every revocation, and by `refresh_crl` (the scheduled job and
`appliance pki crl`) whenever the newest one is close to its nextUpdate. Serving a CRL
(`current_crl`, GET /pki/crl) only reads, except when the newest one is already past its
nextUpdate (see there).

Publication is serialised per issuer by a row lock on the issuer's certificate, so two
writers cannot compute the same CRL number from different revoked sets.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from appliance.errors import Conflict
from appliance.models.enums import CertificateKind, CertificateStatus
from appliance.models.pki import Certificate, Crl
from appliance.pki import certs
from appliance.pki.ca import PkiContext, active_certificate, load_material
from appliance.pki.errors import PkiNotInitialised

log = logging.getLogger(__name__)

CA_KINDS = (CertificateKind.ROOT_CA, CertificateKind.ISSUING_CA)


def refresh_margin(ctx: PkiContext) -> timedelta:
    """Regenerate this long before nextUpdate: a quarter of the validity, at most 6 hours."""
    return min(timedelta(hours=ctx.config.pki.crl_validity_hours) / 4, timedelta(hours=6))


def _lock_issuer(session: Session, issuer_id: int) -> None:
    # SELECT ... FOR UPDATE on PostgreSQL: a second publisher waits here until the first
    # commits, then reads the revoked set and the CRL number including the first one's work
    # (READ COMMITTED takes a new snapshot per statement). SQLite ignores FOR UPDATE, but
    # every transaction there already holds the database write lock (BEGIN IMMEDIATE, db.py).
    session.execute(select(Certificate.id).where(Certificate.id == issuer_id).with_for_update())


def publish_crl(session: Session, ctx: PkiContext, issuer_kind: CertificateKind) -> Crl:
    """Sign and store a new CRL of the CA's revoked certificates. Flushes, never commits.

    :raises PkiNotInitialised, CaNotUsable: no CA of that kind that may sign now.
    :raises Conflict: the CRL number was taken anyway (the lock makes this a bug, not a race).
    """
    now = ctx.now()
    issuer = load_material(session, issuer_kind, now)
    _lock_issuer(session, issuer.row.id)
    revoked = session.scalars(
        select(Certificate)
        .where(Certificate.issuer_id == issuer.row.id, Certificate.status == CertificateStatus.REVOKED)
        .order_by(Certificate.revoked_at, Certificate.id)
    ).all()
    number = (session.scalar(select(func.max(Crl.number)).where(Crl.issuer_id == issuer.row.id)) or 0) + 1
    next_update = now + timedelta(hours=ctx.config.pki.crl_validity_hours)
    der = certs.build_crl_der(
        ctx.custody,
        issuer_key=issuer.key,
        issuer_cert=issuer.certificate,
        number=number,
        this_update=now,
        next_update=next_update,
        revoked=[
            certs.RevokedEntry(
                serial=int(row.serial, 16),
                revoked_at=row.revoked_at or now,
                reason=(row.revocation_reason.value if row.revocation_reason else "unspecified"),
            )
            for row in revoked
        ],
    )
    crl = Crl(issuer_id=issuer.row.id, number=number, this_update=now, next_update=next_update, der=der)
    try:
        with session.begin_nested():
            session.add(crl)
    except IntegrityError as exc:
        # never fall back to the other writer's CRL: it may lack this transaction's revocation
        raise Conflict(f"CRL number {number} was published concurrently; try again") from exc
    log.info("published CRL %s of %s with %s entries", number, issuer.row.subject, len(revoked))
    return crl


def latest_crl(session: Session, issuer_id: int) -> Crl | None:
    return session.scalars(
        select(Crl).where(Crl.issuer_id == issuer_id).order_by(Crl.number.desc()).limit(1)
    ).first()


def _issuer_row(session: Session, issuer_kind: CertificateKind) -> Certificate:
    issuer = active_certificate(session, issuer_kind)
    if issuer is None:
        raise PkiNotInitialised()
    return issuer


def _fresh(session: Session, issuer_id: int, now: datetime, margin: timedelta) -> Crl | None:
    """The newest CRL when `now` is more than `margin` before its nextUpdate, else None."""
    latest = latest_crl(session, issuer_id)
    return latest if latest is not None and now < latest.next_update - margin else None


def refresh_crl(
    session: Session, ctx: PkiContext, issuer_kind: CertificateKind = CertificateKind.ISSUING_CA
) -> Crl:
    """Publish a new CRL when the newest one is within `refresh_margin` of its nextUpdate.

    For the scheduled job and `appliance pki crl`; returns the CRL now in force. Flushes,
    never commits.
    """
    return _refresh(session, ctx, _issuer_row(session, issuer_kind))


def _refresh(session: Session, ctx: PkiContext, issuer: Certificate) -> Crl:
    margin = refresh_margin(ctx)
    if (fresh := _fresh(session, issuer.id, ctx.now(), margin)) is not None:
        return fresh
    _lock_issuer(session, issuer.id)
    # another node may have refreshed while this one waited for the lock
    if (fresh := _fresh(session, issuer.id, ctx.now(), margin)) is not None:
        return fresh
    return publish_crl(session, ctx, issuer.kind)


def refresh_crls(session: Session, ctx: PkiContext) -> list[Crl]:
    """`refresh_crl` for the root and the issuing CA (what the scheduled job runs)."""
    return [refresh_crl(session, ctx, kind) for kind in CA_KINDS]


def refresh_own_crls(session: Session, ctx: PkiContext) -> list[Crl]:
    """`refresh_crl` for each of the appliance's CAs that exists; called before every signature.

    A signature is refused under hard-fail revocation once the newest CRL of its chain is past
    its nextUpdate, and it embeds those CRLs (B-LT). Refreshing here means signing never
    depends on the scheduled job having run; it costs four reads while the CRLs are fresh.
    An appliance signing only with externally issued certificates may have no CA of its own.
    """
    issuers = (active_certificate(session, kind) for kind in CA_KINDS)
    return [_refresh(session, ctx, issuer) for issuer in issuers if issuer is not None]


def current_crl(
    session: Session, ctx: PkiContext, issuer_kind: CertificateKind = CertificateKind.ISSUING_CA
) -> Crl:
    """The CRL to serve (GET /pki/crl): the newest one.

    A GET normally only reads; refreshing ahead of nextUpdate is `refresh_crl`'s job. But
    when the newest CRL is already past its nextUpdate (the job has not run: timer stopped,
    node down) it is regenerated here: a relying party with hard-fail revocation checking
    rejects every signature of the CA while it only gets an expired CRL, so serving a stale
    one would be an outage. May then flush a new CRL; the caller commits.
    """
    issuer = _issuer_row(session, issuer_kind)
    if (fresh := _fresh(session, issuer.id, ctx.now(), timedelta(0))) is not None:
        return fresh
    _lock_issuer(session, issuer.id)
    if (fresh := _fresh(session, issuer.id, ctx.now(), timedelta(0))) is not None:
        return fresh
    log.warning("the CRL of %s was past its nextUpdate when served; is the CRL job running?", issuer.subject)
    return publish_crl(session, ctx, issuer_kind)
