"""Confirming intent and signing one party, atomically.

`request_code` sends the signer a one-time code bound to them, the party and the document
version in front of them. `sign_party` then signs in three steps:

1. Plan, in a short transaction: check state, turn, permission and certificate, check the
   code without using it up, and resolve the signer (chain, CRLs, timestamp authority).
2. Sign, with no transaction open: check that the version's blob still has its hash and that
   every earlier signature on it still verifies; sign it with the party's HSM key, one
   visible stamp per field, timestamped, with revocation info (B-LT; the contract's last
   signature adds a document timestamp, B-LTA, and locks the document); store the new blob.
3. Record, under the contract's row lock, in one transaction: check again what may have
   changed meanwhile, use the code up (one conditional UPDATE: of two requests racing with
   it, one wins), add the version, mark the party signed, move the turn or complete the
   contract, append evidence and the operation log.

The signing is the slow part, and on SQLite any write transaction holds the database's one
write lock: made inside the transaction, one signature at a time could be made in the whole
appliance. Made outside, other signers' plans and records interleave with it. The record
step refuses a plan whose version is no longer the contract's current one (another party
of a parallel contract signed first): the file just made is discarded and the signing starts
again from step 1 on the new version, so no signature is ever lost or forked.

A seal that the appliance applies itself (appliance.workflow.automatic_seals) goes through
the same plan, signing and record, with no person and no code.

A failure anywhere leaves the contract as it was; a blob already written is removed (a crash
leaves at most an unreferenced blob, which nothing shows and the sweep removes). Wrong codes
and refused documents are recorded in their own transaction, since those must stay on
record. A completed contract's certificate of completion is made after the record step's
commit, and after the answer (appliance.workflow.completion).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from sqlalchemy.orm import Session

from appliance.auth.records import ClientInfo, Principal
from appliance.db import transaction
from appliance.errors import ApplianceError, Conflict, Forbidden, Unavailable
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
from appliance.workflow.certificates import personal_signing_key_label, signing_key_label
from appliance.workflow.codes import (
    CodeBinding,
    CodeRejected,
    check_code,
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
from appliance.workflow.seal_policy import AutomaticFor
from appliance.workflow.seal_usage import record_seal_usage
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

_SIGN_ATTEMPTS = 3
"""Tries of one signing when other parties' signatures keep landing first (parallel routing)."""


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
        for _attempt in range(_SIGN_ATTEMPTS):
            view = _sign_once(ctx, principal, client, contract_id, party_id, code, key, idempotency, written)
            if view is not None:
                return view
        raise Conflict(
            "Other parties signed this contract at the same moment as you, several times over. "
            "Sign again: your code is still valid."
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
        # a blob whose transaction did not commit, or that lost to another signer's
        for sha256 in written:
            discard_unreferenced_blob(ctx, sha256)


@dataclass(frozen=True)
class SigningPlan:
    """What the checks of one signing decided, as plain data for the signing outside any transaction."""

    contract_id: int
    contract_title: str
    party_id: int
    party_name: str
    fields: tuple[tuple[str, Placement], ...]
    """(field name, where its stamp goes) of each of the party's fields, in signing order."""
    version_number: int
    version_sha256: str
    """The version signed on top of."""
    signer: ResolvedSigner
    stamp_image: bytes | None
    last: bool
    """Every other party has signed: this signature completes the contract."""


def _sign_once(
    ctx: WorkflowContext,
    principal: Principal,
    client: ClientInfo,
    contract_id: int,
    party_id: int,
    code: str,
    key: bytes,
    idempotency: IdempotencyKey | None,
    written: list[str],
) -> ContractView | None:
    """One try: None when another party's signature landed while this one was being made.
    `written` collects the blobs stored that no version references (yet)."""
    with transaction(ctx.sessions) as session:
        plan = _plan(ctx, session, principal, contract_id, party_id, code, key, idempotency)
    if isinstance(plan, ContractView):
        return plan
    signed = sign_to_blob(ctx, plan, written)
    with transaction(ctx.sessions) as session:
        view = _record_signature(ctx, session, principal, plan, client, code, key, idempotency, signed)
    if view is not None and view.versions[-1].sha256 == signed.sha256:
        written.remove(signed.sha256)  # committed as the new version: nothing to discard
    return view


def _plan(
    ctx: WorkflowContext,
    session: Session,
    principal: Principal,
    contract_id: int,
    party_id: int,
    code: str,
    key: bytes,
    idempotency: IdempotencyKey | None,
) -> SigningPlan | ContractView:
    """Every check before signing, the code's included (without using it up); or the stored
    answer of an earlier request with the same idempotency key."""
    user = active_user(session, principal.user_id)
    contract = load_visible(session, user, contract_id)
    previous = replay(session, user.id, idempotency, ContractView)
    if previous is not None:
        return previous
    now = ctx.clock.now()
    party = _party_to_sign(session, user, contract, party_id)
    key_label = _signing_key_label(session, user, party, now)
    _verify_code(check_code, session, user, contract, party, code, key, now)
    return plan_signature(ctx, session, contract, party, key_label)


def plan_signature(
    ctx: WorkflowContext,
    session: Session,
    contract: Contract,
    party: Party,
    key_label: str,
) -> SigningPlan:
    """What signing `party` of `contract` with the HSM key `key_label` takes, once every check
    of who signs (a person with their code, or the appliance under a seal's standing
    authorisation) has passed."""
    version = current_version(contract)
    return SigningPlan(
        contract_id=contract.id,
        contract_title=contract.title,
        party_id=party.id,
        party_name=party.display_name,
        fields=tuple(
            (
                f"Party{party.id}Field{f.id}",
                Placement(page=f.page + 1, box=(f.x, f.y, f.x + f.width, f.y + f.height)),
            )
            for f in sorted(party.fields, key=lambda f: f.id)
        ),
        version_number=version.number,
        version_sha256=version.sha256,
        signer=resolve_signer(session, ctx.signing, key_label),
        stamp_image=_stamp_image(ctx, session, party),
        last=all(p.status is PartyStatus.SIGNED for p in contract.parties if p.id != party.id),
    )


@dataclass(frozen=True)
class SignedFile:
    sha256: str
    size: int
    level: PadesLevel


def _record_signature(
    ctx: WorkflowContext,
    session: Session,
    principal: Principal,
    plan: SigningPlan,
    client: ClientInfo,
    code: str,
    key: bytes,
    idempotency: IdempotencyKey | None,
    signed: SignedFile,
) -> ContractView | None:
    """Under the contract's row lock: check again what may have changed since the plan, use
    the code up and record the signature; None when the document moved on meanwhile."""
    user = active_user(session, principal.user_id)
    contract = load_visible(session, user, plan.contract_id, lock=True)
    previous = replay(session, user.id, idempotency, ContractView)
    if previous is not None:
        return previous  # a retry of this request signed first
    now = ctx.clock.now()
    party = _party_to_sign(session, user, contract, plan.party_id)
    key_label = _signing_key_label(session, user, party, now)
    if not plan_still_holds(contract, plan, key_label):
        return None  # another party signed first (or the certificate was renewed): sign again
    _verify_code(consume_code, session, user, contract, party, code, key, now)
    record_evidence(
        session,
        contract,
        "code_verified",
        actor=user,
        client=client,
        now=now,
        details={"party_id": party.id, "document_sha256": plan.version_sha256},
    )
    append_signature(ctx, session, contract, party, plan, signed, actor=user, client=client, now=now)
    view = contract_view(session, contract, user)
    remember(session, user.id, idempotency, view, ContractView, now)
    return view


def plan_still_holds(contract: Contract, plan: SigningPlan, key_label: str) -> bool:
    """Whether the document and the key are still the ones `plan` signed with."""
    return current_version(contract).sha256 == plan.version_sha256 and key_label == plan.signer.key_label


def append_signature(
    ctx: WorkflowContext,
    session: Session,
    contract: Contract,
    party: Party,
    plan: SigningPlan,
    signed: SignedFile,
    *,
    actor: User | None,
    client: ClientInfo | None,
    now: datetime,
    automatic: AutomaticFor | None = None,
) -> None:
    """Record `signed` as the contract's new version, signed by `party`, and move the contract
    on (next turn, or completed). `automatic`: what authorised the appliance to apply the seal."""
    version = current_version(contract)
    contract.versions.append(
        DocumentVersion(
            number=version.number + 1,
            sha256=signed.sha256,
            size=signed.size,
            filename=version.filename,
            page_sizes=version.page_sizes,
            produced_by_id=actor.id if actor else None,
            party_id=party.id,
            created_at=now,
        )
    )
    party.status, party.signed_at, party.certificate_id = PartyStatus.SIGNED, now, plan.signer.certificate_id
    if party.kind is PartyKind.SEAL:
        party.user_id = actor.id if actor else None  # the seal keeper who applied it
        record_seal_usage(session, contract, party, actor, signed.sha256, now, automatic=automatic)
    contract.updated_at = now
    session.flush()
    signed_facts = {
        "party_id": party.id,
        "party": party.display_name,
        "kind": party.kind.value,
        "certificate_serial": plan.signer.certificate.serial_number,
        "certificate_subject": plan.signer.certificate.subject.human_friendly,
        "document_sha256_before": version.sha256,
        "document_sha256_after": signed.sha256,
        "fields": len(party.fields),
        "pades_level": signed.level.value,
    }
    if automatic:
        signed_facts["applied_automatically_for"] = automatic.value
    record(session, contract, "signed", actor=actor, client=client, now=now, details=signed_facts)
    if plan.last:
        complete_contract(ctx, session, contract, actor, client, now)
    else:
        _advance_turn(ctx, session, contract)


def _verify_code(
    verify: Callable[..., None],
    session: Session,
    user: User,
    contract: Contract,
    party: Party,
    code: str,
    key: bytes,
    now: datetime,
) -> None:
    """`check_code` or `consume_code` for this signature."""
    verify(
        session,
        CodeBinding(user.id, contract.id, party.id, current_version(contract).sha256),
        code,
        # the signer saw the content of every version: later ones only add appliance-made signatures
        accepted_document_sha256s={v.sha256 for v in contract.versions},
        key=key,
        now=now,
    )


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
    if party.kind is PartyKind.SEAL:
        _seal(session, party)  # refuses a seal disabled or retired since the contract was sent
    return party


def _signing_key_label(session: Session, user: User, party: Party, now: datetime) -> str:
    """The HSM key that signs for `party` now: the person's, or the seal's organisation's."""
    if party.kind is PartyKind.PERSON:
        return personal_signing_key_label(session, user, now)
    return seal_key_label(session, party, now)


def seal_key_label(session: Session, party: Party, now: datetime) -> str:
    """The HSM key of a seal party's seal, refusing a seal or certificate that may not sign."""
    seal = _seal(session, party)
    certificate = session.get(Certificate, seal.certificate_id) if seal.certificate_id else None
    return signing_key_label(session, certificate, now, seal=True)


def _stamp_image(ctx: WorkflowContext, session: Session, party: Party) -> bytes | None:
    if party.kind is PartyKind.PERSON:
        return None
    seal = _seal(session, party)
    return ctx.blobs.get(seal.image_sha256) if seal.image_sha256 else None


def _seal(session: Session, party: Party) -> Seal:
    seal = session.get(Seal, party.seal_id)
    if seal is None or not seal.active:
        raise InvalidState("This seal is no longer in use; the contract cannot be sealed with it.")
    return seal


def sign_to_blob(ctx: WorkflowContext, plan: SigningPlan, written: list[str]) -> SignedFile:
    """Sign as `plan` says and store the result; its name joins `written` (the blobs to
    discard unless a version comes to reference them)."""
    with tempfile.TemporaryFile() as signed:
        level = sign_fields(ctx, plan, output=signed)
        signed.seek(0)
        sha256 = ctx.blobs.put(signed)
        written.append(sha256)
        return SignedFile(sha256, signed.seek(0, 2), level)


def sign_fields(ctx: WorkflowContext, plan: SigningPlan, *, output: BinaryIO) -> PadesLevel:
    """One signature per field of the party (each with its stamp), the last one into `output`;
    returns the PAdES level of the last one."""
    with ExitStack() as stack:
        current: BinaryIO = stack.enter_context(tempfile.TemporaryFile())
        _copy_checked(ctx, plan.version_sha256, plan.version_number, current)
        if plan.version_number > 1:
            _check_earlier_signatures(plan.signer, current, ctx)
        for index, (field_name, placement) in enumerate(plan.fields):
            final = index == len(plan.fields) - 1
            target = output if final else stack.enter_context(tempfile.TemporaryFile())
            current.seek(0)
            result = sign_stream(
                ctx.signing,
                plan.signer,
                current,
                target,
                SignOptions(
                    appearance=Appearance(
                        placement=placement, image_png=plan.stamp_image, signer_name=plan.party_name
                    ),
                    field_name=field_name,
                    reason=f"Signed for contract {plan.contract_id}: {plan.contract_title}"[:200],
                    lock_document=plan.last and final,
                    document_timestamp=plan.last and final,
                    max_pages=ctx.config.uploads.max_pages,
                ),
            )
            current = target  # the next field signs the output of this one
    return result.level


def _copy_checked(ctx: WorkflowContext, sha256: str, number: int, output: BinaryIO) -> None:
    """Copy version `number`'s blob, refusing it when it no longer has its recorded `sha256`."""
    digest = hashlib.sha256()
    with ctx.blobs.open(sha256) as source:
        while chunk := source.read(1024 * 1024):
            digest.update(chunk)
            output.write(chunk)
    if digest.hexdigest() != sha256:
        raise DocumentIntegrityFailed(
            "The stored document no longer matches its recorded hash; nothing was signed. "
            "Ask your administrator to restore it from a backup.",
            detail=f"blob {sha256} (version {number}) has sha256 {digest.hexdigest()}",
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
