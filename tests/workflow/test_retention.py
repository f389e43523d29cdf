"""The retention sweep with a frozen clock, on SQLite and PostgreSQL: every state at its
period, the notice before a deletion, a dry run, a crash in the middle, the archive."""

from __future__ import annotations

import dataclasses
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from appliance.audit.log import verify_chain
from appliance.cli import main
from appliance.errors import Forbidden, NotFound
from appliance.models import (
    AuditEvent,
    Contract,
    ContractState,
    DocumentVersion,
    EvidenceEvent,
    Notification,
    Party,
    Role,
)
from appliance.notify.messages import render_message
from appliance.workflow import closing, drafts, queries, retention
from appliance.workflow.queries import ContractFilter, Document
from appliance.workflow.retention import (
    RetentionStep,
    Step,
    months_after,
    months_before,
    sweep_retention,
)
from appliance.workflow.sweep import sweep_unreferenced_blobs
from tests.fakes.clock import FakeClock
from tests.fixtures.pdfs import make_pdf
from tests.workflow.conftest import CLIENT, WorkflowEnv, party_id


def _at(env: WorkflowEnv, moment: datetime) -> Any:
    return dataclasses.replace(env.ctx, clock=FakeClock(moment))


def _sweep(ctx: Any, **kwargs: Any) -> tuple[Any, list[RetentionStep]]:
    steps: list[RetentionStep] = []
    report = sweep_retention(ctx, on_step=steps.append, **kwargs)
    return report, steps


def _pdf(number: int) -> bytes:
    """A file of its own, so no other contract shares its blob."""
    return make_pdf(pages=2, text=f"Contract number {number}")


def _one_of_each_state(env: WorkflowEnv) -> dict[ContractState, int]:
    initiator = env.people["initiator"]
    draft = env.start([("alice", 1)], send=False, pdf=_pdf(1))
    withdrawn = env.start([("alice", 1)], pdf=_pdf(2))
    closing.withdraw_contract(env.ctx, initiator, CLIENT, withdrawn.id, "sent by mistake")
    rejected = env.start([("alice", 1)], pdf=_pdf(3))
    closing.reject_contract(
        env.ctx, env.people["alice"], CLIENT, rejected.id, party_id(rejected, "张伟"), "wrong price"
    )
    expired = env.start([("bob", 1)], pdf=_pdf(4))
    with env.services.sessions.begin() as session:
        session.get(Contract, expired.id).deadline = env.services.clock.now() - timedelta(minutes=1)
    closing.expire_and_remind(env.ctx)
    signing = env.start([("bob", 1)], pdf=_pdf(5))
    completed = env.start([("alice", 1)], pdf=_pdf(6))
    env.sign("alice", completed.id, party_id(completed, "张伟"))
    ended = env.start([("bob", 1)], pdf=_pdf(7))
    env.sign("bob", ended.id, party_id(ended, "Bob Builder"))
    closing.end_contract(env.ctx, initiator, CLIENT, ended.id, "terminated by agreement")
    return {
        ContractState.DRAFT: draft.id,
        ContractState.WITHDRAWN: withdrawn.id,
        ContractState.REJECTED: rejected.id,
        ContractState.EXPIRED: expired.id,
        ContractState.SIGNING: signing.id,
        ContractState.COMPLETED: completed.id,
        ContractState.ENDED: ended.id,
    }


def _blob_names(env: WorkflowEnv, contract_id: int) -> set[str]:
    with env.services.sessions() as session:
        names = set(
            session.scalars(select(DocumentVersion.sha256).where(DocumentVersion.contract_id == contract_id))
        )
        completion = session.get(Contract, contract_id).completion_sha256
    return names | ({completion} if completion else set())


def test_every_state_meets_its_period_told_first_then_deleted_or_archived(
    workflow_factory, any_db_url: str
) -> None:
    env = workflow_factory(any_db_url)
    ids = _one_of_each_state(env)
    deletable = {
        s: ids[s]
        for s in (ContractState.DRAFT, ContractState.WITHDRAWN, ContractState.REJECTED, ContractState.EXPIRED)
    }
    blobs = {cid: _blob_names(env, cid) for cid in deletable.values()}
    start = env.services.clock.now()

    # a day short of the notice: nothing to do
    early = _at(env, months_after(start, 12) - timedelta(days=31))
    assert _sweep(early, dry_run=True)[1] == []

    # 30 days before the deletion: the dry run lists the notices and changes nothing
    notice_time = months_after(start, 12) - timedelta(days=30) + timedelta(minutes=5)
    notice = _at(env, notice_time)
    report, steps = _sweep(notice, dry_run=True)
    assert {(s.step, s.contract_id) for s in steps} == {(Step.NOTIFY, cid) for cid in deletable.values()}
    assert report.notified == 4 and report.deleted == report.archived == 0
    with env.services.sessions() as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.kind == "contract_deletion_due")
            )
            == 0
        )
        assert session.scalar(select(func.count()).where(Contract.deletion_noticed_at.is_not(None))) == 0

    report, _ = _sweep(notice)
    assert report.notified == 4
    with env.services.sessions() as session:
        told = session.execute(
            select(Notification.user_id, Notification.params).where(
                Notification.kind == "contract_deletion_due"
            )
        ).all()
    initiator, alice, bob = (env.people[n].user_id for n in ("initiator", "alice", "bob"))
    told_users = sorted(user_id for user_id, _ in told)
    # the initiator of all four; alice of the withdrawn and rejected ones, bob of the expired one;
    # alice is a party of the draft too, but a draft's parties never heard of it
    assert told_users == sorted([initiator] * 4 + [alice, alice, bob])
    message = render_message("contract_deletion_due", json.loads(told[0].params), "zh_Hans_CN")
    assert "删除" in message.subject and "https://esign.corp.example/contracts/" in message.body
    assert _sweep(notice)[0].notified == 0  # once

    # the period has run out and the notice is a month old: deleted, with a tombstone each
    deletion_time = months_after(start, 12) + timedelta(days=1)
    report, steps = _sweep(_at(env, deletion_time), dry_run=True)
    assert {(s.step, s.contract_id) for s in steps} == {(Step.DELETE, cid) for cid in deletable.values()}
    assert queries.get_contract(env.ctx, env.people["initiator"], CLIENT, ids[ContractState.DRAFT]).id
    report, _ = _sweep(_at(env, deletion_time))
    assert report.deleted == 4 and report.blobs_removed == len(set().union(*blobs.values()))
    for cid in deletable.values():
        with pytest.raises(NotFound):
            queries.get_contract(env.ctx, env.people["initiator"], CLIENT, cid)
        assert not any(env.services.blobs.exists(name) for name in blobs[cid])
    with env.services.sessions() as session:
        for model in (EvidenceEvent, Party, DocumentVersion):
            assert (
                session.scalar(
                    select(func.count()).select_from(model).where(model.contract_id.in_(deletable.values()))
                )
                == 0
            )
        tombstones = session.scalars(select(AuditEvent).where(AuditEvent.action == "contract.deleted")).all()
        assert sorted(t.contract_id for t in tombstones) == sorted(deletable.values())
        facts = json.loads(
            next(t for t in tombstones if t.contract_id == ids[ContractState.REJECTED]).details
        )
        assert facts["state"] == "rejected" and facts["reason"] == "retention" and facts["documents"]
        assert verify_chain(session) == []
        # what was logged about them before stays: the log is append-only
        assert (
            session.scalar(select(func.count()).where(AuditEvent.contract_id == ids[ContractState.WITHDRAWN]))
            > 1
        )
    assert _sweep(_at(env, deletion_time))[0] == type(report)(0, 0, 0, 0)  # idempotent

    # the open and the finished ones are untouched so far; the finished are archived at 60 months
    for state in (ContractState.SIGNING, ContractState.COMPLETED, ContractState.ENDED):
        assert queries.get_contract(env.ctx, env.people["initiator"], CLIENT, ids[state]).state is state
    archive_time = months_after(start, 60) + timedelta(days=1)
    _, steps = _sweep(_at(env, archive_time), dry_run=True)
    assert {(s.step, s.contract_id) for s in steps} == {
        (Step.ARCHIVE, ids[ContractState.COMPLETED]),
        (Step.ARCHIVE, ids[ContractState.ENDED]),
    }
    report, _ = _sweep(_at(env, archive_time))
    assert report.archived == 2 and report.deleted == 0
    assert queries.get_contract(env.ctx, env.people["initiator"], CLIENT, ids[ContractState.SIGNING])


def test_archived_contracts_are_the_archive_admins_alone(workflow_factory) -> None:
    env = workflow_factory()
    archivist = env.add_person("archivist", "Archive Admin", Role.ARCHIVE_ADMIN)
    completed = env.start([("alice", 1)])
    env.sign("alice", completed.id, party_id(completed, "张伟"))
    live = env.start([("alice", 1)])
    later = _at(env, months_after(env.services.clock.now(), 60) + timedelta(days=1))
    assert sweep_retention(later).archived == 1
    with env.services.sessions() as session:
        assert (
            "archived"
            in session.scalars(
                select(EvidenceEvent.action).where(EvidenceEvent.contract_id == completed.id)
            ).all()
        )

    for who in ("initiator", "alice", "orgadmin"):
        principal = env.people[who]
        listed = queries.list_contracts(env.ctx, principal, ContractFilter(), cursor=None, limit=50)
        assert [c.id for c in listed.items] == [live.id]
        with pytest.raises(NotFound):
            queries.get_contract(env.ctx, principal, CLIENT, completed.id)
        with pytest.raises(Forbidden):
            queries.list_contracts(env.ctx, principal, ContractFilter(archived=True), cursor=None, limit=50)

    ordinary = queries.list_contracts(env.ctx, archivist, ContractFilter(), cursor=None, limit=50)
    assert ordinary.items == ()
    archive = queries.list_contracts(
        env.ctx, archivist, ContractFilter(archived=True, title="Supply"), cursor=None, limit=50
    )
    assert [c.id for c in archive.items] == [completed.id] and archive.items[0].archived_at is not None
    assert queries.get_contract(env.ctx, archivist, CLIENT, completed.id).state is ContractState.COMPLETED
    with queries.open_document(env.ctx, archivist, CLIENT, completed.id, Document.CURRENT) as document:
        assert document.stream.read(5) == b"%PDF-"


def test_nothing_is_deleted_before_its_notice_is_a_month_old(workflow_factory) -> None:
    env = workflow_factory()
    draft = env.start([("alice", 1)], send=False)
    long_after = months_after(env.services.clock.now(), 24)
    report, steps = _sweep(_at(env, long_after))
    assert (report.notified, report.deleted) == (1, 0)
    assert steps[0].due == long_after + timedelta(days=30)  # the notice names the real date
    assert _sweep(_at(env, long_after + timedelta(days=29)))[0].deleted == 0
    assert _sweep(_at(env, long_after + timedelta(days=30)))[0].deleted == 1
    with pytest.raises(NotFound):
        queries.get_contract(env.ctx, env.people["initiator"], CLIENT, draft.id)


def test_a_document_another_contract_uses_is_kept(workflow_factory) -> None:
    env = workflow_factory()
    pdf = make_pdf(pages=1)
    old = env.start([("alice", 1)], pdf=pdf, send=False)
    with env.services.sessions.begin() as session:
        session.get(Contract, old.id).created_at -= timedelta(days=800)
    kept = drafts.create_contract(
        env.ctx,
        env.people["initiator"],
        CLIENT,
        drafts.NewContract(title="Same file", filename="s.pdf", not_excluded=True),
        io.BytesIO(pdf),
    )
    shared = _blob_names(env, old.id)
    assert shared == _blob_names(env, kept.id)
    now = env.services.clock.now()
    sweep_retention(_at(env, now))
    report = sweep_retention(_at(env, now + timedelta(days=31)))
    assert (report.deleted, report.blobs_removed) == (1, 0)
    assert all(env.services.blobs.exists(name) for name in shared)


class _Crash(Exception):
    pass


def test_a_crash_mid_sweep_leaves_each_contract_whole_and_the_rerun_finishes(
    workflow_factory, any_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = workflow_factory(any_db_url)
    ids = [
        env.start([("alice", 1)], pdf=make_pdf(pages=1, text=f"draft {n}"), send=False).id for n in range(5)
    ]
    blobs = {cid: _blob_names(env, cid) for cid in ids}
    start = env.services.clock.now()
    sweep_retention(_at(env, months_after(start, 12)))
    deletion = _at(env, months_after(start, 12) + timedelta(days=31))

    real_delete = retention.delete
    contract_deletes = {"n": 0}

    def crash_before_the_second_batch_deletes_its_contracts(model: Any) -> Any:
        # by then that batch has deleted its contracts' evidence, versions and parties
        if model is Contract:
            contract_deletes["n"] += 1
            if contract_deletes["n"] == 2:
                raise _Crash("power cut")
        return real_delete(model)

    monkeypatch.setattr(retention, "delete", crash_before_the_second_batch_deletes_its_contracts)
    with pytest.raises(_Crash):
        sweep_retention(deletion, batch=2)
    with env.services.sessions() as session:
        left = set(session.scalars(select(Contract.id).where(Contract.id.in_(ids))))
        assert left == set(ids[2:])  # the first batch is gone, the second rolled back whole
        for cid in ids[2:]:
            assert session.scalar(select(func.count()).where(EvidenceEvent.contract_id == cid)) > 0
            assert session.scalar(select(func.count()).where(DocumentVersion.contract_id == cid)) == 1
        assert verify_chain(session) == []
    assert all(env.services.blobs.exists(n) for cid in ids[2:] for n in blobs[cid])
    assert not any(env.services.blobs.exists(n) for cid in ids[:2] for n in blobs[cid])

    monkeypatch.setattr(retention, "delete", real_delete)
    assert sweep_retention(deletion, batch=2).deleted == 3
    with env.services.sessions() as session:
        tombstones = session.scalars(
            select(AuditEvent.contract_id).where(AuditEvent.action == "contract.deleted")
        ).all()
    assert sorted(tombstones) == sorted(ids)  # one each, none twice


class _BlobsFailingDelete:
    """The real store, its delete cut off as by a crash after the commit."""

    def __init__(self, blobs: Any) -> None:
        self._blobs = blobs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._blobs, name)

    def delete(self, name: str) -> None:
        raise _Crash(f"killed before removing {name}")


def test_files_left_by_a_crash_after_the_commit_go_with_the_blob_sweep(workflow_factory) -> None:
    env = workflow_factory()
    draft = env.start([("alice", 1)], send=False)
    names = _blob_names(env, draft.id)
    start = env.services.clock.now()
    sweep_retention(_at(env, months_after(start, 12)))
    deletion = dataclasses.replace(
        _at(env, months_after(start, 12) + timedelta(days=31)), blobs=_BlobsFailingDelete(env.ctx.blobs)
    )
    with pytest.raises(_Crash):
        sweep_retention(deletion)
    with pytest.raises(NotFound):
        queries.get_contract(env.ctx, env.people["initiator"], CLIENT, draft.id)
    assert all(env.services.blobs.exists(n) for n in names)
    report = sweep_unreferenced_blobs(env.ctx, older_than=timedelta(0))
    assert set(report.names) >= names
    assert not any(env.services.blobs.exists(n) for n in names)


def test_calendar_months() -> None:
    assert months_before(datetime(2027, 3, 31, 12, tzinfo=UTC), 1) == datetime(2027, 2, 28, 12, tzinfo=UTC)
    assert months_after(datetime(2026, 12, 7, tzinfo=UTC), 60) == datetime(2031, 12, 7, tzinfo=UTC)
    assert months_before(datetime(2027, 1, 15, tzinfo=UTC), 13) == datetime(2025, 12, 15, tzinfo=UTC)


def test_the_cli_dry_run_lists_and_changes_nothing_then_the_sweep_tells(workflow_factory) -> None:
    env = workflow_factory()
    draft = env.start([("alice", 1)], send=False)
    with env.services.sessions.begin() as session:
        session.get(Contract, draft.id).created_at = months_before(env.services.clock.now(), 12)
    command = ["--config", str(env.base / "config.yaml"), "retention", "sweep"]
    dry = CliRunner().invoke(main, [*command, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"would notify\tcontract {draft.id}\tdraft\tdeleted on " in dry.output
    assert "would notify 1, would delete 0 (0 files removed), would archive 0" in dry.output
    with env.services.sessions() as session:
        assert session.get(Contract, draft.id).deletion_noticed_at is None
    real = CliRunner().invoke(main, command)
    assert real.exit_code == 0, real.output
    assert real.output.splitlines()[-1] == "notify 1, delete 0 (0 files removed), archive 0"
    with env.services.sessions() as session:
        assert session.get(Contract, draft.id).deletion_noticed_at is not None
