"""A signer killed with SIGKILL at any moment of a signing (security plan D05): every attempt is
either fully done or left no trace, never a second signature; the blob sweep then removes what
the killed attempts stored and nothing else, and a retry with a new code signs.

Each attempt signs in a process of its own (tests/workflow/_sign_once.py) that is killed after
a random delay, spread from 0 to 1.2 times the measured duration of an uninterrupted signing
of the same kind, so most kills land inside the signing and some after it. The delays come
from a seeded random generator; the seed is printed and recorded, and
APPLIANCE_CRASH_SEED=<seed> replays a run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import secrets
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import IO, Any

from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy import select as sql_select

from appliance.audit import verify_chain
from appliance.models import (
    AuditEvent,
    Contract,
    ContractState,
    DocumentVersion,
    EvidenceEvent,
    PartyKind,
    PartyStatus,
    Routing,
    Seal,
    User,
)
from appliance.workflow import drafts, queries
from appliance.workflow.completion import issue_missing_completion_certificates
from appliance.workflow.drafts import NewContract, NewField, NewParty
from appliance.workflow.store import lock_contract
from appliance.workflow.sweep import sweep_unreferenced_blobs
from tests.fixtures.pdfs import make_pdf
from tests.workflow.conftest import CLIENT, WorkflowEnv

ATTEMPTS = 50
SEED_ENV = "APPLIANCE_CRASH_SEED"
REPO = Path(__file__).resolve().parents[2]
TOP = NewField(page=1, x=72, y=600, width=180, height=60)
BOTTOM = NewField(page=2, x=72, y=72, width=180, height=60)
WAIT = 120.0
"""Seconds any one step of the signer may take before the test gives up on it."""


class Kind(Enum):
    ALONE = "alone (two fields, completes)"
    FIRST = "first of two"
    SEAL = "seal after a person (completes)"


KINDS = tuple(Kind)


@dataclass(frozen=True)
class Target:
    contract_id: int
    party_id: int
    username: str
    kind: Kind


@dataclass(frozen=True)
class Snapshot:
    state: ContractState
    versions: tuple[tuple[int, str, int | None], ...]
    """(number, sha256, signing party) per document version."""
    parties: tuple[tuple[int, PartyStatus], ...]
    signed: tuple[dict[str, Any], ...]
    """The details of the contract's "signed" evidence events, in order."""
    completion_sha256: str | None


class Signer:
    """The forking signer process of tests/workflow/_sign_once.py."""

    def __init__(self, config: Path, stderr: IO[bytes]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.workflow._sign_once", str(config)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        self.unread = b""
        assert self.expect("ready") == "ready"

    def expect(self, word: str) -> str:
        """The next line of the signer, which must start with `word`."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        # lines read from the pipe by hand: a buffered reader would hide a second line from select
        while b"\n" not in self.unread:
            ready, _, _ = select.select([fd], [], [], WAIT)
            assert ready, f"the signer said nothing for {WAIT} s (waiting for {word!r})"
            chunk = os.read(fd, 4096)
            assert chunk, f"the signer ended (waiting for {word!r})"
            self.unread += chunk
        line, self.unread = self.unread.split(b"\n", 1)
        text = line.decode().strip()
        assert text.startswith(word), f"expected {word!r} from the signer, got {text!r}"
        return text

    def start(self, target: Target, user_id: int, code: str) -> int:
        """Hand out one signing; returns the pid of the child about to sign."""
        self._say(f"{target.contract_id} {target.party_id} {user_id} {code}")
        return int(self.expect("started").split()[1])

    def kill(self) -> None:
        """SIGKILL the child at once (the parent does it: the child cannot be reaped before)."""
        self._say("kill")

    def wait(self) -> None:
        self._say("wait")

    def _say(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())
        self.process.stdin.flush()

    def finish(self, pid: int) -> tuple[bool, int]:
        """Whether the child said "done", and its exit status (minus the signal when killed)."""
        line = self.expect("")
        said_done = line == f"done {pid}"
        if said_done:
            line = self.expect("exit")
        word, exited, status = line.split()
        assert (word, int(exited)) == ("exit", pid), line
        return said_done, int(status)

    def close(self) -> None:
        """End the signer (and a child still signing: the end of stdin kills it)."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@contextmanager
def running_signer(env: WorkflowEnv) -> Iterator[Signer]:
    with (env.base / "signer.stderr").open("wb") as stderr:
        signer = Signer(env.base / "config.yaml", stderr)
        try:
            yield signer
        finally:
            signer.close()


def test_a_signing_killed_at_any_moment_is_done_or_leaves_no_trace(
    any_db_url: str,
    workflow_factory: Callable[..., WorkflowEnv],
    record_property: Callable[[str, object], None],
) -> None:
    seed = int(os.environ.get(SEED_ENV) or secrets.randbits(32))
    print(f"\ncrash test seed {seed} (replay: {SEED_ENV}={seed})")
    record_property("seed", seed)
    rng = random.Random(seed)  # noqa: S311 - delays, not secrets
    # every attempt asks for a code: lift the flood limits, not the checks
    env = workflow_factory(any_db_url, codes={"per_signer_per_hour": 1000, "per_address_per_hour": 100_000})
    contracts = Contracts(env)
    outcomes = {"done": 0, "no trace": 0}
    with running_signer(env) as signer:
        # each kind of signing takes its own time: the completing ones render and sign the
        # certificate of completion too, the seal checks the earlier signature first
        measured = {kind: _measure_one_signing(env, signer, contracts.target(kind)) for kind in Kind}
        print("uninterrupted signings took " + ", ".join(f"{k.value} {t:.2f} s" for k, t in measured.items()))
        record_property("signing_seconds", {k.value: round(t, 3) for k, t in measured.items()})
        for attempt in range(ATTEMPTS):
            kind = KINDS[attempt % len(KINDS)]
            target = contracts.target(kind)
            delay = rng.uniform(0, 1.2 * measured[kind])
            outcome = _kill_one_signing(env, signer, target, delay)
            outcomes[outcome] += 1
            contracts.note(target, outcome)
            print(f"attempt {attempt}: {kind.value} on contract {target.contract_id}, ", end="")
            print(f"killed after {delay:.3f} s: {outcome}")
    swept, strays = _sweep_and_check(env)
    summary = f"done: {outcomes['done']}, no trace: {outcomes['no trace']}, swept blobs: {swept}"
    print(f"{summary}, temp files left by the kills: {strays}")
    record_property("outcomes", summary)
    record_property("temp_files_left", strays)
    assert outcomes["done"] + outcomes["no trace"] == ATTEMPTS
    retried = contracts.finish_all()
    print(f"interrupted signings retried here with a new code: {retried}")
    record_property("retried", retried)


class Contracts:
    """Two shapes of contract: alice alone with two fields; bob, then the seal.

    A killed attempt that left no trace leaves its party pending, so the next attempt of
    that kind (with a new code) is a retry of it; a done one moves its contract on.
    """

    def __init__(self, env: WorkflowEnv) -> None:
        self.env = env
        self.made: list[int] = []
        self.interrupted: set[Target] = set()
        """Parties whose last attempt was killed leaving no trace."""

    def note(self, target: Target, outcome: str) -> None:
        if outcome == "no trace":
            self.interrupted.add(target)
        else:
            self.interrupted.discard(target)

    def target(self, kind: Kind) -> Target:
        """The next party of `kind` to sign: a pending one, else on a contract made for it."""
        for contract_id in self.made:
            target = self._pending(contract_id)
            if target is not None and target.kind is kind:
                return target
        contract_id = self._new(alone=kind is Kind.ALONE)
        target = self._pending(contract_id)
        if kind is Kind.SEAL:  # bob signs first, here and uninterrupted
            assert target is not None
            _sign_here(self.env, target)
            target = self._pending(contract_id)
        assert target is not None and target.kind is kind
        return target

    def finish_all(self) -> int:
        """Sign what is left here, with new codes; then every contract is completed with one
        signature per field. Returns how many of these were retries of interrupted attempts."""
        retried = 0
        for contract_id in self.made:
            while (target := self._pending(contract_id)) is not None:
                _sign_here(self.env, target)
                retried += target in self.interrupted
            snapshot = _snapshot(self.env, contract_id)
            assert snapshot.state is ContractState.COMPLETED
            _check_consistent(self.env, contract_id, snapshot)
        return retried

    def _pending(self, contract_id: int) -> Target | None:
        with self.env.services.sessions() as session:
            contract = session.get(Contract, contract_id)
            assert contract is not None
            for party in contract.parties:
                if party.status is not PartyStatus.PENDING:
                    continue
                if party.kind is PartyKind.SEAL:
                    return Target(contract_id, party.id, "keeper", Kind.SEAL)
                user = session.get(User, party.user_id)
                assert user is not None
                kind = Kind.ALONE if len(contract.parties) == 1 else Kind.FIRST
                return Target(contract_id, party.id, user.username, kind)
        return None

    def _new(self, *, alone: bool) -> int:
        initiator = self.env.people["initiator"]
        view = drafts.create_contract(
            self.env.ctx,
            initiator,
            CLIENT,
            NewContract(
                title="Crash test contract",
                filename="crash.pdf",
                not_excluded=True,
                routing=Routing.SEQUENTIAL,
            ),
            io.BytesIO(make_pdf(pages=2)),
        )
        parties = (
            [NewParty(PartyKind.PERSON, (TOP, BOTTOM), username="alice", routing_order=1)]
            if alone
            else [
                NewParty(PartyKind.PERSON, (TOP,), username="bob", routing_order=1),
                NewParty(PartyKind.SEAL, (BOTTOM,), seal_id=self.env.seal_id, routing_order=2),
            ]
        )
        for spec in parties:
            view = drafts.add_party(self.env.ctx, initiator, CLIENT, view.id, spec)
        self.made.append(drafts.send_contract(self.env.ctx, initiator, CLIENT, view.id).id)
        return self.made[-1]


def _measure_one_signing(env: WorkflowEnv, signer: Signer, target: Target) -> float:
    before = _snapshot(env, target.contract_id)
    code = env.code_for(env.people[target.username], target.contract_id, target.party_id)
    pid = signer.start(target, env.people[target.username].user_id, code)
    started = time.monotonic()
    signer.wait()
    said_done, status = signer.finish(pid)
    took = time.monotonic() - started
    assert said_done and status == 0, _signer_errors(env)
    assert _classify(env, target, before) == "done"
    return took


def _kill_one_signing(env: WorkflowEnv, signer: Signer, target: Target, delay: float) -> str:
    before = _snapshot(env, target.contract_id)
    code = env.code_for(env.people[target.username], target.contract_id, target.party_id)
    pid = signer.start(target, env.people[target.username].user_id, code)
    time.sleep(delay)
    signer.kill()
    said_done, status = signer.finish(pid)
    assert status in (0, -signal.SIGKILL), _signer_errors(env)
    outcome = _classify(env, target, before)
    if said_done:
        assert outcome == "done", "sign_party returned, but the signature is not there"
    return outcome


def _sign_here(env: WorkflowEnv, target: Target) -> None:
    before = _snapshot(env, target.contract_id)
    env.sign(target.username, target.contract_id, target.party_id)
    assert _classify(env, target, before) == "done"


def _signer_errors(env: WorkflowEnv) -> str:
    return (env.base / "signer.stderr").read_text(errors="replace")[-4000:]


def _snapshot(env: WorkflowEnv, contract_id: int) -> Snapshot:
    # taking the row lock waits for a killed signer's transaction to end (PostgreSQL ends it
    # once it sees the connection close; a COMMIT already sent still commits first)
    with env.services.sessions.begin() as session:
        contract = lock_contract(session, contract_id)
        signed = session.scalars(
            sql_select(EvidenceEvent.details)
            .where(EvidenceEvent.contract_id == contract_id, EvidenceEvent.action == "signed")
            .order_by(EvidenceEvent.seq)
        )
        return Snapshot(
            state=contract.state,
            versions=tuple((v.number, v.sha256, v.party_id) for v in contract.versions),
            parties=tuple((p.id, p.status) for p in contract.parties),
            signed=tuple(json.loads(d) for d in signed),
            completion_sha256=contract.completion_sha256,
        )


def _classify(env: WorkflowEnv, target: Target, before: Snapshot) -> str:
    """ "done" or "no trace"; fails on anything in between."""
    after = _snapshot(env, target.contract_id)
    _check_consistent(env, target.contract_id, after)
    if after == before:
        return "no trace"
    statuses = dict(after.parties)
    assert statuses[target.party_id] is PartyStatus.SIGNED, (before, after)
    assert after.versions[:-1] == before.versions, (before, after)
    number, sha256, party_id = after.versions[-1]
    assert (number, party_id) == (before.versions[-1][0] + 1, target.party_id)
    assert after.signed[:-1] == before.signed, (before, after)
    event = after.signed[-1]
    assert event["party_id"] == target.party_id
    assert event["document_sha256_before"] == before.versions[-1][1]
    assert event["document_sha256_after"] == sha256
    last = all(s is PartyStatus.SIGNED for s in statuses.values())
    assert after.state is (ContractState.COMPLETED if last else ContractState.SIGNING)
    if last and after.completion_sha256 is None:
        # killed after the commit, before the certificate of completion: the job makes it
        assert issue_missing_completion_certificates(env.ctx) == 1
    elif not last:
        assert after.completion_sha256 is None
    if not last:
        assert PartyStatus.PENDING in statuses.values()  # the turn moved on
    return "done"


def _check_consistent(env: WorkflowEnv, contract_id: int, snapshot: Snapshot) -> None:
    """What must hold after every attempt, whatever its outcome."""
    blobs = env.ctx.blobs
    for number, sha256, _ in snapshot.versions:
        assert hashlib.sha256(blobs.get(sha256)).hexdigest() == sha256, f"version {number}"
    if snapshot.completion_sha256 is not None:
        assert blobs.exists(snapshot.completion_sha256)
    report = queries.check_evidence(env.ctx, contract_id)
    assert report.intact, report
    with env.services.sessions() as session:
        assert verify_chain(session) == []
        contract = session.get(Contract, contract_id)
        assert contract is not None
        expected = {
            f"Party{p.id}Field{f.id}"
            for p in contract.parties
            if p.status is PartyStatus.SIGNED
            for f in p.fields
        }
    reader = PdfFileReader(io.BytesIO(blobs.get(snapshot.versions[-1][1])))
    fields = [s.field_name for s in reader.embedded_regular_signatures]
    assert sorted(fields) == sorted(expected), "a signature is missing or there twice"
    timestamps = len(reader.embedded_timestamp_signatures)
    assert timestamps == (1 if snapshot.state is ContractState.COMPLETED else 0)
    signed_events = [e["party_id"] for e in snapshot.signed]
    assert len(signed_events) == len(set(signed_events)), "a party signed twice"


def _sweep_and_check(env: WorkflowEnv) -> tuple[int, int]:
    """Sweep with no grace period: exactly the unreferenced blobs go, and the operation log says
    so. Returns how many went, and how many temp files (`.part`: writes cut off by a kill) lie
    in the store; those are not blobs, and the sweep leaves them."""
    root = Path(env.services.config.storage.path)
    with env.services.sessions() as session:
        referenced = set(session.scalars(sql_select(DocumentVersion.sha256)))
        referenced |= {c for c in session.scalars(sql_select(Contract.completion_sha256)) if c}
        referenced |= {i for i in session.scalars(sql_select(Seal.image_sha256)) if i}

    def stored() -> set[str]:
        return {p.name for p in root.glob("??/*") if p.is_file() and not p.name.endswith(".part")}

    before = stored()
    assert referenced <= before, "a referenced blob is missing"
    unreferenced = before - referenced
    dry = sweep_unreferenced_blobs(env.ctx, older_than=timedelta(0), dry_run=True)
    assert (set(dry.names), dry.removed, dry.kept) == (unreferenced, len(unreferenced), len(referenced))
    assert stored() == before and _sweep_records(env) == []
    report = sweep_unreferenced_blobs(env.ctx, older_than=timedelta(0))
    assert (set(report.names), report.removed, report.kept) == (set(dry.names), dry.removed, dry.kept)
    assert stored() == referenced
    assert _sweep_records(env) == (
        [{"removed": report.removed, "older_than_seconds": 0}] if report.removed else []
    )
    again = sweep_unreferenced_blobs(env.ctx, older_than=timedelta(0))
    assert (again.removed, again.kept) == (0, len(referenced))
    assert len(_sweep_records(env)) == (1 if report.removed else 0)
    with env.services.sessions() as session:
        assert verify_chain(session) == []
    return report.removed, len(list(root.rglob("*.part")))


def _sweep_records(env: WorkflowEnv) -> list[dict[str, Any]]:
    with env.services.sessions() as session:
        details = session.scalars(sql_select(AuditEvent.details).where(AuditEvent.action == "blobs.swept"))
        return [json.loads(d) for d in details]
