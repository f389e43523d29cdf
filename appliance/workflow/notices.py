"""Notices about a contract, written to the outbox in the transaction of the change."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from appliance.models import Contract, Party, PartyKind, Seal, User
from appliance.notify import notify_user
from appliance.workflow.context import WorkflowContext
from appliance.workflow.seal_keepers import keepers_of


def contract_link(ctx: WorkflowContext, contract: Contract) -> str:
    return f"{ctx.config.private_cloud_address}/contracts/{contract.id}"


def signers_of(session: Session, party: Party) -> list[User]:
    """Who signs for `party`: the person, or every keeper of the seal (seal_keepers)."""
    if party.kind is PartyKind.PERSON:
        user = session.get(User, party.user_id)
        return [user] if user is not None and user.active else []
    seal = session.get(Seal, party.seal_id)
    return keepers_of(session, seal) if seal is not None else []


def notify_turn(ctx: WorkflowContext, session: Session, contract: Contract, parties: Iterable[Party]) -> None:
    initiator = session.get(User, contract.initiator_id)
    params = {
        "title": contract.title,
        "initiator": initiator.display_name if initiator else "",
        "deadline": contract.deadline.isoformat() if contract.deadline else None,
        "message": contract.message or "",
        "link": contract_link(ctx, contract),
    }
    for party in parties:
        for user in signers_of(session, party):
            notify_user(session, user, "contract_to_sign", params, now=ctx.clock.now(), mail=ctx.mail)


def notify_everyone(
    ctx: WorkflowContext,
    session: Session,
    contract: Contract,
    kind: str,
    params: dict[str, Any],
    *,
    skip_user_id: int | None = None,
) -> None:
    """The initiator and every party's signers, each once, except `skip_user_id` (who acted)."""
    people: dict[int, User] = {}
    initiator = session.get(User, contract.initiator_id)
    if initiator is not None:
        people[initiator.id] = initiator
    for party in contract.parties:
        people.update((u.id, u) for u in signers_of(session, party))
    facts = {"title": contract.title, "link": contract_link(ctx, contract), **params}
    for user_id, user in sorted(people.items()):
        if user_id != skip_user_id:
            notify_user(session, user, kind, facts, now=ctx.clock.now(), mail=ctx.mail)
