"""Starting a contract: upload the original, add parties and their fields, send it."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from appliance.auth.provisioning import find_user, upsert_user
from appliance.auth.records import ClientInfo, Principal
from appliance.db import transaction
from appliance.directory.api import is_text
from appliance.errors import Conflict, InvalidInput, NotFound, Unavailable
from appliance.models import (
    Contract,
    ContractState,
    DocumentVersion,
    Organisation,
    Party,
    PartyKind,
    PartyStatus,
    Routing,
    Seal,
    SignatureField,
    User,
    UserSource,
)
from appliance.signing.normalise import normalise_upload
from appliance.workflow.access import active_user, load_visible, require_initiator
from appliance.workflow.approvals import send_out
from appliance.workflow.context import WorkflowContext
from appliance.workflow.idempotency import IdempotencyKey, remember, replay
from appliance.workflow.states import Transition, next_state
from appliance.workflow.store import current_version, find_party, page_sizes, record
from appliance.workflow.views import ContractView, contract_view

MAX_TITLE = 300
MAX_MESSAGE = 2000
MAX_PARTIES = 50
MAX_FIELDS_PER_PARTY = 20
MIN_FIELD_POINTS = 20.0
MAX_FILENAME = 255

MAX_SEALS = 500
"""The seals offered to pick from; far more than any organisation uses."""


@dataclass(frozen=True)
class NewContract:
    title: str
    filename: str
    not_excluded: bool
    """The initiator confirms the document is none of the kinds the law keeps from electronic
    signing (EXCLUDED_KINDS); without it no contract is started."""
    routing: Routing = Routing.SEQUENTIAL
    message: str | None = None
    deadline: datetime | None = None
    """None: the configured default (contracts.default_deadline_days from now)."""


@dataclass(frozen=True)
class NewField:
    page: int
    """1-based page number."""
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class NewParty:
    kind: PartyKind
    fields: tuple[NewField, ...]
    username: str | None = None
    """For a person: their login name in the directory (they need not have signed in yet)."""
    seal_id: int | None = None
    """For an organisation seal."""
    routing_order: int = 1


@dataclass(frozen=True)
class PersonChoice:
    """Someone an initiator can add as a party (by `username`)."""

    username: str
    display_name: str
    department: str | None
    organisation: str | None


def find_people(
    ctx: WorkflowContext, principal: Principal, query: str, *, limit: int = 20
) -> list[PersonChoice]:
    """People in the directory whose name, login name or e-mail contains `query`, for picking
    parties; they need not have signed in yet. E-mail and phone are not shown (privacy), and
    people who cancelled their account here are not offered (they cannot sign)."""
    with ctx.sessions() as session:
        active_user(session, principal.user_id)
        if ctx.directory is None:
            raise Unavailable(
                "No directory is configured, so people cannot be searched; name them by login name."
            )
        found = ctx.directory.search_people(query, limit=limit)
        cancelled = set(
            session.scalars(
                select(User.directory_uuid).where(
                    User.directory_uuid.in_([p.directory_id for p in found]), User.anonymised_at.is_not(None)
                )
            )
        )
    return [
        PersonChoice(
            username=person.username,
            display_name=person.display_name,
            department=person.department,
            organisation=person.organisation.name if person.organisation else None,
        )
        for person in found
        if person.directory_id not in cancelled
    ]


EXCLUDED_KINDS = (
    "personal relations: marriage, adoption, inheritance",
    "stopping a supply of water, heat, gas or power",
)
"""What the Electronic Signature Law (art. 3) keeps from electronic signing, as the
initiator's confirmation names it; the evidence records that it was confirmed."""


def create_contract(
    ctx: WorkflowContext,
    principal: Principal,
    client: ClientInfo,
    spec: NewContract,
    upload: BinaryIO,
    idempotency: IdempotencyKey | None = None,
) -> ContractView:
    """Check and rewrite the upload, store it under its sha256, and open a draft for it.

    With `idempotency`, a retry returns the first answer instead of a second draft.
    """
    with ctx.sessions() as session:
        previous = replay(session, principal.user_id, idempotency, ContractView)
    if previous is not None:
        return previous
    try:
        return _create(ctx, principal, client, spec, upload, idempotency)
    except IntegrityError:
        # the same key raced in from another request: its answer is stored now
        with ctx.sessions() as session:
            previous = replay(session, principal.user_id, idempotency, ContractView)
        if previous is None:
            raise
        return previous


def _create(
    ctx: WorkflowContext,
    principal: Principal,
    client: ClientInfo,
    spec: NewContract,
    upload: BinaryIO,
    idempotency: IdempotencyKey | None,
) -> ContractView:
    now = ctx.clock.now()
    confirm_not_excluded(spec.not_excluded)
    title = required_text(spec.title, "title", MAX_TITLE)
    message = optional_text(spec.message, "message", MAX_MESSAGE)
    deadline = deadline_from(ctx, spec.deadline, now)
    with tempfile.TemporaryFile() as normalised:
        facts = normalise_upload(upload, normalised, ctx.config.uploads)
        normalised.seek(0)
        sha256 = ctx.blobs.put(normalised)
    # a draft that fails to commit leaves its upload to the sweep (appliance.workflow.sweep):
    # the same file may be another request's upload, in flight
    with transaction(ctx.sessions) as session:
        user = active_user(session, principal.user_id)
        original = DocumentVersion(
            number=1,
            sha256=sha256,
            size=facts.size,
            filename=_filename(spec.filename),
            page_sizes=json.dumps(facts.page_sizes),
            produced_by_id=user.id,
            created_at=now,
        )
        contract = open_draft(
            session,
            user,
            title=title,
            routing=spec.routing,
            message=message,
            deadline=deadline,
            original=original,
            now=now,
        )
        details: dict[str, object] = {
            "sha256": sha256,
            "size": facts.size,
            "pages": facts.page_count,
            "confirmed_not_excluded": list(EXCLUDED_KINDS),
        }
        if facts.removed:
            details["removed_from_upload"] = list(facts.removed)
        record(session, contract, "created", actor=user, client=client, now=now, details=details)
        view = contract_view(session, contract, user)
        remember(session, user.id, idempotency, view, ContractView, now)
        return view


def confirm_not_excluded(confirmed: bool) -> None:
    """Refuse to start a contract without the initiator's confirmation (EXCLUDED_KINDS)."""
    if not confirmed:
        raise InvalidInput(
            "Confirm that the document is not one the law keeps from electronic signing "
            "(marriage, adoption, inheritance; stopping water, heat, gas or power supply)."
        )


def open_draft(
    session: Session,
    user: User,
    *,
    title: str,
    routing: Routing,
    message: str | None,
    deadline: datetime,
    original: DocumentVersion,
    now: datetime,
    template_id: int | None = None,
) -> Contract:
    """A new draft of `user`'s with `original` as its version 1 (checked values only)."""
    contract = Contract(
        title=title,
        organisation_id=user.organisation_id,
        initiator_id=user.id,
        state=ContractState.DRAFT,
        routing=routing,
        message=message,
        deadline=deadline,
        template_id=template_id,
        created_at=now,
        updated_at=now,
        state_changed_at=now,
    )
    session.add(contract)
    session.flush()
    contract.versions.append(original)
    session.flush()
    return contract


def add_party(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, contract_id: int, spec: NewParty
) -> ContractView:
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        user = active_user(session, principal.user_id)
        contract = _draft_of(session, user, contract_id)
        attach_party(ctx, session, contract, spec, actor=user, client=client, now=now)
        return contract_view(session, contract, user)


def attach_party(
    ctx: WorkflowContext,
    session: Session,
    contract: Contract,
    spec: NewParty,
    *,
    actor: User,
    client: ClientInfo,
    now: datetime,
) -> Party:
    """Check `spec` against the draft `contract` and add it as a party, with its evidence."""
    if len(contract.parties) >= MAX_PARTIES:
        raise InvalidInput(f"A contract can have at most {MAX_PARTIES} parties.")
    if not 1 <= spec.routing_order <= MAX_PARTIES:
        raise InvalidInput(f"The routing order must be between 1 and {MAX_PARTIES}.")
    fields = signature_fields(spec.fields, page_sizes(current_version(contract)))
    party = Party(routing_order=spec.routing_order, status=PartyStatus.WAITING, fields=fields)
    if spec.kind is PartyKind.PERSON:
        signer = person_to_add(ctx, session, spec.username, now)
        if any(p.kind is PartyKind.PERSON and p.user_id == signer.id for p in contract.parties):
            raise Conflict(f"{signer.display_name} is already a party to this contract.")
        party.kind, party.user_id, party.display_name = PartyKind.PERSON, signer.id, signer.display_name
    else:
        seal = seal_to_add(session, spec.seal_id)
        if any(p.kind is PartyKind.SEAL and p.seal_id == seal.id for p in contract.parties):
            raise Conflict(f"The seal {seal.name} is already a party to this contract.")
        party.kind, party.seal_id, party.display_name = PartyKind.SEAL, seal.id, seal.name
    contract.parties.append(party)
    contract.updated_at = now
    session.flush()
    record(
        session,
        contract,
        "party_added",
        actor=actor,
        client=client,
        now=now,
        details=_party_facts(party),
    )
    return party


def _party_facts(party: Party) -> dict[str, object]:
    """The evidence of a party added: a person's user id too, so that their name is still
    known to be theirs if they are removed from the draft and later cancel their account."""
    facts: dict[str, object] = {"party_id": party.id, "kind": party.kind.value, "name": party.display_name}
    if party.user_id is not None:
        facts["user_id"] = party.user_id
    return facts


def remove_party(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, contract_id: int, party_id: int
) -> ContractView:
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        user = active_user(session, principal.user_id)
        contract = _draft_of(session, user, contract_id)
        party = find_party(contract, party_id)
        contract.parties.remove(party)
        contract.updated_at = now
        session.flush()
        record(
            session,
            contract,
            "party_removed",
            actor=user,
            client=client,
            now=now,
            details={"party_id": party_id, "name": party.display_name},
        )
        return contract_view(session, contract, user)


def send_contract(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, contract_id: int
) -> ContractView:
    """Send the contract: out for signing (the first parties in routing order, or all in
    parallel routing, are asked), or first to its seals' approvers when a seal needs approval."""
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        user = active_user(session, principal.user_id)
        contract = load_visible(session, user, contract_id, lock=True)
        require_initiator(user, contract)
        next_state(contract, Transition.SEND)  # refuses a contract that is no longer a draft
        check_ready(session, contract, now)
        send_out(ctx, session, contract, actor=user, client=client, now=now)
        return contract_view(session, contract, user)


@dataclass(frozen=True)
class SealChoice:
    id: int
    name: str
    organisation: str


def list_seals(ctx: WorkflowContext, principal: Principal) -> tuple[SealChoice, ...]:
    """The seals in use that an initiator can add as a party, by organisation and name."""
    with ctx.sessions() as session:
        active_user(session, principal.user_id)
        rows = session.execute(
            select(Seal.id, Seal.name, Organisation.name)
            .join(Organisation, Organisation.id == Seal.organisation_id)
            .where(Seal.active.is_(True))
            .order_by(Organisation.name, Seal.name, Seal.id)
            .limit(MAX_SEALS)
        ).all()
        return tuple(SealChoice(seal_id, name, organisation) for seal_id, name, organisation in rows)


def _draft_of(session: Session, user: User, contract_id: int) -> Contract:
    contract = load_visible(session, user, contract_id, lock=True)
    require_initiator(user, contract)
    if contract.state is not ContractState.DRAFT:
        raise Conflict("Parties can be changed only while the contract is a draft.")
    return contract


def check_ready(session: Session, contract: Contract, now: datetime) -> None:
    if not contract.parties:
        raise Conflict("Add at least one party before sending the contract.")
    if contract.deadline is not None and contract.deadline <= now:
        raise Conflict("The deadline has passed; set a later deadline before sending.")
    for party in contract.parties:
        if not party.fields:
            raise Conflict(f"Place a signature field for {party.display_name} before sending.")
        if party.kind is PartyKind.SEAL:
            seal = session.get(Seal, party.seal_id)
            if seal is None or not seal.active:
                raise Conflict(f"The seal {party.display_name} is no longer in use; remove it.")
        else:
            # locked as cancelling an account locks it: a cancellation racing this send either
            # finishes first (and is seen here) or waits and then sees this party as its blocker
            signer = session.get(User, party.user_id, with_for_update=True, populate_existing=True)
            if signer is None or not signer.active:
                raise Conflict(f"{party.display_name} can no longer sign; remove them from the contract.")


def person_to_add(ctx: WorkflowContext, session: Session, username: str | None, now: datetime) -> User:
    if not username or not is_text(username) or len(username) > 200:
        raise InvalidInput("Name the person by their login name.")
    user = session.scalars(
        select(User).where(User.username == username, User.source == UserSource.DIRECTORY)
    ).one_or_none()
    if ctx.directory is not None:
        person = ctx.directory.lookup(username)
        if person is None:
            raise NotFound(f"Nobody with the login name {username!r} is in the directory.")
        cancelled = find_user(session, person)
        if cancelled is not None and cancelled.anonymised_at is not None:
            # refreshing the row from the directory would bring back what cancellation removed
            raise NotFound(f"Nobody with the login name {username!r} can sign.")
        user = upsert_user(session, person, now)
    if user is None or not user.active:
        raise NotFound(f"Nobody with the login name {username!r} can sign.")
    return user


def seal_to_add(session: Session, seal_id: int | None) -> Seal:
    seal = session.get(Seal, seal_id) if seal_id is not None else None
    if seal is None or not seal.active:
        raise NotFound("There is no seal in use with that id.")
    return seal


def signature_fields(specs: tuple[NewField, ...], sizes: list[tuple[float, float]]) -> list[SignatureField]:
    if not specs:
        raise InvalidInput("Give each party at least one signature field (page and rectangle).")
    if len(specs) > MAX_FIELDS_PER_PARTY:
        raise InvalidInput(f"A party can have at most {MAX_FIELDS_PER_PARTY} fields.")
    fields = []
    for spec in specs:
        if not 1 <= spec.page <= len(sizes):
            raise InvalidInput(f"Page {spec.page} does not exist: the document has {len(sizes)} pages.")
        width, height = sizes[spec.page - 1]
        if spec.width < MIN_FIELD_POINTS or spec.height < MIN_FIELD_POINTS:
            raise InvalidInput(f"A field must be at least {MIN_FIELD_POINTS:g} points wide and high.")
        if spec.x < 0 or spec.y < 0 or spec.x + spec.width > width or spec.y + spec.height > height:
            raise InvalidInput(
                f"The field lies outside page {spec.page}, which is {width:g} x {height:g} points."
            )
        fields.append(
            SignatureField(page=spec.page - 1, x=spec.x, y=spec.y, width=spec.width, height=spec.height)
        )
    return fields


def deadline_from(ctx: WorkflowContext, deadline: datetime | None, now: datetime) -> datetime:
    if deadline is None:
        return now + timedelta(days=ctx.config.contracts.default_deadline_days)
    if deadline.tzinfo is None:
        raise InvalidInput("Give the deadline with a time zone, e.g. 2027-01-31T18:00:00+08:00.")
    if deadline <= now:
        raise InvalidInput("The deadline must be in the future.")
    if deadline > now + timedelta(days=3650):
        raise InvalidInput("The deadline must be within ten years.")
    return deadline


def required_text(value: str, name: str, limit: int) -> str:
    value = (value or "").strip()
    if not value or len(value) > limit or not is_text(value) or not value.isprintable():
        raise InvalidInput(f"The {name} must be 1 to {limit} characters of text.")
    return value


def optional_text(value: str | None, name: str, limit: int) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value) > limit or not is_text(value) or not all(line.isprintable() for line in value.splitlines()):
        raise InvalidInput(f"The {name} must be at most {limit} characters of text.")
    return value.strip()


def _filename(name: str) -> str:
    """Shown and offered as the download name only; the blob is named by its sha256."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c for c in base if c.isprintable() and c not in '<>:"|?*' and not _bidi(c)).strip(". ")
    if not cleaned:
        cleaned = "contract.pdf"
    if not cleaned.lower().endswith(".pdf"):
        cleaned += ".pdf"
    return cleaned[-MAX_FILENAME:]


def _bidi(char: str) -> bool:
    return 0x202A <= ord(char) <= 0x202E or 0x2066 <= ord(char) <= 0x2069 or char in "\u200e\u200f"
