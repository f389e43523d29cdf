"""Webhooks: contract events queued in the transaction of the change, delivered after the commit.

Each delivery is a POST of a JSON body, signed with the endpoint's secret:

    Esign-Webhook-Id:         the event's id (the same in every attempt)
    Esign-Webhook-Timestamp:  seconds since the epoch when this attempt was made
    Esign-Webhook-Signature:  v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>

A receiver recomputes the HMAC over the timestamp, a dot and the raw body, compares it in
constant time and refuses a timestamp more than five minutes away (`verify_signature`).
A 2xx answer delivers it; anything else is retried 1, 2, 4 ... minutes later (at most six
hours apart) up to MAX_ATTEMPTS, then it is failed and waits for an admin to redeliver it.

Deliveries go only to `webhooks.allowed_hosts` (appliance.notify.webhook_transport), so the
appliance cannot be made to reach any other intranet host.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from appliance.clock import Clock
from appliance.db import rows_changed, transaction
from appliance.errors import Unavailable
from appliance.models import Contract, DeliveryStatus, WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

EVENTS: dict[str, str] = {
    "sent": "contract.sent",
    "signed": "contract.signed",
    "completed": "contract.completed",
    "rejected": "contract.rejected",
    "withdrawn": "contract.withdrawn",
    "expired": "contract.expired",
    "voided": "contract.voided",
    "ended": "contract.ended",
    "seal_approval_requested": "seal_approval.requested",
    "seal_approved": "seal_approval.decided",
    "seal_approval_rejected": "seal_approval.decided",
}
"""Evidence action -> webhook event type."""
EVENT_TYPES = tuple(dict.fromkeys(EVENTS.values()))

# what of an event's evidence goes out: ids and outcomes, never a person's name or address
_FACTS = ("party_id", "approval_id", "seal_id", "version", "sha256", "reason_code", "voids_contract_id")

MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(minutes=1)
LONGEST_WAIT = timedelta(hours=6)
SEND_LEASE = timedelta(minutes=5)
TOLERANCE = timedelta(minutes=5)
SIGNATURE_HEADER = "Esign-Webhook-Signature"
TIMESTAMP_HEADER = "Esign-Webhook-Timestamp"
ID_HEADER = "Esign-Webhook-Id"


class WebhookTransport(Protocol):
    """Sends one signed POST; the answer's status code, or Unavailable when none came."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int: ...


@dataclass(frozen=True)
class WebhookReport:
    delivered: int
    retried: int
    failed: int


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify_signature(secret: str, headers: Mapping[str, str], body: bytes, now: datetime) -> bool:
    """What a receiver checks (and the tests, as one): the HMAC, and a fresh timestamp."""
    try:
        timestamp = int(headers[TIMESTAMP_HEADER])
    except (KeyError, ValueError):
        return False
    if abs(now.timestamp() - timestamp) > TOLERANCE.total_seconds():
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), headers.get(SIGNATURE_HEADER, ""))


def retry_wait(attempts: int) -> timedelta:
    return min(FIRST_RETRY * (2 ** (attempts - 1)), LONGEST_WAIT)


def queue_contract_event(
    session: Session, contract: Contract, action: str, now: datetime, details: Mapping[str, Any]
) -> None:
    """Queue the event for the active endpoints of the contract's organisation that want it,
    in the caller's transaction: a change rolled back tells no one."""
    event_type = EVENTS.get(action)
    if event_type is None or contract.organisation_id is None:
        return
    endpoints = [
        endpoint
        for endpoint in session.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.organisation_id == contract.organisation_id,
                WebhookEndpoint.disabled_at.is_(None),
            )
        )
        if event_type in json.loads(endpoint.event_types)
    ]
    if not endpoints:
        return
    event_id = str(uuid.uuid4())
    data: dict[str, Any] = {key: details[key] for key in _FACTS if key in details}
    if action in ("seal_approved", "seal_approval_rejected"):
        data["decision"] = "approved" if action == "seal_approved" else "rejected"
    body = {
        "id": event_id,
        "type": event_type,
        "occurred_at": now.isoformat(),
        "organisation_id": contract.organisation_id,
        "contract": {"id": contract.id, "title": contract.title, "state": contract.state.value},
        "data": data,
    }
    payload = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    for endpoint in endpoints:
        session.add(
            WebhookDelivery(
                endpoint_id=endpoint.id,
                event_id=event_id,
                event_type=event_type,
                payload=payload,
                status=DeliveryStatus.PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )


def deliver_due_webhooks(
    sessions: sessionmaker[Session], transport: WebhookTransport, clock: Clock, *, limit: int = 200
) -> WebhookReport:
    """Send what is due, each delivery claimed in a transaction of its own and sent outside
    any (a slow receiver must not hold the database), then its outcome recorded."""
    with sessions() as session:
        due = session.scalars(
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.next_attempt_at <= clock.now(),
            )
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(limit)
        ).all()
    report = WebhookReport(0, 0, 0)
    for delivery_id in due:
        claimed = _claim(sessions, delivery_id, clock)
        if claimed is None:
            continue  # another node took it
        url, body, headers = claimed
        try:
            status = transport.post(url, body, headers)
        except Unavailable as exc:
            report = _record(sessions, delivery_id, clock, None, exc.detail, report)
        except Exception as exc:  # one broken delivery must not stop the ones behind it
            log.exception("webhook delivery %s failed", delivery_id)
            report = _record(sessions, delivery_id, clock, None, type(exc).__name__, report)
        else:
            problem = None if 200 <= status < 300 else f"the endpoint answered {status}"
            report = _record(sessions, delivery_id, clock, status, problem, report)
    return report


def purge_delivery_log(sessions: sessionmaker[Session], clock: Clock, keep: timedelta) -> int:
    """Forget deliveries that were settled (delivered or given up) longer than `keep` ago."""
    cutoff = clock.now() - keep
    settled = delete(WebhookDelivery).where(
        WebhookDelivery.status != DeliveryStatus.PENDING, WebhookDelivery.created_at < cutoff
    )
    with transaction(sessions) as session:
        return rows_changed(session, settled)


def _claim(
    sessions: sessionmaker[Session], delivery_id: int, clock: Clock
) -> tuple[str, bytes, dict[str, str]] | None:
    with transaction(sessions) as session:
        row = session.get(WebhookDelivery, delivery_id, with_for_update=True)
        now = clock.now()
        if (
            row is None
            or row.status is not DeliveryStatus.PENDING
            or (row.next_attempt_at is not None and row.next_attempt_at > now)
        ):
            return None
        endpoint = session.get_one(WebhookEndpoint, row.endpoint_id)
        # a lease: while this node waits for the receiver, no other node sends it too
        row.next_attempt_at = now + SEND_LEASE
        body = row.payload.encode()
        timestamp = int(now.timestamp())
        headers = {
            "Content-Type": "application/json",
            ID_HEADER: row.event_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(endpoint.secret, timestamp, body),
            "User-Agent": "esign-appliance-webhooks",
        }
        return endpoint.url, body, headers


def _record(
    sessions: sessionmaker[Session],
    delivery_id: int,
    clock: Clock,
    status: int | None,
    problem: str | None,
    report: WebhookReport,
) -> WebhookReport:
    with transaction(sessions) as session:
        row = session.get_one(WebhookDelivery, delivery_id, with_for_update=True)
        now = clock.now()
        row.attempts += 1
        row.last_attempt_at = now
        row.last_status_code = status
        row.last_error = problem[:500] if problem else None
        if problem is None:
            row.status, row.delivered_at, row.next_attempt_at = DeliveryStatus.DELIVERED, now, None
            return WebhookReport(report.delivered + 1, report.retried, report.failed)
        if row.attempts >= MAX_ATTEMPTS:
            row.status, row.next_attempt_at = DeliveryStatus.FAILED, None
            log.error("gave up webhook delivery %s: %s", delivery_id, problem)
            return WebhookReport(report.delivered, report.retried, report.failed + 1)
        row.next_attempt_at = now + retry_wait(row.attempts)
        log.warning("webhook delivery %s will be retried: %s", delivery_id, problem)
        return WebhookReport(report.delivered, report.retried + 1, report.failed)
