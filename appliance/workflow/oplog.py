"""The operation log for the people who check it: auditors and system administrators.

The log is the appliance's own (sign-ins, tokens, certificates, contracts of every
organisation), so it is open to these roles only; anyone else is refused. An export is an
event of its own, written before the first row leaves.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict

from appliance.audit import AuditRecord, append_event
from appliance.audit.browse import LogEntry, LogFilter, LogPage, search_log, stream_log
from appliance.auth.records import ClientInfo, Principal
from appliance.db import transaction
from appliance.permissions import Action, require, roles_for
from appliance.workflow.context import WorkflowContext

LOG_READERS = roles_for(Action.READ_OPERATION_LOG)


def browse_log(
    ctx: WorkflowContext, principal: Principal, where: LogFilter, *, before: int | None, limit: int
) -> LogPage:
    _require_reader(principal)
    with ctx.sessions() as session:
        return search_log(session, where, before=before, limit=limit)


def export_log(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, where: LogFilter
) -> Iterator[LogEntry]:
    """Every matching record, oldest first; the export is logged before this returns."""
    _require_reader(principal)
    with transaction(ctx.sessions) as session:
        append_event(
            session,
            AuditRecord(
                action="oplog.exported",
                occurred_at=ctx.clock.now(),
                actor_user_id=principal.user_id,
                actor_name=principal.username,
                client_address=client.address,
                user_agent=client.user_agent,
                details={"filter": {k: v for k, v in asdict(where).items() if v is not None}},
            ),
        )
    return _stream(ctx, where)


def _stream(ctx: WorkflowContext, where: LogFilter) -> Iterator[LogEntry]:
    with ctx.sessions() as session:
        yield from stream_log(session, where)


def _require_reader(principal: Principal) -> None:
    require(
        principal.roles,
        Action.READ_OPERATION_LOG,
        "The operation log is for auditors and system administrators.",
    )
