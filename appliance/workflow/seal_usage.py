"""The per-seal usage log: each time a seal was applied, by whom, under which approvals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from appliance.auth.records import Principal
from appliance.errors import NotFound
from appliance.models import ApprovalStatus, Contract, Party, Seal, SealApproval, SealKind, SealUsage, User
from appliance.permissions import Action, scope_of
from appliance.workflow.access import active_user, organisation_member
from appliance.workflow.context import WorkflowContext
from appliance.workflow.seal_policy import AutomaticFor
from appliance.workflow.seals import SealState, state_of

NOT_A_USAGE_READER = "Only an organisation's admins and auditors read its seals' usage."
NO_SUCH_SEAL = "There is no seal of your organisation with that id."


@dataclass(frozen=True)
class SealUsageView:
    applied_at: datetime
    contract_id: int
    contract_title: str
    applied_by: str
    """Who applied it; "" when the appliance did (`automatic` says what authorised it)."""
    automatic: str | None
    document_sha256: str
    approval_ids: tuple[int, ...]


@dataclass(frozen=True)
class SealUsageSummary:
    """A seal as its usage log's readers see it: what it is and how often it was applied."""

    id: int
    name: str
    kind: SealKind
    state: SealState
    uses: int
    last_used_at: datetime | None


def seals_with_usage(
    ctx: WorkflowContext, principal: Principal, *, seal_id: int | None = None
) -> tuple[SealUsageSummary, ...]:
    """The seals of the person's organisation with their use counts: for its admins and auditors.
    With `seal_id`, that one seal only (none when it is not of their organisation).

    :raises Forbidden: not a reader of seal usage in an organisation.
    """
    with ctx.sessions() as session:
        user = organisation_member(session, principal, Action.READ_SEAL_USAGE, NOT_A_USAGE_READER)
        query = (
            select(Seal, func.count(SealUsage.id), func.max(SealUsage.applied_at))
            .outerjoin(SealUsage, SealUsage.seal_id == Seal.id)
            .where(Seal.organisation_id == user.organisation_id)
            .group_by(Seal.id)
            .order_by(Seal.retired_at.is_not(None), Seal.name, Seal.id)
        )
        if seal_id is not None:
            query = query.where(Seal.id == seal_id)
        rows = session.execute(query).all()
        return tuple(
            SealUsageSummary(
                id=seal.id,
                name=seal.name,
                kind=seal.kind,
                state=state_of(seal),
                uses=uses,
                last_used_at=last_used_at,
            )
            for seal, uses, last_used_at in rows
        )


def seal_usage_log(
    ctx: WorkflowContext, principal: Principal, seal_id: int, *, limit: int = 200
) -> tuple[SealUsageView, ...]:
    """The seal's uses, newest first: for its organisation's admins and auditors.

    :raises NotFound: no seal of the person's organisation with that id, or not theirs to read.
    """
    with ctx.sessions() as session:
        user = active_user(session, principal.user_id)
        seal = session.get(Seal, seal_id)
        readable = scope_of(user.role_set(), Action.READ_SEAL_USAGE) is not None
        if seal is None or seal.organisation_id != user.organisation_id or not readable:
            raise NotFound(NO_SUCH_SEAL)
        rows = session.execute(
            select(SealUsage, User.display_name)
            .outerjoin(User, User.id == SealUsage.applied_by_id)
            .where(SealUsage.seal_id == seal.id)
            .order_by(SealUsage.id.desc())
            .limit(limit)
        ).all()
        return tuple(
            SealUsageView(
                applied_at=usage.applied_at,
                contract_id=usage.contract_id,
                contract_title=usage.contract_title,
                applied_by=name or "",
                automatic=usage.automatic,
                document_sha256=usage.document_sha256,
                approval_ids=tuple(int(i) for i in usage.approval_ids.split(",") if i),
            )
            for usage, name in rows
        )


def record_seal_usage(
    session: Session,
    contract: Contract,
    party: Party,
    user: User | None,
    sha256: str,
    now: datetime,
    *,
    automatic: AutomaticFor | None = None,
) -> None:
    """The seal's usage log: `user` (None: the appliance, authorised by `automatic`) applied
    `party`'s seal, producing the version `sha256`."""
    assert party.seal_id is not None
    approvals = session.scalars(
        select(SealApproval.id)
        .where(SealApproval.party_id == party.id, SealApproval.status == ApprovalStatus.APPROVED)
        .order_by(SealApproval.position)
    ).all()
    session.add(
        SealUsage(
            seal_id=party.seal_id,
            contract_id=contract.id,
            contract_title=contract.title,
            party_id=party.id,
            applied_by_id=user.id if user else None,
            automatic=automatic.value if automatic else None,
            applied_at=now,
            document_sha256=sha256,
            approval_ids=",".join(str(i) for i in approvals),
        )
    )
