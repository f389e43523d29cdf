"""Signed checkpoints of the operation log, and the check of the whole log (`appliance verify-log`).

The hash chain (appliance.audit.log) shows a record edited in place, but not a tail rewritten
by someone who may write the database: they can recompute every later hash and the head row.
A checkpoint is the chain head at one moment (`seq`, `head_hash`, time) signed with the
appliance's document key in the HSM, which no database writer holds. `verify_log` recomputes
the chain and checks each checkpoint's signature with the public key the HSM reports for that
key, and that the record at its `seq` still has its hash: a record removed, edited, inserted,
reordered, or cut off from the end before the newest checkpoint is named, however carefully
the chain around it was recomputed.

Checkpoints are written by the `log-checkpoint` job and on demand (`appliance log-checkpoint`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.audit.log import ChainBreak, verify_chain
from appliance.errors import Unavailable
from appliance.hsm.api import KeyCustody, default_digest_algorithm
from appliance.models import AuditChainHead, AuditCheckpoint, AuditEvent, HsmKey
from appliance.models.enums import CertificateKind
from appliance.pki.ca import active_certificate, key_ref_of

_PURPOSE = "appliance-operation-log-checkpoint/v1"
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


@dataclass(frozen=True)
class LogReport:
    records: int
    checkpoints: int
    problems: tuple[ChainBreak, ...]
    """Every problem found, by record (`seq`), in order."""

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def first_bad_record(self) -> int | None:
        return self.problems[0].seq if self.problems else None


def write_checkpoint(session: Session, custody: KeyCustody, now: datetime) -> AuditCheckpoint:
    """Sign the chain head as it is in the caller's transaction; flushes, never commits.

    Holds the chain head row's lock, like an append, so the head cannot move meanwhile.

    :raises Unavailable: the appliance has no document key yet (`appliance pki init`).
    """
    head = session.execute(
        select(AuditChainHead).where(AuditChainHead.id == 1).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        raise Unavailable(
            "The operation log cannot be checkpointed: its head row is missing; run `appliance migrate`."
        )
    certificate = active_certificate(session, CertificateKind.APPLIANCE)
    if certificate is None or certificate.key_id is None:
        raise Unavailable(
            "The operation log cannot be checkpointed: the appliance has no document key yet. "
            "Run `appliance pki init`."
        )
    key = session.get(HsmKey, certificate.key_id)
    assert key is not None  # certificates.key_id is a foreign key
    ref = key_ref_of(key)
    digest = default_digest_algorithm(ref.algorithm)
    checkpoint = AuditCheckpoint(
        seq=head.last_seq,
        head_hash=head.last_hash,
        created_at=now.astimezone(UTC),  # as the database gives it back, for the signed text
        key_id=key.id,
        certificate_id=certificate.id,
        digest_algorithm=digest,
    )
    checkpoint.signature = custody.sign(ref, _signed_text(checkpoint), digest_algorithm=digest)
    session.add(checkpoint)
    session.flush()
    return checkpoint


def verify_log(session: Session, custody: KeyCustody) -> LogReport:
    """The chain recomputed record by record, then every checkpoint against it."""
    problems = list(verify_chain(session))
    records = session.scalar(select(AuditChainHead.last_seq).where(AuditChainHead.id == 1)) or 0
    checkpoints = 0
    newest_seq = 0
    for checkpoint in _checkpoints(session):
        checkpoints += 1
        problems.extend(_check_checkpoint(session, custody, checkpoint, newest_seq))
        newest_seq = max(newest_seq, checkpoint.seq)
    problems.sort(key=lambda p: p.seq)
    return LogReport(records=records, checkpoints=checkpoints, problems=tuple(problems))


def newest_checkpoint(session: Session) -> AuditCheckpoint | None:
    return session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1)).first()


def _checkpoints(session: Session) -> Iterator[AuditCheckpoint]:
    yield from session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id))


def _check_checkpoint(
    session: Session, custody: KeyCustody, checkpoint: AuditCheckpoint, newest_seq: int
) -> list[ChainBreak]:
    name = f"checkpoint {checkpoint.id} (record {checkpoint.seq}, {checkpoint.created_at:%Y-%m-%d %H:%M:%S})"
    if not _signature_verifies(session, custody, checkpoint):
        return [ChainBreak(checkpoint.seq, f"{name}: its signature does not verify with the appliance's key")]
    found: list[ChainBreak] = []
    if checkpoint.seq < newest_seq:
        found.append(ChainBreak(checkpoint.seq, f"{name}: older than the checkpoint before it"))
    if checkpoint.seq == 0:
        return found
    event = session.get(AuditEvent, checkpoint.seq)
    if event is None:
        newest = session.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1)) or 0
        if newest < checkpoint.seq:
            found.append(
                ChainBreak(newest + 1, f"records {newest + 1} to {checkpoint.seq} were removed ({name})")
            )
        else:
            found.append(ChainBreak(checkpoint.seq, f"record {checkpoint.seq} was removed ({name})"))
    elif event.hash != checkpoint.head_hash:
        # the chain up to here may have been recomputed: the change lies after the last good checkpoint
        first = min(newest_seq + 1, checkpoint.seq)
        found.append(
            ChainBreak(
                first,
                f"record {checkpoint.seq} is not the one {name} signed: records {first} to "
                f"{checkpoint.seq} were changed, inserted, reordered or removed",
            )
        )
    return found


def _signature_verifies(session: Session, custody: KeyCustody, checkpoint: AuditCheckpoint) -> bool:
    key = session.get(HsmKey, checkpoint.key_id)
    if key is None or checkpoint.digest_algorithm not in _HASHES:
        return False
    # the public key comes from the HSM, not from a database row someone could have replaced
    public = serialization.load_der_public_key(custody.public_key_info(key_ref_of(key)))
    algorithm = _HASHES[checkpoint.digest_algorithm]()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(checkpoint.signature, _signed_text(checkpoint), padding.PKCS1v15(), algorithm)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(checkpoint.signature, _signed_text(checkpoint), ec.ECDSA(algorithm))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _signed_text(checkpoint: AuditCheckpoint) -> bytes:
    fields = (_PURPOSE, str(checkpoint.seq), checkpoint.head_hash, checkpoint.created_at.isoformat())
    return "".join(f"{field}\n" for field in fields).encode()
