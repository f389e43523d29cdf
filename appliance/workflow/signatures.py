"""Confirming intent and signing one party, atomically.

`request_code` sends the signer a one-time code bound to them, the party and the document
version in front of them. `sign_party` then does, under the contract's row lock, in one
transaction: check state, turn, permission and certificate; consume the code; check that
every earlier signature of the current version still verifies (and its blob its hash);
sign the version with the party's HSM key, one visible stamp per field, timestamped, with
revocation info (B-LT; the contract's last signature adds a document timestamp, B-LTA,
and locks the document); store the new blob durably; then add the version, mark the party
signed, move the turn or complete the contract, append evidence and the operation log.
A completed contract's certificate of completion is made after that commit, and after the
answer (appliance.workflow.completion).

A failure anywhere rolls all of it back; a blob already written is removed (a crash leaves
at most an unreferenced blob, which nothing shows and the sweep removes). Wrong codes and
refused documents are recorded in their own transaction after the rollback, since those
must stay on record.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from sqlalchemy.orm import Session

from appliance.auth.records import ClientInfo, Principal
from appliance.db import transaction
from appliance.errors import ApplianceError, Forbidden, Unavailable
from appliance.models import (
    Certificate,
    Contract,
    ContractState,
    DocumentVersion,
    Party,
    PartyKind,
    PartyStatus,
    Routing,
    Seal,
    User,
)
from appliance.notify.channels import CodeContext
from appliance.signing.appearance import Appearance, Placement
from appliance.signing.documents import ResolvedSigner, resolve_signer, sign_stream
from appliance.signing.pades import PadesLevel, SignOptions
from appliance.signing.validate import Verdict, validate_pdf
from appliance.workflow.access import active_user, load_visible, may_act_for
from appliance.workflow.certificates import signing_key_label, usable_personal_certificate
from appliance.workflow.codes import (
    CodeBinding,
    CodeRejected,
    code_key,
    consume_code,
    issue_code,
    record_failed_attempt,
)
from appliance.workflow.completion import complete_contract
from appliance.workflow.context import WorkflowContext
from appliance.workflow.errors import DocumentIntegrityFailed, InvalidState, NotYourTurn
from appliance.workflow.idempotency import IdempotencyKey, remember, replay
from appliance.workflow.notices import notify_turn
from appliance.workflow.store import (
    current_version,
    find_party,
    lock_contract,
    record,
    record_evidence,
)
from appliance.workflow.sweep import discard_unreferenced_blob
from appliance.workflow.views import ContractView, contract_view

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CodeSent:
    channel: str
    destination: str
    """Masked: where the code went (e-mail address) or "authenticator app"."""
    expires_at: datetime


def request_code(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, contract_id: int, party_id: int
) -> CodeSent:
    now = ctx.clock.now()
    key = code_key(ctx.config.secrets.session_secret)
    with transaction(ctx.sessions) as session:
        user = active_user(session, principal.user_id)
        contract = load_visible(session, user, contract_id, lock=True)
        party = _party_to_sign(session, user, contract, party_id)
        binding = CodeBinding(user.id, contract.id, party.id, current_version(contract).sha256)
        to_send = issue_code(
            session,
            binding,
            config=ctx.config.codes,
            key=key,
            now=now,
            client_address=client.address,
            email=user.email,
        )
        record(
            session,
            contract,
            "code_sent",
            actor=user,
            client=client,
            now=now,
            details={
                "party_id": party.id,
                "channel": to_send.channel.value,
                "to": to_send.destination,
                "document_sha256": binding.document_sha256,
            },
        )
        context = (contract.title, user.display_name, user.locale)
    if to_send.code is not None:
        sender = ctx.code_senders.get(to_send.channel)
        if sender is None:
            raise Unavailable("Verification codes cannot be sent: mail is not set up on this appliance.")
        sender.send(
            user.email or "",
            to_send.code,
            CodeContext(
                contract_title=context[0],
                signer_name=context[1],
                expires_at=to_send.expires_at,
                locale=context[2],
            ),
        )
    return CodeSent(to_send.channel.value, to_send.destination, to_send.expires_at)


def sign_party(
    ctx: WorkflowContext,
    principal: Principal,
    client: ClientInfo,
    contract_id: int,
    party_id: int,
    code: str,
    idempotency: IdempotencyKey | None = None,
) -> ContractView:
    """Sign for `party_id` with `code`; the contract's view after it. When this signature
    completed the contract, the caller makes its certificate of completion next
    (`completion.issue_completion_certificate_or_log`), once the signer has the answer."""
    key = code_key(ctx.config.secrets.session_secret)
    written: list[str] = []
    try:
        with transaction(ctx.sessions) as session:
            return _sign_locked(
                ctx, session, principal, client, contract_id, party_id, code, key, idempotency, written
            )
    except CodeRejected as failure:
        details = {"party_id": party_id, "problem": failure.problem.value}
        _record_refusal(ctx, principal, client, contract_id, "code_failed", details, failure)
        raise
    except DocumentIntegrityFailed as failure:
        log.error("contract %s: %s", contract_id, failure.detail)
        details = {"party_id": party_id, "problem": failure.detail[:1000]}
        _record_refusal(ctx, principal, client, contract_id, "integrity_failed", details)
        raise
    except BaseException as failure:
        if isinstance(failure, ApplianceError):
            log.warning("signing party %s of contract %s failed: %s", party_id, contract_id, failure.detail)
        else:
            log.exception("signing party %s of contract %s failed", party_id, contract_id)
        raise
    finally:
        # a blob written for a transaction that did not commit is unreferenced: remove it
        for sha256 in written:
            discard_unreferenced_blob(ctx, sha256)


def _sign_locked(
    ctx: WorkflowContext,
    session: Session,
    principal: Principal,
    client: ClientInfo,
    contract_id: int,
    party_id: int,
    code: str,
    key: bytes,
    idempotency: IdempotencyKey | None,
    written: list[str],
) -> ContractView:
    user = active_user(session, principal.user_id)
    contract = load_visible(session, user, contract_id, lock=True)
    previous = replay(session, user.id, idempotency, ContractView)
    if previous is not None:
        return previous
    now = ctx.clock.now()
    party = _party_to_sign(session, user, contract, party_id)
    certificate, stamp_image = _signing_certificate(ctx, session, user, party, now)
    key_label = signing_key_label(session, certificate, now, seal=party.kind is PartyKind.SEAL)
    version = current_version(contract)
    consume_code(
        session,
        CodeBinding(user.id, contract.id, party.id, version.sha256),
        code,
        # the signer saw the content of every version: later ones only add appliance-made signatures
        accepted_document_sha256s={v.sha256 for v in contract.versions},
        key=key,
        now=now,
    )
    record_evidence(
        session,
        contract,
        "code_verified",
        actor=user,
        client=client,
        now=now,
        details={"party_id": party.id, "document_sha256": version.sha256},
    )
    signer = resolve_signer(session, ctx.signing, key_label)
    last = all(p.status is PartyStatus.SIGNED for p in contract.parties if p.id != party.id)
    with tempfile.TemporaryFile() as signed:
        level = _sign_fields(ctx, signer, version, contract, party, stamp_image, last=last, output=signed)
        signed.seek(0)
        new_sha256 = ctx.blobs.put(signed)
        written.append(new_sha256)
        size = signed.seek(0, 2)
    contract.versions.append(
        DocumentVersion(
            number=version.number + 1,
            sha256=new_sha256,
            size=size,
            filename=version.filename,
            page_sizes=version.page_sizes,
            produced_by_id=user.id,
            party_id=party.id,
            created_at=now,
        )
    )
    party.status, party.signed_at, party.certificate_id = PartyStatus.SIGNED, now, signer.certificate_id
    if party.kind is PartyKind.SEAL:
        party.user_id = user.id  # the seal keeper who applied it
    contract.updated_at = now
    session.flush()
    signed_facts = {
        "party_id": party.id,
        "party": party.display_name,
        "kind": party.kind.value,
        "certificate_serial": signer.certificate.serial_number,
        "certificate_subject": signer.certificate.subject.human_friendly,
        "document_sha256_before": version.sha256,
        "document_sha256_after": new_sha256,
        "fields": len(party.fields),
        "pades_level": level.value,
    }
    record(session, contract, "signed", actor=user, client=client, now=now, details=signed_facts)
    if last:
        complete_contract(ctx, session, contract, user, client, now)
    else:
        _advance_turn(ctx, session, contract)
    view = contract_view(session, contract, user)
    remember(session, user.id, idempotency, view, ContractView, now)
    return view


def _party_to_sign(session: Session, user: User, contract: Contract, party_id: int) -> Party:
    if contract.state is not ContractState.SIGNING:
        raise InvalidState("The contract is not out for signing, so nothing can be signed on it now.")
    party = find_party(contract, party_id)
    if not may_act_for(session, user, party):
        raise Forbidden("You do not sign for this party.")
    if party.status is PartyStatus.SIGNED:
        raise InvalidState("This party has signed already.")
    if party.status is not PartyStatus.PENDING:
        raise NotYourTurn("It is not this party's turn yet: earlier parties sign first.")
    return party


def _signing_certificate(
    ctx: WorkflowContext, session: Session, user: User, party: Party, now: datetime
) -> tuple[Certificate | None, bytes | None]:
    if party.kind is PartyKind.PERSON:
        return usable_personal_certificate(session, user.id, now), None
    seal = session.get(Seal, party.seal_id)
    if seal is None or not seal.active:
        raise InvalidState("This seal is no longer in use; the contract cannot be sealed with it.")
    certificate = session.get(Certificate, seal.certificate_id) if seal.certificate_id else None
    image = ctx.blobs.get(seal.image_sha256) if seal.image_sha256 else None
    return certificate, image


def _sign_fields(
    ctx: WorkflowContext,
    signer: ResolvedSigner,
    version: DocumentVersion,
    contract: Contract,
    party: Party,
    stamp_image: bytes | None,
    *,
    last: bool,
    output: BinaryIO,
) -> PadesLevel:
    """One signature per field of the party (each with its stamp), the last one into `output`;
    returns the PAdES level of the last one."""
    with ExitStack() as stack:
        current: BinaryIO = stack.enter_context(tempfile.TemporaryFile())
        _copy_checked(ctx, version, current)
        if version.number > 1:
            _check_earlier_signatures(signer, current, ctx)
        fields = sorted(party.fields, key=lambda f: f.id)
        for index, field in enumerate(fields):
            final = index == len(fields) - 1
            target = output if final else stack.enter_context(tempfile.TemporaryFile())
            current.seek(0)
            result = sign_stream(
                ctx.signing,
                signer,
                current,
                target,
                SignOptions(
                    appearance=Appearance(
                        placement=Placement(
                            page=field.page + 1,
                            box=(field.x, field.y, field.x + field.width, field.y + field.height),
                        ),
                        image_png=stamp_image,
                        signer_name=party.display_name,
                    ),
                    field_name=f"Party{party.id}Field{field.id}",
                    reason=f"Signed for contract {contract.id}: {contract.title}"[:200],
                    lock_document=last and final,
                    document_timestamp=last and final,
                    max_pages=ctx.config.uploads.max_pages,
                ),
            )
            current = target  # the next field signs the output of this one
    return result.level


def _copy_checked(ctx: WorkflowContext, version: DocumentVersion, output: BinaryIO) -> None:
    """Copy the version's blob, refusing it when it no longer has its recorded sha256."""
    digest = hashlib.sha256()
    with ctx.blobs.open(version.sha256) as source:
        while chunk := source.read(1024 * 1024):
            digest.update(chunk)
            output.write(chunk)
    if digest.hexdigest() != version.sha256:
        raise DocumentIntegrityFailed(
            "The stored document no longer matches its recorded hash; nothing was signed. "
            "Ask your administrator to restore it from a backup.",
            detail=f"blob {version.sha256} (version {version.number}) has sha256 {digest.hexdigest()}",
        )


def _check_earlier_signatures(signer: ResolvedSigner, current: BinaryIO, ctx: WorkflowContext) -> None:
    current.seek(0)
    report = validate_pdf(current, signer.trust, ctx.clock)
    if report.verdict is not Verdict.VALID:
        problems = [f"signature {s.index}: {', '.join(s.problems)}" for s in report.signatures if s.problems]
        raise DocumentIntegrityFailed(
            "An earlier signature on this document no longer verifies, so it was not signed again. "
            "Ask your administrator to check the contract's evidence.",
            detail="; ".join(problems) or report.message,
        )


def _advance_turn(ctx: WorkflowContext, session: Session, contract: Contract) -> None:
    """In sequential routing, when a routing group has all signed, the next group's turn starts."""
    if contract.routing is Routing.PARALLEL:
        return
    if any(p.status is PartyStatus.PENDING for p in contract.parties):
        return
    waiting = [p for p in contract.parties if p.status is PartyStatus.WAITING]
    if not waiting:
        return
    following = min(p.routing_order for p in waiting)
    turn = [p for p in waiting if p.routing_order == following]
    for party in turn:
        party.status = PartyStatus.PENDING
    session.flush()
    notify_turn(ctx, session, contract, turn)


def _record_refusal(
    ctx: WorkflowContext,
    principal: Principal,
    client: ClientInfo,
    contract_id: int,
    action: str,
    details: Mapping[str, object],
    failed_code: CodeRejected | None = None,
) -> None:
    """Keep a refused signing on record, in a transaction of its own after the rollback."""
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        if failed_code is not None:
            record_failed_attempt(session, failed_code, now)
        contract = lock_contract(session, contract_id)
        actor = session.get(User, principal.user_id)
        record(session, contract, action, actor=actor, client=client, now=now, details=details)
