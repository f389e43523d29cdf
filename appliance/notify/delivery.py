"""Mail delivery from the outbox, after the commit: retried with growing waits, then given up."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from appliance.clock import Clock
from appliance.db import transaction
from appliance.errors import Unavailable
from appliance.models import User
from appliance.models.notify import MailStatus, Notification
from appliance.notify.mailer import MAIL_UNAVAILABLE, Mailer, MailServerDown
from appliance.notify.messages import render_message

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(minutes=1)
LONGEST_WAIT = timedelta(hours=6)
SEND_LEASE = timedelta(minutes=10)


@dataclass(frozen=True)
class DeliveryReport:
    sent: int
    retried: int
    failed: int


def retry_wait(attempts: int) -> timedelta:
    """1, 2, 4 ... minutes after the first, second, third failure, at most six hours."""
    return min(FIRST_RETRY * (2 ** (attempts - 1)), LONGEST_WAIT)


def deliver_due_mail(
    sessions: sessionmaker[Session], mailer: Mailer, clock: Clock, from_address: str, *, limit: int = 200
) -> DeliveryReport:
    """Send the mail that is due. Each message is its own transaction, so one that was sent
    is marked sent even when a later one fails, and a crash resends at most one message."""
    with transaction(sessions) as session:
        due = (
            session.execute(
                select(Notification.id)
                .where(Notification.mail_status == MailStatus.PENDING)
                .where(Notification.mail_next_attempt_at <= clock.now())
                .order_by(Notification.mail_next_attempt_at, Notification.id)
                .limit(limit)
            )
            .scalars()
            .all()
        )
    report = DeliveryReport(0, 0, 0)
    for notification_id in due:
        try:
            message = _claim(sessions, notification_id, clock, from_address)
            if message is None:
                continue  # another node took it, or the person was anonymised meanwhile
            # outside any transaction: a slow mail server must not hold the database's write lock
            mailer.send(message)
        except MailServerDown as exc:
            # the rest would wait for the same dead server and lose an attempt each: stop here
            return _record_failure(sessions, notification_id, clock, exc, report)
        except Unavailable as exc:
            report = _record_failure(sessions, notification_id, clock, exc, report)
        except Exception as exc:  # one broken notice must not block the ones queued behind it
            log.exception("notification %s could not be mailed", notification_id)
            detail = f"{type(exc).__name__} while preparing or sending it"
            failure = Unavailable(MAIL_UNAVAILABLE, detail=detail)
            report = _record_failure(sessions, notification_id, clock, failure, report)
        else:
            report = _record_sent(sessions, notification_id, clock, report)
    return report


def _claim(
    sessions: sessionmaker[Session], notification_id: int, clock: Clock, from_address: str
) -> EmailMessage | None:
    with transaction(sessions) as session:
        row = session.get(Notification, notification_id, with_for_update=True)
        now = clock.now()
        if (
            row is None
            or row.mail_status is not MailStatus.PENDING
            or row.mail_to is None
            or (row.mail_next_attempt_at is not None and row.mail_next_attempt_at > now)
        ):
            return None
        # a lease: while this node talks to the mail server, no other node sends it too
        row.mail_next_attempt_at = now + SEND_LEASE
        user = session.get(User, row.user_id)
        return _email(row, user.locale if user else None, from_address)


def _record_sent(
    sessions: sessionmaker[Session], notification_id: int, clock: Clock, report: DeliveryReport
) -> DeliveryReport:
    with transaction(sessions) as session:
        row = session.get(Notification, notification_id, with_for_update=True)
        if row is not None:
            row.mail_attempts += 1
            row.mail_status = MailStatus.SENT
            row.mail_sent_at = clock.now()
            row.mail_next_attempt_at = None
            row.mail_last_error = None
    return DeliveryReport(report.sent + 1, report.retried, report.failed)


def _record_failure(
    sessions: sessionmaker[Session],
    notification_id: int,
    clock: Clock,
    error: Unavailable,
    report: DeliveryReport,
) -> DeliveryReport:
    with transaction(sessions) as session:
        row = session.get(Notification, notification_id, with_for_update=True)
        if row is None:
            return report
        row.mail_attempts += 1
        row.mail_last_error = error.detail[:500]
        if row.mail_attempts >= MAX_ATTEMPTS:
            row.mail_status = MailStatus.FAILED
            row.mail_next_attempt_at = None
            log.error("gave up mailing notification %s: %s", notification_id, error.detail)
            return DeliveryReport(report.sent, report.retried, report.failed + 1)
        row.mail_next_attempt_at = clock.now() + retry_wait(row.mail_attempts)
        log.warning("mail for notification %s will be retried: %s", notification_id, error.detail)
        return DeliveryReport(report.sent, report.retried + 1, report.failed)


def _email(row: Notification, locale: str | None, from_address: str) -> EmailMessage:
    text = render_message(row.kind, json.loads(row.params), locale)
    message = EmailMessage()
    message["From"] = from_address
    message["To"] = row.mail_to
    message["Subject"] = text.subject
    message["Date"] = formatdate(usegmt=True)
    # the domain given, so Python does not look up this host's name
    domain = from_address.rpartition("@")[2]
    message["Message-ID"] = make_msgid(idstring=f"notification-{row.id}", domain=domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to us
    message.set_content(text.body)
    return message
