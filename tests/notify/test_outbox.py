"""Notifications: written with the change, an inbox per person, mail after the commit to a
real SMTP server, retried while the server is away, never for a rolled-back change."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from appliance.config import DatabaseConfig, MailConfig
from appliance.db import create_db_engine, create_session_factory, migrate_database, transaction
from appliance.jobs import default_jobs, run_due_jobs
from appliance.models import MailStatus, Notification, User, UserSource
from appliance.notify import (
    SmtpMailer,
    count_unread,
    deliver_due_mail,
    notify_user,
    open_inbox,
)
from appliance.notify.delivery import MAX_ATTEMPTS
from appliance.services import build_services
from tests.conftest import ConfigFactory
from tests.fakes.clock import FakeClock
from tests.fixtures.ldap import make_test_ca
from tests.fixtures.smtp import SmtpServer

T0 = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
FROM = "esign@corp.example"
LOCKED = {"scope": "address", "address": "10.8.0.7", "until": (T0 + timedelta(minutes=15)).isoformat()}


@pytest.fixture
def sessions(any_db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = create_db_engine(DatabaseConfig(url=any_db_url))
    migrate_database(engine)
    yield create_session_factory(engine)
    engine.dispose()


def add_person(sessions: sessionmaker[Session], name: str, email: str | None, locale: str | None) -> int:
    with transaction(sessions) as session:
        user = User(
            username=name,
            source=UserSource.DIRECTORY,
            display_name=name.title(),
            email=email,
            locale=locale,
            created_at=T0,
            updated_at=T0,
        )
        session.add(user)
        session.flush()
        return user.id


def notify(sessions: sessionmaker[Session], user_id: int, *, mail: bool = True) -> None:
    with transaction(sessions) as session:
        user = session.get(User, user_id)
        assert user is not None
        notify_user(session, user, "account_locked", LOCKED, now=T0, mail=mail)


def mailer(server: SmtpServer) -> SmtpMailer:
    return SmtpMailer(MailConfig(enabled=True, host="127.0.0.1", port=server.port, starttls=False), None)


def test_a_committed_notice_is_in_the_inbox_and_mailed_once_in_the_readers_language(
    sessions: sessionmaker[Session], smtp_server: SmtpServer
) -> None:
    wang = add_person(sessions, "wang", "wang@corp.example", "zh_Hans_CN")
    notify(sessions, wang)
    clock = FakeClock(T0)
    report = deliver_due_mail(sessions, mailer(smtp_server), clock, FROM)
    assert (report.sent, report.retried, report.failed) == (1, 0, 0)
    [mail] = smtp_server.received
    assert mail["To"] == "wang@corp.example" and mail["From"] == FROM
    assert mail["Subject"] == "您的电子签约账号暂时无法登录"
    assert mail["Auto-Submitted"] == "auto-generated"
    body = mail.get_content()
    assert "10.8.0.7" in body and "2026-12-01 08:45 UTC" in body and "Wang" in body
    # delivered means delivered: the next run sends nothing
    assert deliver_due_mail(sessions, mailer(smtp_server), clock, FROM).sent == 0
    assert len(smtp_server.received) == 1
    assert count_unread(sessions, wang) == 1
    [item] = open_inbox(sessions, wang, now=T0, locale="zh_Hans_CN")
    assert item.message.subject == "您的电子签约账号暂时无法登录" and not item.read
    # the page's language decides, not the one the mail went out in
    [item] = open_inbox(sessions, wang, now=T0, locale="en")
    assert item.message.subject == "Sign-in to your e-signature account is blocked" and item.read
    assert count_unread(sessions, wang) == 0


def test_a_rolled_back_change_notifies_nobody(
    sessions: sessionmaker[Session], smtp_server: SmtpServer
) -> None:
    li = add_person(sessions, "li", "li@corp.example", None)
    with pytest.raises(RuntimeError), transaction(sessions) as session:
        user = session.get(User, li)
        assert user is not None
        notify_user(session, user, "account_locked", LOCKED, now=T0, mail=True)
        raise RuntimeError("the change itself failed")
    assert deliver_due_mail(sessions, mailer(smtp_server), FakeClock(T0), FROM).sent == 0
    assert smtp_server.received == []
    with sessions() as session:
        assert session.execute(select(Notification)).first() is None


def test_mail_is_retried_with_growing_waits_while_the_server_is_away_then_given_up(
    sessions: sessionmaker[Session], smtp_server: SmtpServer
) -> None:
    zhao = add_person(sessions, "zhao", "zhao@corp.example", "en")
    notify(sessions, zhao)
    clock = FakeClock(T0)
    smtp_server.stop()
    first = deliver_due_mail(sessions, mailer(smtp_server), clock, FROM)
    assert (first.sent, first.retried) == (0, 1)
    with sessions() as session:
        row = session.execute(select(Notification)).scalar_one()
        assert row.mail_status is MailStatus.PENDING and row.mail_attempts == 1
        assert row.mail_next_attempt_at == T0 + timedelta(minutes=1)
        assert row.mail_last_error and str(smtp_server.port) in row.mail_last_error
    # not due yet: nothing is tried
    assert deliver_due_mail(sessions, mailer(smtp_server), clock, FROM).retried == 0
    smtp_server.start()
    clock.advance(timedelta(minutes=1))
    assert deliver_due_mail(sessions, mailer(smtp_server), clock, FROM).sent == 1
    assert smtp_server.received[0]["Subject"] == "Sign-in to your e-signature account is blocked"

    notify(sessions, zhao)
    smtp_server.stop()
    waits = []
    for _ in range(MAX_ATTEMPTS):
        report = deliver_due_mail(sessions, mailer(smtp_server), clock, FROM)
        with sessions() as session:
            row = session.execute(select(Notification).order_by(Notification.id.desc())).scalars().first()
            assert row is not None
            if row.mail_next_attempt_at is not None:
                waits.append(row.mail_next_attempt_at - clock.now())
                clock.set(row.mail_next_attempt_at)
    assert report.failed == 1
    assert waits[:4] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert row.mail_status is MailStatus.FAILED
    assert len(open_inbox(sessions, zhao, now=T0, locale=None)) == 2  # the notices stay


def test_no_mail_without_an_address_or_for_an_anonymised_person(
    sessions: sessionmaker[Session], smtp_server: SmtpServer
) -> None:
    no_mail = add_person(sessions, "nomail", None, None)
    gone = add_person(sessions, "gone", "gone@corp.example", None)
    with transaction(sessions) as session:
        user = session.get(User, gone)
        assert user is not None
        user.anonymised_at = T0
    notify(sessions, no_mail)
    notify(sessions, gone)
    kept = add_person(sessions, "kept", "kept@corp.example", None)
    notify(sessions, kept, mail=False)  # mail switched off in the config
    assert deliver_due_mail(sessions, mailer(smtp_server), FakeClock(T0), FROM).sent == 0
    with sessions() as session:
        statuses = session.execute(select(Notification.mail_status)).scalars().all()
    assert statuses == [MailStatus.NONE] * 3


def test_a_person_sees_only_their_own_notices(sessions: sessionmaker[Session]) -> None:
    owner = add_person(sessions, "owner", None, None)
    other = add_person(sessions, "other", None, None)
    notify(sessions, owner)
    assert open_inbox(sessions, other, now=T0, locale=None) == []
    assert count_unread(sessions, owner) == 1  # another's opening did not touch it
    assert len(open_inbox(sessions, owner, now=T0, locale=None)) == 1


def test_starttls_checks_the_mail_servers_certificate_against_the_configured_ca(
    sessions: sessionmaker[Session], smtp_tls_server: SmtpServer, tmp_path: Path
) -> None:
    person = add_person(sessions, "qian", "qian@corp.example", None)
    notify(sessions, person)
    clock = FakeClock(T0)
    base = {"enabled": True, "host": "127.0.0.1", "port": smtp_tls_server.port}
    plain = SmtpMailer(MailConfig(**base, starttls=False), None)  # the server requires STARTTLS
    (tmp_path / "other").mkdir()
    foreign = SmtpMailer(MailConfig(**base, ca_file=make_test_ca(tmp_path / "other").ca_file), None)
    for refused in (plain, foreign):
        assert deliver_due_mail(sessions, refused, clock, FROM).retried == 1
        clock.advance(timedelta(hours=1))
    assert smtp_tls_server.received == []
    trusted = SmtpMailer(MailConfig(**base, ca_file=smtp_tls_server.tls.ca_file), None)
    assert deliver_due_mail(sessions, trusted, clock, FROM).sent == 1
    assert [m["To"] for m in smtp_tls_server.received] == ["qian@corp.example"]


def test_the_scheduled_job_mails_when_mail_is_on(
    write_config: ConfigFactory, smtp_server: SmtpServer
) -> None:
    _path, cfg = write_config(
        mail={"enabled": True, "host": "127.0.0.1", "port": smtp_server.port, "starttls": False}
    )
    migrate_database(create_db_engine(cfg.database))
    services = build_services(cfg, clock=FakeClock(T0))
    person = add_person(services.sessions, "sun", "sun@corp.example", None)
    notify(services.sessions, person)
    jobs = [job for job in default_jobs(services) if job.name == "mail-delivery"]
    [outcome] = run_due_jobs(services, jobs)
    assert "mailed 1" in outcome.summary, outcome
    assert [m["To"] for m in smtp_server.received] == ["sun@corp.example"]
    _path, without = write_config()
    assert "mail-delivery" not in {job.name for job in default_jobs(build_services(without))}


def test_a_dead_mail_server_costs_one_attempt_per_run_not_one_per_notice(
    sessions: sessionmaker[Session], smtp_server: SmtpServer
) -> None:
    for name in ("zhou", "wu", "zheng"):
        notify(sessions, add_person(sessions, name, f"{name}@corp.example", None))
    smtp_server.stop()
    report = deliver_due_mail(sessions, mailer(smtp_server), FakeClock(T0), FROM)
    assert (report.sent, report.retried) == (0, 1)
    with sessions() as session:
        attempts = session.execute(select(Notification.mail_attempts).order_by(Notification.id)).scalars()
        assert list(attempts) == [1, 0, 0]


def test_a_notice_that_cannot_be_mailed_does_not_block_the_queue(
    sessions: sessionmaker[Session], smtp_server: SmtpServer
) -> None:
    broken = add_person(sessions, "feng", "feng@corp.example", None)
    notify(sessions, broken)
    with transaction(sessions) as session:
        row = session.execute(select(Notification)).scalar_one()
        row.kind = "retired_kind"  # a notice of a kind this version has no text for
    notify(sessions, add_person(sessions, "chen", "chen@corp.example", None))
    report = deliver_due_mail(sessions, mailer(smtp_server), FakeClock(T0), FROM)
    assert (report.sent, report.retried) == (1, 1)
    assert [m["To"] for m in smtp_server.received] == ["chen@corp.example"]
    with sessions() as session:
        row = session.execute(select(Notification).where(Notification.kind == "retired_kind")).scalar_one()
        assert row.mail_attempts == 1 and "KeyError" in (row.mail_last_error or "")
