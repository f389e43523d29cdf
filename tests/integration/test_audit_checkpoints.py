"""Signed checkpoints of the operation log (appliance.audit.checkpoints) and `appliance verify-log`.

Each test tampers as someone who may write the database would, including recomputing the
hash chain and the head row after the change, so that only the signed checkpoints can tell.
Everything happens in one transaction that is rolled back, after `verify_log` has read it.
On PostgreSQL the tampering first disables the log's append-only triggers, as only the
tables' owner can; the last tests show that the application itself cannot change the log.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from appliance.audit import AuditRecord, append_event
from appliance.audit.checkpoints import verify_log, write_checkpoint
from appliance.audit.log import event_hash
from appliance.config import load_config
from appliance.db import create_db_engine, migrate_database, transaction
from appliance.jobs.registry import log_checkpoint_job
from appliance.models import AuditChainHead, AuditCheckpoint, AuditEvent
from appliance.pki.bootstrap import init_pki
from appliance.pki.ca import make_context
from appliance.services import Services, build_services
from tests.fixtures.hsm import SoftHsm, write_pki_config
from tests.fixtures.tamper import lift_log_triggers

pytestmark = pytest.mark.hsm

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
RECORDS = 7
CHECKPOINT_AT = 5


@dataclass
class LogEnv:
    services: Services
    config_path: Path

    def verify(self, session: Session) -> Any:
        assert self.services.custody is not None
        return verify_log(session, self.services.custody)


@pytest.fixture
def log_env(any_db_url: str, softhsm: SoftHsm, tmp_path: Path) -> Iterator[LogEnv]:
    """The PKI, records 1-7 and a checkpoint signed after record 5."""
    path = write_pki_config(tmp_path / "site", softhsm, database={"url": any_db_url})
    config = load_config(path, environ={})
    migrate_database(create_db_engine(config.database))
    services = build_services(config)
    assert services.custody is not None
    with transaction(services.sessions) as session:
        init_pki(session, make_context(services.custody, config, services.clock))
    for i in range(1, RECORDS + 1):
        with transaction(services.sessions) as session:
            append_event(session, AuditRecord(action=f"test.event{i}", occurred_at=T0 + timedelta(minutes=i)))
            if i == CHECKPOINT_AT:
                write_checkpoint(session, services.custody, T0 + timedelta(minutes=i, seconds=30))
    yield LogEnv(services, path)
    services.engine.dispose()


def _recompute_chain_from(session: Session, seq: int) -> None:
    """What a careful forger does after a change: rehash every later record and the head."""
    events = session.scalars(select(AuditEvent).where(AuditEvent.seq >= seq).order_by(AuditEvent.seq)).all()
    previous = session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == seq - 1)) or "0" * 64
    for event in events:
        # the hashes are unique columns: park them first so no two rows clash meanwhile
        event.prev_hash, event.hash = f"x{event.seq}".ljust(64, "x"), f"y{event.seq}".ljust(64, "y")
    session.flush()
    for event in events:
        event.prev_hash = previous
        event.hash = previous = event_hash(event.seq, event.prev_hash, event)
        session.flush()
    head = session.get(AuditChainHead, 1)
    assert head is not None
    newest = events[-1] if events else session.get(AuditEvent, seq - 1)
    head.last_seq, head.last_hash = (newest.seq, newest.hash) if newest else (0, "0" * 64)
    session.flush()


def _only_checkpoint_problems(report: Any) -> bool:
    """The forgery fooled the chain: what is found, only the checkpoints found."""
    return bool(report.problems) and all("checkpoint" in p.problem for p in report.problems)


def test_an_intact_log_verifies_with_its_checkpoint(log_env: LogEnv) -> None:
    with log_env.services.sessions() as session:
        report = log_env.verify(session)
    assert report.intact and report.first_bad_record is None
    assert (report.records, report.checkpoints) == (RECORDS, 1)


def test_an_edit_with_the_chain_recomputed_is_found_by_the_checkpoint(log_env: LogEnv) -> None:
    with log_env.services.sessions() as session:
        lift_log_triggers(session)
        session.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(details='{"amount":"999999"}'))
        _recompute_chain_from(session, 3)
        report = log_env.verify(session)
    # the chain alone is whole again; the checkpoint says the change is in records 1 to 5
    assert _only_checkpoint_problems(report)
    assert report.first_bad_record == 1
    assert f"records 1 to {CHECKPOINT_AT} were changed" in report.problems[0].problem


def test_an_edit_in_place_names_the_record(log_env: LogEnv) -> None:
    with log_env.services.sessions() as session:
        lift_log_triggers(session)
        session.execute(update(AuditEvent).where(AuditEvent.seq == 6).values(actor_name="someone else"))
        report = log_env.verify(session)
    assert report.first_bad_record == 6
    assert report.problems[0].problem == "content changed after it was written"


def test_a_deleted_record_is_found(log_env: LogEnv) -> None:
    with log_env.services.sessions() as session:
        lift_log_triggers(session)
        session.execute(delete(AuditEvent).where(AuditEvent.seq == 5))
        report = log_env.verify(session)
    assert report.first_bad_record == 5
    assert any("record 5 was removed" in p.problem for p in report.problems)


def test_reordered_records_are_found(log_env: LogEnv) -> None:
    with log_env.services.sessions() as session:
        lift_log_triggers(session)
        two, three = session.get(AuditEvent, 2), session.get(AuditEvent, 3)
        assert two is not None and three is not None
        two.action, three.action = three.action, two.action
        two.occurred_at, three.occurred_at = three.occurred_at, two.occurred_at
        session.flush()
        _recompute_chain_from(session, 2)
        report = log_env.verify(session)
    assert _only_checkpoint_problems(report) and report.first_bad_record == 1


def test_an_inserted_record_is_found(log_env: LogEnv) -> None:
    with log_env.services.sessions() as session:
        lift_log_triggers(session)
        # make room after record 2 (from the top down, as seq is the key), then slip one in
        for seq in range(RECORDS, 2, -1):
            session.execute(update(AuditEvent).where(AuditEvent.seq == seq).values(seq=seq + 1))
        forged = AuditEvent(
            seq=3, occurred_at=T0, action="test.forged", details="{}", prev_hash="p" * 64, hash="h" * 64
        )
        session.add(forged)
        session.flush()
        _recompute_chain_from(session, 3)
        report = log_env.verify(session)
    assert _only_checkpoint_problems(report) and report.first_bad_record == 1
    assert f"record {CHECKPOINT_AT} is not the one" in report.problems[0].problem


def test_a_truncated_tail_with_the_head_moved_back_is_found(log_env: LogEnv) -> None:
    with log_env.services.sessions() as session:
        lift_log_triggers(session)
        session.execute(delete(AuditEvent).where(AuditEvent.seq >= 4))
        _recompute_chain_from(session, 4)  # the head now names record 3: the chain itself is whole
        report = log_env.verify(session)
    assert [p.seq for p in report.problems] == [4]
    assert report.problems[0].problem.startswith(f"records 4 to {CHECKPOINT_AT} were removed")


def test_a_forged_checkpoint_does_not_verify(log_env: LogEnv) -> None:
    with log_env.services.sessions() as session:
        real = session.scalars(select(AuditCheckpoint)).one()
        session.add(
            AuditCheckpoint(
                seq=RECORDS,
                head_hash=session.get(AuditEvent, RECORDS).hash,  # type: ignore[union-attr]
                created_at=T0 + timedelta(hours=1),
                key_id=real.key_id,
                certificate_id=real.certificate_id,
                digest_algorithm=real.digest_algorithm,
                signature=real.signature,  # a signature over other facts
            )
        )
        session.flush()
        report = log_env.verify(session)
    assert [p.seq for p in report.problems] == [RECORDS]
    assert "signature does not verify" in report.problems[0].problem


def test_the_application_cannot_change_or_remove_log_rows_on_postgresql(log_env: LogEnv) -> None:
    if log_env.services.engine.dialect.name != "postgresql":
        pytest.skip("the append-only triggers are PostgreSQL's (an SQLite file's owner can do anything)")
    statements = [
        update(AuditEvent).where(AuditEvent.seq == 1).values(action="changed"),
        delete(AuditEvent).where(AuditEvent.seq == RECORDS),
        delete(AuditCheckpoint),
        text("TRUNCATE audit_events CASCADE"),
    ]
    for statement in statements:
        with (
            pytest.raises(DBAPIError, match="the operation log is append-only"),
            transaction(log_env.services.sessions) as session,
        ):
            session.execute(statement)
    with log_env.services.sessions() as session:
        assert log_env.verify(session).intact


def test_cli_checkpoints_and_verifies_and_names_the_first_bad_record(
    log_env: LogEnv, any_db_url: str
) -> None:
    if not any_db_url.startswith("sqlite"):
        pytest.skip("the CLI's own database handling is the same on both; once is enough")
    command = [sys.executable, "-m", "appliance", "--config", str(log_env.config_path)]
    made = subprocess.run([*command, "log-checkpoint"], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert f"checkpoint of record {RECORDS} signed" in made.stdout
    good = subprocess.run([*command, "verify-log"], capture_output=True, text=True, timeout=120)
    assert good.returncode == 0, good.stderr
    assert f"operation log intact: {RECORDS} records, 2 signed checkpoints" in good.stdout
    with transaction(log_env.services.sessions) as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(details='{"n":1}'))
    bad = subprocess.run([*command, "verify-log"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert "record 2: content changed after it was written" in bad.stdout
    assert "first bad record 2" in bad.stderr


def test_cli_refuses_without_an_hsm(tmp_path: Path, softhsm: SoftHsm) -> None:
    path = write_pki_config(tmp_path / "nohsm", softhsm, with_hsm=False)
    migrate_database(create_db_engine(load_config(path, environ={}).database))
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "--config", str(path), "verify-log"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "hsm: required" in result.stderr
    assert yaml.safe_load(path.read_text())  # the config itself is untouched


def test_the_hourly_job_signs_only_when_the_log_moved(log_env: LogEnv) -> None:
    assert log_checkpoint_job(log_env.services) == f"checkpoint 2 signed at record {RECORDS}"
    assert (
        log_checkpoint_job(log_env.services) == f"the log has not moved since checkpoint 2 (record {RECORDS})"
    )
    with transaction(log_env.services.sessions) as session:
        append_event(session, AuditRecord(action="test.later", occurred_at=T0 + timedelta(hours=2)))
    assert log_checkpoint_job(log_env.services) == f"checkpoint 3 signed at record {RECORDS + 1}"
    with log_env.services.sessions() as session:
        assert log_env.verify(session).intact
