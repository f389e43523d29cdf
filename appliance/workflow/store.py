"""Loading and locking contracts, and recording what happened to them.

Every change of a contract first locks its row (`lock_contract`): SELECT ... FOR UPDATE on
PostgreSQL, and on SQLite every write transaction already begins IMMEDIATE (appliance.db).
The lock serialises parallel signers of one contract, so each signature lands on the
newest version, and it guards the contract's evidence chain head.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.audit import AuditRecord, append_event
from appliance.audit.evidence import EvidenceRecord, append_evidence
from appliance.auth.records import ClientInfo
from appliance.errors import NotFound
from appliance.models import Contract, DocumentVersion, Party, User
from appliance.notify.webhooks import queue_contract_event

CONTRACT_NOT_FOUND = "There is no contract with that id, or you cannot see it."


def lock_contract(session: Session, contract_id: int) -> Contract:
    contract = session.scalars(
        select(Contract).where(Contract.id == contract_id).with_for_update()
    ).one_or_none()
    if contract is None:
        raise NotFound(CONTRACT_NOT_FOUND)
    return contract


def current_version(contract: Contract) -> DocumentVersion:
    return contract.versions[-1]


def page_sizes(version: DocumentVersion) -> list[tuple[float, float]]:
    return [(float(w), float(h)) for w, h in json.loads(version.page_sizes)]


def find_party(contract: Contract, party_id: int) -> Party:
    for party in contract.parties:
        if party.id == party_id:
            return party
    raise NotFound("The contract has no party with that id.")


def record(
    session: Session,
    contract: Contract,
    action: str,
    *,
    actor: User | None,
    client: ClientInfo | None,
    now: datetime,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append to the contract's evidence and to the operation log, in the caller's transaction.

    The operation log is appended last because it locks the one chain head row; callers
    record after their slow work.
    """
    record_evidence(session, contract, action, actor=actor, client=client, now=now, details=details)
    log_operation(session, contract, action, actor=actor, client=client, now=now, details=details)


def log_operation(
    session: Session,
    contract: Contract,
    action: str,
    *,
    actor: User | None,
    client: ClientInfo | None,
    now: datetime,
    details: Mapping[str, Any] | None = None,
) -> None:
    """The operation log's record of a contract's change (see `record`)."""
    append_event(
        session, operation_record(contract, action, actor=actor, client=client, now=now, details=details)
    )


def operation_record(
    contract: Contract,
    action: str,
    *,
    actor: User | None,
    client: ClientInfo | None,
    now: datetime,
    details: Mapping[str, Any] | None = None,
) -> AuditRecord:
    """What the operation log records of a contract's change, for `append_events` to write many."""
    return AuditRecord(
        action=f"contract.{action}",
        occurred_at=now,
        actor_user_id=actor.id if actor else None,
        actor_name=actor.username if actor else "appliance",
        object_type="contract",
        object_id=str(contract.id),
        contract_id=contract.id,
        client_address=client.address if client else None,
        user_agent=client.user_agent if client else None,
        details=dict(details or {}),
    )


def log_user_action(
    session: Session,
    action: str,
    user: User,
    client: ClientInfo,
    now: datetime,
    object_type: str,
    object_id: int,
    details: Mapping[str, Any],
) -> None:
    """Append what `user` did to an object other than a contract (a certificate, a seal, their
    account) to the operation log, in the caller's transaction."""
    append_event(
        session,
        AuditRecord(
            action=action,
            occurred_at=now,
            actor_user_id=user.id,
            actor_name=user.username,
            object_type=object_type,
            object_id=str(object_id),
            client_address=client.address,
            user_agent=client.user_agent,
            details=dict(details),
        ),
    )


def record_evidence(
    session: Session,
    contract: Contract,
    action: str,
    *,
    actor: User | None,
    client: ClientInfo | None,
    now: datetime,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append to the contract's evidence only: for a step in the middle of a transaction, which
    must not take the operation log's lock before its slow work (the signing) is done.

    The webhooks that want to hear of it are queued here too, so that no event escapes them."""
    queue_contract_event(session, contract, action, now, details or {})
    append_evidence(
        session,
        contract,
        EvidenceRecord(
            action=action,
            occurred_at=now,
            actor_user_id=actor.id if actor else None,
            actor_name=actor.display_name if actor else "appliance",
            client_address=client.address if client else None,
            user_agent=client.user_agent if client else None,
            details=dict(details or {}),
        ),
    )
