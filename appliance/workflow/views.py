"""What workflow commands return: plain frozen values the web, API and CLI render as they like."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.audit.pseudonyms import Pseudonyms, strings_in
from appliance.masking import mask_values
from appliance.models import (
    ApprovalStatus,
    Contract,
    ContractState,
    DocumentVersion,
    EvidenceEvent,
    Party,
    PartyKind,
    PartyStatus,
    Routing,
    Seal,
    SealApproval,
    User,
)
from appliance.workflow.access import approves_clause, may_act_for
from appliance.workflow.seal_keepers import group_label
from appliance.workflow.store import page_sizes


@dataclass(frozen=True)
class FieldView:
    id: int
    page: int
    """1-based page number."""
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class PartyView:
    id: int
    kind: PartyKind
    name: str
    routing_order: int
    status: PartyStatus
    user_id: int | None
    seal_id: int | None
    signed_at: datetime | None
    reason: str | None
    fields: tuple[FieldView, ...]
    yours: bool
    """The viewer signs (or rejects) for this party."""


@dataclass(frozen=True)
class VersionView:
    number: int
    sha256: str
    size: int
    produced_by: str | None
    party_id: int | None
    created_at: datetime


@dataclass(frozen=True)
class ApprovalView:
    id: int
    party_id: int
    seal_name: str
    position: int
    approver_name: str
    status: ApprovalStatus
    decided_at: datetime | None
    comment: str | None
    yours: bool
    """The viewer decides this approval now."""


@dataclass(frozen=True)
class ContractView:
    id: int
    title: str
    state: ContractState
    routing: Routing
    message: str | None
    deadline: datetime | None
    initiator_id: int
    initiator_name: str
    organisation_id: int | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    closing_reason: str | None
    voids_contract_id: int | None
    parties: tuple[PartyView, ...]
    versions: tuple[VersionView, ...]
    page_sizes: tuple[tuple[float, float], ...]
    has_completion_certificate: bool
    your_turn: tuple[int, ...]
    """Ids of the parties the viewer may sign for now."""
    approvals: tuple[ApprovalView, ...] = ()
    """The approvals of its seals, by party and order."""


@dataclass(frozen=True)
class ContractSummary:
    id: int
    title: str
    state: ContractState
    initiator_name: str
    deadline: datetime | None
    updated_at: datetime
    your_turn: bool
    archived_at: datetime | None = None


@dataclass(frozen=True)
class EvidenceView:
    seq: int
    occurred_at: datetime
    action: str
    actor_name: str | None
    client_address: str | None
    user_agent: str | None
    details: dict[str, object]
    hash: str
    prev_hash: str


def contract_view(session: Session, contract: Contract, viewer: User | None) -> ContractView:
    """The contract as `viewer` sees it (None: an operator, who signs for nobody)."""
    names = _user_names(session, [v.produced_by_id for v in contract.versions] + [contract.initiator_id])
    parties = tuple(_party_view(session, party, viewer) for party in contract.parties)
    return ContractView(
        id=contract.id,
        title=contract.title,
        state=contract.state,
        routing=contract.routing,
        message=contract.message,
        deadline=contract.deadline,
        initiator_id=contract.initiator_id,
        initiator_name=names.get(contract.initiator_id, ""),
        organisation_id=contract.organisation_id,
        created_at=contract.created_at,
        updated_at=contract.updated_at,
        completed_at=contract.completed_at,
        closing_reason=contract.closing_reason,
        voids_contract_id=contract.voids_contract_id,
        parties=parties,
        versions=tuple(_version_view(v, names) for v in contract.versions),
        page_sizes=tuple(page_sizes(contract.versions[0])) if contract.versions else (),
        has_completion_certificate=contract.completion_sha256 is not None,
        your_turn=tuple(
            p.id
            for p in parties
            if p.yours and p.status is PartyStatus.PENDING and contract.state is ContractState.SIGNING
        ),
        approvals=_approval_views(session, contract, viewer),
    )


def evidence_views(
    session: Session, contract: Contract, events: Sequence[EvidenceEvent]
) -> tuple[EvidenceView, ...]:
    """The contract's evidence as shown, cancelled people by their pseudonyms."""
    details = [json.loads(event.details) for event in events]
    people = {contract.initiator_id, *(p.user_id for p in contract.parties if p.user_id is not None)}
    people.update(e.actor_user_id for e in events if e.actor_user_id is not None)
    # people removed from the draft are no longer parties, but their names are in its evidence
    people.update(
        facts["user_id"]
        for e, facts in zip(events, details, strict=True)
        if e.action == "party_added" and isinstance(facts.get("user_id"), int)
    )
    pseudonyms = Pseudonyms.load(
        session,
        (e.actor_user_id for e in events),
        (
            text
            for e, facts in zip(events, details, strict=True)
            for text in [e.actor_name or "", *strings_in(facts)]
        ),
        among=people,
    )
    return tuple(_evidence_view(e, facts, pseudonyms) for e, facts in zip(events, details, strict=True))


def _evidence_view(event: EvidenceEvent, details: dict[str, object], pseudonyms: Pseudonyms) -> EvidenceView:
    return EvidenceView(
        seq=event.seq,
        occurred_at=event.occurred_at,
        action=event.action,
        actor_name=pseudonyms.actor(event.actor_user_id, event.actor_name, event.occurred_at),
        client_address=event.client_address,
        user_agent=event.user_agent,
        # shown to every party and reader of the contract, not only the person a fact names
        details=mask_values(pseudonyms.values(details, event.occurred_at)),
        hash=event.hash,
        prev_hash=event.prev_hash,
    )


def _approval_views(session: Session, contract: Contract, viewer: User | None) -> tuple[ApprovalView, ...]:
    rows = session.execute(
        select(SealApproval, Seal.name, User.display_name)
        .join(Seal, Seal.id == SealApproval.seal_id)
        .outerjoin(User, User.id == SealApproval.approver_id)
        .where(SealApproval.contract_id == contract.id)
        .order_by(SealApproval.party_id, SealApproval.position)
    ).all()
    deciding = contract.state is ContractState.PENDING_APPROVAL
    viewers = set(
        session.scalars(
            select(SealApproval.id).where(
                SealApproval.contract_id == contract.id,
                SealApproval.status == ApprovalStatus.PENDING,
                approves_clause(viewer),
            )
        )
        if deciding and viewer is not None
        else ()
    )
    return tuple(
        ApprovalView(
            id=approval.id,
            party_id=approval.party_id,
            seal_name=seal_name,
            position=approval.position,
            approver_name=approver_name or group_label(approval.group_dn or ""),
            status=approval.status,
            decided_at=approval.decided_at,
            comment=approval.comment,
            yours=approval.id in viewers,
        )
        for approval, seal_name, approver_name in rows
    )


def _party_view(session: Session, party: Party, viewer: User | None) -> PartyView:
    return PartyView(
        id=party.id,
        kind=party.kind,
        name=party.display_name,
        routing_order=party.routing_order,
        status=party.status,
        user_id=party.user_id if party.kind is PartyKind.PERSON else None,
        seal_id=party.seal_id,
        signed_at=party.signed_at,
        reason=party.reason,
        fields=tuple(
            FieldView(f.id, f.page + 1, f.x, f.y, f.width, f.height)
            for f in sorted(party.fields, key=lambda f: f.id)
        ),
        yours=viewer is not None and may_act_for(session, viewer, party),
    )


def _version_view(version: DocumentVersion, names: dict[int, str]) -> VersionView:
    return VersionView(
        number=version.number,
        sha256=version.sha256,
        size=version.size,
        produced_by=names.get(version.produced_by_id) if version.produced_by_id else None,
        party_id=version.party_id,
        created_at=version.created_at,
    )


def _user_names(session: Session, ids: list[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    return {u.id: u.display_name for u in (session.get(User, i) for i in wanted) if u is not None}
