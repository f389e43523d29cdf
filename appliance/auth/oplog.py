"""Operation-log records that more than one use case of the login domain writes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from appliance.audit import AuditRecord, append_event


def record_directory_tls_failure(session: Session, now: datetime, during: str) -> None:
    """The directory could not be reached over verified TLS during `during` (login, recheck).

    Answered like any outage, but kept on record: an expired or foreign certificate can also
    be an interception attempt.
    """
    append_event(
        session,
        AuditRecord(
            action="directory.tls_failed",
            occurred_at=now,
            actor_name="directory",
            details={"during": during},
        ),
    )
