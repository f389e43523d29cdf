"""The to-do list: the parties a person may sign or seal for now, and its count for the
navigation.

The to-do rule is the one of `queries.ListRole.TO_SIGN` and `access.may_act_for`: a contract
out for signing with a pending party that is the person, or a seal of the person's
organisation when they keep its seals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from appliance.auth.records import Principal
from appliance.models import (
    Contract,
    ContractState,
    Party,
    PartyKind,
    PartyStatus,
    User,
)
from appliance.workflow.access import active_user, kept_seals, visible_clause
from appliance.workflow.context import WorkflowContext

MAX_TODO = 20
"""The to-do list shows this many, soonest deadline first; the count says how many there are
(the contract lists, filtered to "waiting for me", page through all of them)."""


@dataclass(frozen=True)
class TodoItem:
    contract_id: int
    title: str
    initiator_name: str
    deadline: datetime | None
    party_id: int
    party_name: str
    seal: bool
    """The person applies a seal of their organisation for this party (else signs themselves)."""


@dataclass(frozen=True)
class TodoList:
    items: tuple[TodoItem, ...]
    total: int


def list_todo(ctx: WorkflowContext, principal: Principal) -> TodoList:
    """The parties the person may sign or seal for now, soonest deadline first."""
    with ctx.sessions() as session:
        user = active_user(session, principal.user_id)
        query = (
            todo_query(user)
            .add_columns(Contract, User.display_name)
            .join(User, User.id == Contract.initiator_id)
        )
        # NULL deadlines last on both databases: order by "has no deadline" first
        rows = session.execute(
            query.order_by(
                Contract.deadline.is_(None), Contract.deadline, Contract.id, TODO_PARTY.routing_order
            ).limit(MAX_TODO)
        ).all()
        items = tuple(
            TodoItem(
                contract_id=contract.id,
                title=contract.title,
                initiator_name=initiator_name,
                deadline=contract.deadline,
                party_id=party.id,
                party_name=party.display_name,
                seal=party.kind is PartyKind.SEAL,
            )
            for party, contract, initiator_name in rows
        )
        total = len(items) if len(items) < MAX_TODO else _count(session, user)
        return TodoList(items, total)


def count_todo(ctx: WorkflowContext, principal: Principal) -> int:
    """How many parties the person may sign or seal for now (0 for an account that cannot)."""
    with ctx.sessions() as session:
        user = session.get(User, principal.user_id)
        if user is None or not user.active or user.anonymised_at is not None:
            return 0
        return _count(session, user)


# visible_clause correlates its own EXISTS over parties with the outer contract: the party
# acted for is another FROM item, so it must not be the same (auto-correlated) table
TODO_PARTY = aliased(Party, name="todo_party")


def todo_query(user: User) -> Select[Party]:
    """The parties `user` may sign or seal for now (as `TODO_PARTY`), joined to their contracts."""
    return (
        select(TODO_PARTY)
        .join(Contract, Contract.id == TODO_PARTY.contract_id)
        .where(
            visible_clause(user),
            Contract.state == ContractState.SIGNING,
            TODO_PARTY.status == PartyStatus.PENDING,
            _acts_for(user),
        )
    )


def _acts_for(user: User) -> ColumnElement[bool]:
    person = and_(TODO_PARTY.kind == PartyKind.PERSON, TODO_PARTY.user_id == user.id)
    return or_(person, and_(TODO_PARTY.kind == PartyKind.SEAL, TODO_PARTY.seal_id.in_(kept_seals(user))))


def _count(session: Session, user: User) -> int:
    return int(session.execute(select(func.count()).select_from(todo_query(user).subquery())).scalar_one())
