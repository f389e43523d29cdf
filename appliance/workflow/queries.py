"""Reading contracts: one, a filtered page of them, their documents and evidence."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import BinaryIO

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import Session, aliased

from appliance.audit.evidence import EvidenceReport, verify_evidence
from appliance.auth.records import ClientInfo, Principal
from appliance.db import transaction
from appliance.errors import Forbidden, InvalidInput, NotFound, Unavailable
from appliance.models import (
    Contract,
    ContractState,
    EvidenceEvent,
    Party,
    PartyKind,
    PartyStatus,
    User,
)
from appliance.permissions import Action, scope_of
from appliance.signing.preview import RenderFailed, preview_png
from appliance.workflow.access import active_user, kept_seals, load_visible, visible_clause
from appliance.workflow.context import WorkflowContext
from appliance.workflow.store import (
    CONTRACT_NOT_FOUND,
    current_version,
    find_party,
    lock_contract,
    page_sizes,
    record,
)
from appliance.workflow.views import (
    ContractSummary,
    ContractView,
    EvidenceView,
    contract_view,
    evidence_views,
)

MAX_PAGE = 100
MAX_ID = 2**31 - 1
"""Ids are 32-bit integers on PostgreSQL; a cursor beyond that names no contract."""


class ListRole(StrEnum):
    ANY = "any"
    INITIATED = "initiated"
    """Contracts the viewer started."""
    TO_SIGN = "to_sign"
    """Contracts waiting for the viewer's signature now (the to-do list)."""
    PARTY = "party"
    """Contracts the viewer is a party to."""


class Document(StrEnum):
    ORIGINAL = "original"
    CURRENT = "current"
    COMPLETION = "completion"
    """The signed certificate of completion."""


@dataclass(frozen=True)
class ContractFilter:
    state: ContractState | None = None
    role: ListRole = ListRole.ANY
    created_from: datetime | None = None
    created_to: datetime | None = None
    title: str | None = None
    """Contracts whose title contains this text (case-insensitive)."""
    party: str | None = None
    """Part of a party's name: a person or a seal (case-insensitive)."""
    archived: bool = False
    """The archive (archive admins only) instead of the contracts in use."""


@dataclass(frozen=True)
class ContractPage:
    items: tuple[ContractSummary, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class DocumentFile:
    stream: BinaryIO
    filename: str
    sha256: str
    size: int


def get_contract(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, contract_id: int
) -> ContractView:
    """The contract; a party who opens it while it is theirs to sign is recorded as having viewed it."""
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        user = active_user(session, principal.user_id)
        contract = load_visible(session, user, contract_id)
        view = contract_view(session, contract, user)
        if view.your_turn and not _viewed(session, contract, user):
            contract = lock_contract(session, contract_id)
            record(
                session,
                contract,
                "viewed",
                actor=user,
                client=client,
                now=now,
                details={"document_sha256": current_version(contract).sha256},
            )
        return view


def list_contracts(
    ctx: WorkflowContext, principal: Principal, where: ContractFilter, *, cursor: str | None, limit: int
) -> ContractPage:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"The page size must be between 1 and {MAX_PAGE}.")
    with ctx.sessions() as session:
        user = active_user(session, principal.user_id)
        query = select(Contract).where(visible_clause(user), *_conditions(session, user, where))
        after = _decode_cursor(cursor)
        if after is not None:
            query = query.where(Contract.id < after)
        rows = session.scalars(query.order_by(Contract.id.desc()).limit(limit + 1)).all()
        names = {
            u.id: u.display_name
            for u in session.scalars(select(User).where(User.id.in_({r.initiator_id for r in rows})))
        }
        turn_ids = set(
            session.scalars(
                select(Contract.id).where(Contract.id.in_([r.id for r in rows]), _your_turn(session, user))
            )
        )
        items = tuple(
            ContractSummary(
                id=row.id,
                title=row.title,
                state=row.state,
                initiator_name=names.get(row.initiator_id, ""),
                deadline=row.deadline,
                updated_at=row.updated_at,
                your_turn=row.id in turn_ids,
                archived_at=row.archived_at,
            )
            for row in rows[:limit]
        )
        next_cursor = _encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
        return ContractPage(items, next_cursor)


@contextmanager
def open_document(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, contract_id: int, which: Document
) -> Iterator[DocumentFile]:
    """The file, recorded as downloaded in the contract's evidence before it is handed out."""
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        user = active_user(session, principal.user_id)
        contract = load_visible(session, user, contract_id, lock=True)
        if which is Document.COMPLETION:
            if contract.completion_sha256 is None:
                raise NotFound("The contract has no certificate of completion: it is not completed.")
            sha256, filename = contract.completion_sha256, f"certificate-of-completion-{contract.id}.pdf"
        else:
            version = contract.versions[0] if which is Document.ORIGINAL else current_version(contract)
            sha256, filename = version.sha256, _download_name(version.filename, version.number)
        record(
            session,
            contract,
            "downloaded",
            actor=user,
            client=client,
            now=now,
            details={"document": which.value, "sha256": sha256},
        )
    stream = ctx.blobs.open(sha256)
    try:
        size = stream.seek(0, 2)
        stream.seek(0)
        yield DocumentFile(stream, filename, sha256, size)
    finally:
        stream.close()


def contract_evidence(
    ctx: WorkflowContext, principal: Principal, contract_id: int
) -> tuple[EvidenceView, ...]:
    with ctx.sessions() as session:
        user = active_user(session, principal.user_id)
        contract = load_visible(session, user, contract_id)
        events = session.scalars(
            select(EvidenceEvent).where(EvidenceEvent.contract_id == contract.id).order_by(EvidenceEvent.seq)
        ).all()
        return evidence_views(session, contract, events)


def check_evidence(ctx: WorkflowContext, contract_id: int) -> EvidenceReport:
    """For operators (CLI): the contract's evidence chain and its documents' hashes."""
    with ctx.sessions() as session:
        contract = session.get(Contract, contract_id)
        if contract is None:
            raise NotFound(CONTRACT_NOT_FOUND)
        return verify_evidence(session, contract, ctx.blobs)


def preview_page(
    ctx: WorkflowContext, principal: Principal, contract_id: int, page_number: int, party_id: int | None
) -> bytes:
    """Page `page_number` (1-based) of the contract's current version as a PNG, with the fields
    of `party_id` drawn on it. Nothing is recorded: the contract page records the viewing.

    :raises NotFound: the contract is not visible to the person, or has no such page or party.
    :raises Unavailable: the page cannot be rendered.
    """
    with ctx.sessions() as session:
        user = active_user(session, principal.user_id)
        contract = load_visible(session, user, contract_id)
        version = current_version(contract)
        sizes = page_sizes(version)
        if not 1 <= page_number <= len(sizes):
            raise NotFound("The document has no page with that number.")
        fields = find_party(contract, party_id).fields if party_id is not None else []
        boxes = [(f.x, f.y, f.width, f.height) for f in fields if f.page == page_number - 1]
        sha256 = version.sha256
    pdf = ctx.blobs.get(sha256)
    try:
        return preview_png(pdf, page_number, sizes[page_number - 1], boxes)
    except RenderFailed as exc:
        raise Unavailable(
            "This page cannot be shown right now; download the document instead.",
            detail=f"contract {contract_id} page {page_number}: {exc}",
        ) from exc


def operator_show(ctx: WorkflowContext, contract_id: int) -> ContractView:
    """For operators (CLI): the contract, without a viewer's visibility rules."""
    with ctx.sessions() as session:
        contract = session.get(Contract, contract_id)
        if contract is None:
            raise NotFound(CONTRACT_NOT_FOUND)
        return contract_view(session, contract, None)


def operator_list(ctx: WorkflowContext, where: ContractFilter, *, limit: int) -> tuple[ContractSummary, ...]:
    """For operators (CLI): every contract, newest first, without a viewer's visibility rules."""
    with ctx.sessions() as session:
        query = select(Contract)
        if where.state is not None:
            query = query.where(Contract.state == where.state)
        if where.title:
            query = query.where(Contract.title.ilike(f"%{_like(where.title)}%", escape="\\"))
        rows = session.scalars(query.order_by(Contract.id.desc()).limit(limit)).all()
        return tuple(
            ContractSummary(
                r.id,
                r.title,
                r.state,
                _name(session, r.initiator_id),
                r.deadline,
                r.updated_at,
                False,
                r.archived_at,
            )
            for r in rows
        )


def _conditions(session: Session, user: User, where: ContractFilter) -> list[ColumnElement[bool]]:
    if where.archived and scope_of(user.role_set(), Action.READ_ARCHIVE) is None:
        raise Forbidden("Only archive admins can see the archive.")
    # an archived contract is in the archive list only, an archive admin's own ones too
    conditions: list[ColumnElement[bool]] = [
        Contract.archived_at.is_not(None) if where.archived else Contract.archived_at.is_(None)
    ]
    if where.state is not None:
        conditions.append(Contract.state == where.state)
    if where.created_from is not None:
        conditions.append(Contract.created_at >= where.created_from)
    if where.created_to is not None:
        conditions.append(Contract.created_at < where.created_to)
    if where.title:
        if len(where.title) > 300:
            raise InvalidInput("Search titles with at most 300 characters.")
        conditions.append(Contract.title.ilike(f"%{_like(where.title)}%", escape="\\"))
    if where.party:
        if len(where.party) > 200:
            raise InvalidInput("Search party names with at most 200 characters.")
        named = aliased(Party)
        conditions.append(
            exists(
                select(named.id).where(
                    named.contract_id == Contract.id,
                    named.display_name.ilike(f"%{_like(where.party)}%", escape="\\"),
                )
            )
        )
    if where.role is ListRole.INITIATED:
        conditions.append(Contract.initiator_id == user.id)
    elif where.role is ListRole.TO_SIGN:
        conditions.append(_your_turn(session, user))
    elif where.role is ListRole.PARTY:
        conditions.append(_party_of(session, user, statuses=None))
    return conditions


def _your_turn(session: Session, user: User) -> ColumnElement[bool]:
    return and_(
        Contract.state == ContractState.SIGNING, _party_of(session, user, statuses=(PartyStatus.PENDING,))
    )


def _party_of(
    session: Session, user: User, *, statuses: tuple[PartyStatus, ...] | None
) -> ColumnElement[bool]:
    mine: list[ColumnElement[bool]] = [and_(Party.kind == PartyKind.PERSON, Party.user_id == user.id)]
    mine.append(and_(Party.kind == PartyKind.SEAL, Party.seal_id.in_(kept_seals(user))))
    condition = and_(Party.contract_id == Contract.id, or_(*mine))
    if statuses is not None:
        condition = and_(condition, Party.status.in_(statuses))
    return exists().where(condition)


def _viewed(session: Session, contract: Contract, user: User) -> bool:
    sha256 = current_version(contract).sha256
    for details in session.scalars(
        select(EvidenceEvent.details).where(
            EvidenceEvent.contract_id == contract.id,
            EvidenceEvent.action == "viewed",
            EvidenceEvent.actor_user_id == user.id,
        )
    ):
        if json.loads(details).get("document_sha256") == sha256:
            return True
    return False


def _encode_cursor(contract_id: int) -> str:
    return base64.urlsafe_b64encode(f"c{contract_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("c"):
            raise ValueError(text)
        value = int(text[1:])
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("The cursor is not valid; start again from the first page.") from exc
    if not 1 <= value <= MAX_ID:
        raise InvalidInput("The cursor is not valid; start again from the first page.")
    return value


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _name(session: Session, user_id: int) -> str:
    user = session.get(User, user_id)
    return user.display_name if user else ""


def _download_name(filename: str, number: int) -> str:
    if number == 1:
        return filename
    stem = filename[:-4] if filename.lower().endswith(".pdf") else filename
    return f"{stem}-signed-v{number}.pdf"
