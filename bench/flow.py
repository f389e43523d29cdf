"""End-to-end signing benchmark (not a test): contracts through the REST API against the library signer.

    .venv/bin/python bench/flow.py [--contracts 20] [--quick] [--profile] [--postgresql URL]
                                   [--todo 1000] [--page-samples 50] [--skip-pages]

Sets up a complete appliance in a temp dir on its embedded defaults (bench/_flow_setup.py):
SQLite, a SoftHSM2 token and the PKI of `appliance pki init`, mail to an SMTP server in this
process, people with personal certificates and API tokens, and `appliance serve` (gunicorn,
2 workers) on 127.0.0.1. Then, at 1 and at 4 concurrent clients (threads, each with its own
initiator and two signers, driving its own contracts), for `--contracts` contracts of 1 MB:

  prepare (not timed): POST /contracts (multipart), two parties with one visible field each
       (parallel routing, so both can ask for their codes now), send, then each signer asks
       for a code and the code is read from the mail the SMTP server received;
  sign (timed): each signer POSTs /sign with its code and an Idempotency-Key, first signer
       then second. The second signature is the contract's last: it also locks the document
       with a document timestamp; a background thread of the worker makes the signed
       certificate of completion once the answer is made. The phase ends when every contract
       has its certificate.
  e2e signatures/s = sign calls / wall clock of the sign phase (all clients together);
       p50/p95 = latency of one sign call as the client sees it.
  library signatures/s = the same signatures made in this process with
       appliance.signing.documents.sign_stream: the stored 1 MB original, each signer's HSM key
       (signer resolved once), the same visible stamp, field name, reason, timestamp, and lock
       plus document timestamp on the second. None of the appliance around it: no HTTP, token,
       code, row lock, validation of the earlier signature, blob store, evidence, commit, or
       certificate of completion. One process, one signature at a time.
  ratio = e2e / library signatures per second; the library figure is measured round by round
       just before each round's HTTP sign phase, so that both see the same machine load.
  in the worker = a sign request's time inside its gunicorn worker (the access log's %(D)s;
       the bench sets only that log format, through GUNICORN_CMD_ARGS); the rest of the
       latency is the wait for a free worker and the HTTP round trip. The certificate of
       completion is made beside the next requests, not inside the logged one.
  server CPU = CPU time of gunicorn's master and workers over the sign phase, per signature
       (the HSM is SoftHSM2 inside the workers, so it is included); `cores busy` is that CPU
       over the phase's wall clock. The ratio by CPU time (library CPU per signature over
       server CPU per signature) is disturbed less by other load on the machine.

Targets, printed beside the figures: e2e at least 0.6 x the library rate; sign p95 under
500 ms at 4 concurrent clients.

Then the page path (bench/_pages.py, on a site of its own whose people sign in through slapd):
the to-do list with --todo contracts for one person, and a contract page with 20 parties, each
against the API calls for the same data: time to first byte and full response, p50 and p95,
and the page's full render in Chromium. Targets: the page at most 1.5 x the API; the to-do
list under 150 ms p95.

Contracts go in rounds of at most 10 per client (prepare, then sign), so that no code waits
long enough to expire. With --profile, or when a target is missed, sign calls of fresh
contracts are profiled in this process (pyinstrument, the app's own Flask test client on the
same services) and the time per call is broken down by stage.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.foreign_warnings import silence_foreign_deprecations
from bench._flow_setup import Crew, Person, Site, make_pdf, running_site

T = TypeVar("T")
DOCUMENT_BYTES = 1_000_000
FIELDS = (
    {"page": 1, "x": 72.0, "y": 72.0, "width": 200.0, "height": 70.0},
    {"page": 1, "x": 320.0, "y": 72.0, "width": 200.0, "height": 70.0},
)
"""One visible stamp per signer, side by side at the foot of the A4 page."""
ROUND = 10
CLIENTS = (1, 4)
TARGET_RATIO = 0.6
TARGET_P95_MS = 500.0
PROFILED_CONTRACTS = 6


class Api:
    """One person's HTTP client (a requests session is not shared between threads)."""

    def __init__(self, url: str, person: Person) -> None:
        self.url = f"{url}/api/v1"
        self.person = person
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {person.token}"

    def call(self, method: str, path: str, expect: int, **kwargs: Any) -> Any:
        response = self.http.request(method, self.url + path, timeout=120, **kwargs)
        if response.status_code != expect:
            raise RuntimeError(f"{method} {path} answered {response.status_code}: {response.text[:800]}")
        return response.json() if response.headers.get("Content-Type", "").endswith("json") else response


@dataclass
class Signing:
    api: Api
    contract_id: int
    party_id: int
    code: str
    last: bool


def prepare(site: Site, crew: Crew, pdf: bytes, titles: list[str]) -> list[list[Signing]]:
    """Draft, parties, send and codes for each title; per contract its two signings, in order."""
    initiator = Api(site.url, crew.initiator)
    signers = [Api(site.url, person) for person in crew.signers]
    contracts = []
    for title in titles:
        created = initiator.call(
            "POST",
            "/contracts",
            201,
            data={"title": title, "routing": "parallel", "not_excluded": "true"},
            files={"file": ("supply-agreement.pdf", pdf, "application/pdf")},
        )
        contract_id = created["id"]
        parties = {}
        for signer, spot in zip(signers, FIELDS, strict=True):
            added = initiator.call(
                "POST",
                f"/contracts/{contract_id}/parties",
                201,
                json={"kind": "person", "username": signer.person.username, "fields": [spot]},
            )
            parties[signer.person.user_id] = next(
                p["id"] for p in added["parties"] if p["user_id"] == signer.person.user_id
            )
        initiator.call("POST", f"/contracts/{contract_id}/send", 200)
        signings = []
        for index, signer in enumerate(signers):
            party_id = parties[signer.person.user_id]
            signer.call("POST", f"/contracts/{contract_id}/parties/{party_id}/code", 200)
            code = site.mail.code_for(signer.person.email)
            signings.append(Signing(signer, contract_id, party_id, code, last=index == len(signers) - 1))
        contracts.append(signings)
    return contracts


def sign_all(contracts: list[list[Signing]]) -> list[tuple[float, bool]]:
    """Every signing, contract by contract; (seconds of the sign call, last signature?) each."""
    timings = []
    for signings in contracts:
        for s in signings:
            started = time.perf_counter()
            view = s.api.call(
                "POST",
                f"/contracts/{s.contract_id}/parties/{s.party_id}/sign",
                200,
                json={"code": s.code},
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            timings.append((time.perf_counter() - started, s.last))
            expected = "completed" if s.last else "signing"
            if view["state"] != expected:
                raise RuntimeError(f"contract {s.contract_id} is {view['state']} after a signature")
    return timings


def await_certificates(contracts: list[list[Signing]], timeout: float = 60) -> None:
    """Wait until every contract has its certificate of completion (made after the last answer)."""
    deadline = time.monotonic() + timeout
    for signings in contracts:
        last = signings[-1]
        while not last.api.call("GET", f"/contracts/{last.contract_id}", 200)["has_completion_certificate"]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"contract {last.contract_id} has no certificate of completion")
            time.sleep(0.01)


def on_threads(work: list[Callable[[], T]]) -> list[T]:
    """Run each callable on its own thread, all at once; their results, or the first error."""
    results: list[Any] = [None] * len(work)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = work[index]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


class LibrarySigner:
    """The library baseline (see the module doc): both signers' keys, resolved once."""

    def __init__(self, site: Site, crew: Crew) -> None:
        from appliance.db import transaction
        from appliance.signing.documents import resolve_signer
        from appliance.workflow.certificates import signing_key_label, usable_personal_certificate

        self.services = site.services
        now = self.services.clock.now()
        self.names = [person.display_name for person in crew.signers]
        with transaction(self.services.sessions) as session:
            self.signers = [
                resolve_signer(
                    session,
                    self.services.signing,
                    signing_key_label(
                        session, usable_personal_certificate(session, person.user_id, now), now, seal=False
                    ),
                )
                for person in crew.signers
            ]

    def sign_contract(self, original: bytes, number: int) -> list[float]:
        """Both signatures of one contract, as sign_party makes them; seconds of each."""
        from appliance.signing import Appearance, Placement, SignOptions
        from appliance.signing.documents import sign_stream

        current, seconds = original, []
        for index, (signer, name, spot) in enumerate(zip(self.signers, self.names, FIELDS, strict=True)):
            last = index == len(self.signers) - 1
            box = (spot["x"], spot["y"], spot["x"] + spot["width"], spot["y"] + spot["height"])
            options = SignOptions(
                appearance=Appearance(placement=Placement(page=1, box=box), signer_name=name),
                field_name=f"Party{index + 1}Field{index + 1}",
                reason=f"Signed for contract {number}: Supply agreement {number}",
                lock_document=last,
                document_timestamp=last,
                max_pages=self.services.config.uploads.max_pages,
            )
            out = io.BytesIO()
            started = time.perf_counter()
            sign_stream(self.services.signing, signer, io.BytesIO(current), out, options)
            seconds.append(time.perf_counter() - started)
            current = out.getvalue()
        return seconds


@dataclass
class Figures:
    signs: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    """Process CPU seconds: the gunicorn workers' for end to end, this process's for the library."""
    first: list[float] = field(default_factory=list)
    last: list[float] = field(default_factory=list)
    in_worker: list[float] = field(default_factory=list)
    """End to end only: each sign request's time inside its gunicorn worker (access log)."""
    certificates_after: list[float] = field(default_factory=list)
    """End to end only: per round, from the last sign answer until every certificate of completion
    of the round was made (a background thread of the worker makes it after the answer)."""

    def add(self, timings: list[tuple[float, bool]]) -> None:
        for seconds, last in timings:
            (self.last if last else self.first).append(seconds)
        self.signs += len(timings)

    @property
    def all(self) -> list[float]:
        return self.first + self.last

    @property
    def rate(self) -> float:
        return self.signs / self.wall

    @property
    def cpu_ms(self) -> float:
        return self.cpu / self.signs * 1000


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run_phase(
    site: Site, clients: int, contracts: int, pdf: bytes, original: bytes, library: LibrarySigner, tag: str
) -> tuple[Figures, Figures]:
    """`contracts` contracts spread over `clients` clients: (end to end, library) figures."""
    shares = [contracts // clients + (1 if c < contracts % clients else 0) for c in range(clients)]
    e2e, lib = Figures(), Figures()
    done = [0] * clients
    while any(d < s for d, s in zip(done, shares, strict=True)):
        batch = [min(ROUND, s - d) for d, s in zip(done, shares, strict=True)]
        titles = [
            [f"Supply agreement {tag}-{c}-{done[c] + i}" for i in range(batch[c])] for c in range(clients)
        ]
        prepared = on_threads([partial(prepare, site, site.crews[c], pdf, t) for c, t in enumerate(titles)])
        wall, cpu = time.perf_counter(), time.process_time()
        for number in range(sum(batch)):
            first, last = library.sign_contract(original, number)
            lib.add([(first, False), (last, True)])
        lib.wall += time.perf_counter() - wall
        lib.cpu += time.process_time() - cpu
        log_at = site.server_log_size()
        wall, cpu = time.perf_counter(), site.server_cpu_seconds()
        timings = on_threads([partial(sign_all, p) for p in prepared])
        signed = time.perf_counter()
        # the phase ends when the last certificate of completion is made, not at the last answer
        on_threads([partial(await_certificates, p) for p in prepared])
        e2e.certificates_after.append(time.perf_counter() - signed)
        e2e.wall += time.perf_counter() - wall
        e2e.cpu += site.server_cpu_seconds() - cpu
        for client_timings in timings:
            e2e.add(client_timings)
        e2e.in_worker += logged_sign_requests(site, log_at, sum(len(t) for t in timings))
        done = [d + b for d, b in zip(done, batch, strict=True)]
    return e2e, lib


def logged_sign_requests(site: Site, since: int, expected: int) -> list[float]:
    """The sign requests' times inside the workers; a worker logs a request after answering it."""
    deadline = time.monotonic() + 10
    while len(found := site.sign_request_seconds(since)) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    if len(found) != expected:
        raise RuntimeError(f"the access log holds {len(found)} sign requests, not {expected}")
    return found


def report_phase(clients: int, e2e: Figures, lib: Figures) -> dict[str, Any]:
    ratio = e2e.rate / lib.rate
    p95 = percentile(e2e.all, 95) * 1000
    row = {
        "clients": clients,
        "signatures": e2e.signs,
        "e2e_signatures_per_s": round(e2e.rate, 3),
        "sign_p50_ms": round(statistics.median(e2e.all) * 1000, 1),
        "sign_p95_ms": round(p95, 1),
        "first_signer_p50_ms": round(statistics.median(e2e.first) * 1000, 1),
        "last_signer_p50_ms": round(statistics.median(e2e.last) * 1000, 1),
        "in_worker_p50_ms": round(statistics.median(e2e.in_worker) * 1000, 1),
        "in_worker_p95_ms": round(percentile(e2e.in_worker, 95) * 1000, 1),
        "certificates_ready_after_last_answer_ms": round(max(e2e.certificates_after) * 1000, 1),
        "server_cpu_ms_per_signature": round(e2e.cpu_ms, 1),
        "server_cores_busy": round(e2e.cpu / e2e.wall, 2),
        "library_signatures_per_s": round(lib.rate, 3),
        "library_p50_ms": round(statistics.median(lib.all) * 1000, 1),
        "library_first_p50_ms": round(statistics.median(lib.first) * 1000, 1),
        "library_last_p50_ms": round(statistics.median(lib.last) * 1000, 1),
        "library_cpu_ms_per_signature": round(lib.cpu_ms, 1),
        "ratio_e2e_over_library": round(ratio, 3),
        "ratio_cpu_e2e_over_library": round(lib.cpu_ms / e2e.cpu_ms, 3),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    verdict_ratio = "OK" if ratio >= TARGET_RATIO else "MISSED"
    print(
        f"{clients} client(s), {e2e.signs} signatures: e2e {e2e.rate:6.2f}/s  sign p50 "
        f"{row['sign_p50_ms']:7.1f} ms  p95 {row['sign_p95_ms']:7.1f} ms  (p50 first signer "
        f"{row['first_signer_p50_ms']:.1f}, last {row['last_signer_p50_ms']:.1f})",
        flush=True,
    )
    print(
        f"    certificates of completion all made at most "
        f"{row['certificates_ready_after_last_answer_ms']:.1f} ms after a round's last answer "
        "(inside the phase's wall clock)",
        flush=True,
    )
    print(
        f"    in the worker p50 {row['in_worker_p50_ms']:.1f} ms p95 {row['in_worker_p95_ms']:.1f} ms  "
        f"server CPU {row['server_cpu_ms_per_signature']:.1f} ms/signature, "
        f"{row['server_cores_busy']:.2f} cores busy",
        flush=True,
    )
    print(
        f"    library {lib.rate:6.2f}/s  (p50 {row['library_p50_ms']:.1f} ms: first "
        f"{row['library_first_p50_ms']:.1f}, last {row['library_last_p50_ms']:.1f})  CPU "
        f"{row['library_cpu_ms_per_signature']:.1f} ms/signature",
        flush=True,
    )
    print(
        f"    ratio e2e/library {ratio:.2f} (target >= {TARGET_RATIO}) -> {verdict_ratio}; "
        f"by CPU time {row['ratio_cpu_e2e_over_library']:.2f}",
        flush=True,
    )
    if clients == max(CLIENTS):
        verdict_p95 = "OK" if p95 < TARGET_P95_MS else "MISSED"
        print(
            f"    sign p95 {p95:.1f} ms (target < {TARGET_P95_MS:g} ms at {clients} clients) -> {verdict_p95}"
        )
    print(f"    loadavg {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    return row


STAGES: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("whole sign request (Flask view)", "appliance/web/api/contracts.py", frozenset({"sign"})),
    ("bearer token check", "appliance/web/api/transport.py", frozenset({"authenticate"})),
    ("sign_party (the workflow command)", "appliance/workflow/signatures.py", frozenset({"sign_party"})),
    ("row lock and load of the contract", "appliance/workflow/access.py", frozenset({"load_visible"})),
    ("verification code check", "appliance/workflow/codes.py", frozenset({"check_code", "consume_code"})),
    ("resolve signer (chain, CRLs, TSA)", "appliance/signing/documents.py", frozenset({"resolve_signer"})),
    (
        "copy and sha256 of the stored version",
        "appliance/workflow/signatures.py",
        frozenset({"_copy_checked"}),
    ),
    (
        "validation of earlier signatures",
        "appliance/workflow/signatures.py",
        frozenset({"_check_earlier_signatures"}),
    ),
    ("PDF signing (sign_stream), all", "appliance/signing/documents.py", frozenset({"sign_stream"})),
    ("  HSM signatures (PKCS#11), all", "appliance/hsm/_pkcs11.py", frozenset({"sign"})),
    ("  timestamps (internal TSA), all", "pyhanko/sign/timestamps/api.py", frozenset({"async_timestamp"})),
    ("blob writes (fsync, rename)", "appliance/storage/fs.py", frozenset({"put"})),
    (
        "evidence and operation log records",
        "appliance/workflow/store.py",
        frozenset({"record", "record_evidence", "log_operation"}),
    ),
    ("completion (certificate, state, notices)", "appliance/workflow/completion.py", frozenset()),
    (
        "  rendering the certificate (reportlab)",
        "appliance/signing/completion.py",
        frozenset({"render_completion_certificate"}),
    ),
    ("idempotency record (remember)", "appliance/workflow/idempotency.py", frozenset({"remember"})),
    ("DB commit", "sqlalchemy/orm/session.py", frozenset({"commit"})),
    ("response view (contract_view)", "appliance/workflow/views.py", frozenset({"contract_view"})),
)
"""(line, file, functions: none for any function of the file). Inclusive times of each stage's
outermost calls, so the lines overlap: HSM and timestamps are counted inside PDF signing, which
completion also does (it signs the certificate)."""


def stage_times(root: Any) -> dict[str, float]:
    """Seconds spent in each of STAGES in a pyinstrument frame tree."""
    totals = dict.fromkeys((name for name, _path, _fns in STAGES), 0.0)

    def walk(frame: Any, inside: frozenset[str]) -> None:
        path = (frame.file_path or "").replace("\\", "/")
        entered = set()
        for name, suffix, functions in STAGES:
            matches = path.endswith(suffix) and (not functions or frame.function in functions)
            if matches and name not in inside:
                totals[name] += frame.time
                entered.add(name)
        for child in frame.children:
            walk(child, inside | entered)

    walk(root, frozenset())
    return totals


def profile_sign_calls(site: Site, pdf: bytes, contracts: int) -> dict[str, dict[str, float]]:
    """Prepare 2 x `contracts` contracts over HTTP, then sign them in this process through the
    app's test client: every other contract under pyinstrument, the rest without, so that the
    profiler's own cost shows."""
    from pyinstrument import Profiler

    from appliance.web import create_app
    from appliance.web.after_response import wait_for_work_left

    crew = site.crews[0]
    prepared = prepare(site, crew, pdf, [f"Profiled agreement {i}" for i in range(2 * contracts)])
    client = create_app(site.config, site.services).test_client()
    profilers = {last: Profiler(interval=0.001, async_mode="disabled") for last in (False, True)}
    walls: dict[tuple[bool, bool], list[float]] = {
        (last, p): [] for last in (False, True) for p in (False, True)
    }
    for index, signings in enumerate(prepared):
        profiled = index % 2 == 0
        for s in signings:
            profiler = profilers[s.last]
            started = time.perf_counter()
            if profiled:
                profiler.start()
            response = client.post(
                f"/api/v1/contracts/{s.contract_id}/parties/{s.party_id}/sign",
                json={"code": s.code},
                headers={
                    "Authorization": f"Bearer {s.api.person.token}",
                    "Idempotency-Key": uuid.uuid4().hex,
                },
            )
            if profiled:
                profiler.stop()
            walls[s.last, profiled].append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(
                    f"profiled sign answered {response.status_code}: {response.get_data(True)}"
                )
    # the test client leaves certificates of completion to this process's background thread:
    # let them finish before the site (its database and blobs) is torn down
    wait_for_work_left()
    result = {}
    for last, profiler in profilers.items():
        session = profiler.last_session
        assert session is not None
        calls = len(walls[last, True])
        result["last signer" if last else "first signer"] = {
            "in-process call, not profiled": round(statistics.mean(walls[last, False]) * 1000, 1),
            "in-process call, profiled": round(statistics.mean(walls[last, True]) * 1000, 1),
            **{
                name: round(seconds / calls * 1000, 1)
                for name, seconds in stage_times(session.root_frame()).items()
            },
        }
    return result


def report_profile(profile: dict[str, dict[str, float]], contracts: int) -> None:
    columns = list(profile)
    print(
        f"\nProfile of sign calls in this process (pyinstrument), {contracts} contracts profiled: "
        "ms per call and share of the profiled call; stages overlap (inclusive times)"
    )
    print(f"  {'stage':42} " + " ".join(f"{c:>20}" for c in columns))
    for stage in profile[columns[0]]:
        cells = []
        for column in columns:
            share = profile[column][stage] / profile[column]["in-process call, profiled"] * 100
            cells.append(f"{profile[column][stage]:10.1f} ({share:5.1f}%)")
        print(f"  {stage:42} " + " ".join(f"{c:>20}" for c in cells))


def stop_on_sigterm(_signum: int, _frame: object) -> NoReturn:
    raise SystemExit(143)  # unwinds through the finally blocks, which stop every server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contracts", type=int, default=20, help="contracts per concurrency level")
    parser.add_argument("--quick", action="store_true", help="8 contracts per concurrency level")
    parser.add_argument("--profile", action="store_true", help="profile sign calls even when targets are met")
    parser.add_argument(
        "--postgresql",
        metavar="URL",
        help="run the appliance on this PostgreSQL database (production's; in a schema of its own, "
        "dropped after) instead of SQLite, e.g. postgresql+psycopg://user:password@127.0.0.1/db",
    )
    parser.add_argument("--todo", type=int, default=1000, help="contracts in the to-do list of the page path")
    parser.add_argument("--page-samples", type=int, default=50, help="timed loads per page and API call")
    parser.add_argument("--skip-pages", action="store_true", help="only the signing rows")
    parser.add_argument("--pages-json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pages_json is not None:
        # the page path, in a process of its own (bench/_pages.py): see run_page_path
        from bench._pages import run as run_pages

        base = Path(tempfile.mkdtemp(prefix="bench-pages-"))
        try:
            args.pages_json.write_text(
                json.dumps(run_pages(base, args.postgresql, args.todo, args.page_samples))
            )
        finally:
            shutil.rmtree(base, ignore_errors=True)
        return
    contracts = 8 if args.quick else args.contracts
    if contracts < max(CLIENTS):
        parser.error(f"--contracts must be at least {max(CLIENTS)}")
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    silence_foreign_deprecations()  # as the appliance command does, before pyHanko is imported
    print(__doc__.split("\n\n", 2)[2], flush=True)
    print(
        f"loadavg at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs", flush=True
    )
    base = Path(tempfile.mkdtemp(prefix="bench-flow-"))
    try:
        started = time.perf_counter()
        with running_site(base, max(CLIENTS), args.postgresql) as site:
            print(
                f"appliance serving at {site.url} (set up in {time.perf_counter() - started:.1f} s)",
                flush=True,
            )
            try:
                results = measure(site, contracts, args.profile)
            except Exception:
                print(f"gunicorn log (last lines):\n{site.server_log_tail()}", file=sys.stderr)
                raise
        if not args.skip_pages:
            results["pages"] = run_page_path(args, base / "pages.json")
        print(json.dumps(results, indent=2, ensure_ascii=False))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run_page_path(args: argparse.Namespace, figures: Path) -> dict[str, Any]:
    """bench/_pages.py in a new process: its site has a SoftHSM2 token directory of its own, and
    the PKCS#11 module, once loaded here, keeps the token directory it was loaded with."""
    print("\nPage path (bench/_pages.py)", flush=True)
    command = [sys.executable, __file__, "--pages-json", str(figures), "--todo", str(args.todo)]
    command += ["--page-samples", str(args.page_samples)]
    if args.postgresql:
        command += ["--postgresql", args.postgresql]
    subprocess.run(command, check=True)
    return dict(json.loads(figures.read_text()))


def measure(site: Site, contracts: int, always_profile: bool) -> dict[str, Any]:
    pdf = make_pdf(DOCUMENT_BYTES)
    # warm-up, not measured: both workers' imports, PKCS#11 sessions, fonts and caches
    warm = on_threads(
        [partial(prepare, site, site.crews[c], pdf, [f"Warm-up {c}"]) for c in range(max(CLIENTS))]
    )
    on_threads([partial(sign_all, w) for w in warm])
    first = warm[0][0][0]
    initiator = Api(site.url, site.crews[0].initiator)
    original = initiator.call("GET", f"/contracts/{first.contract_id}/documents/original", 200).content
    library = LibrarySigner(site, site.crews[0])
    library.sign_contract(original, 0)
    database = "PostgreSQL" if site.database_url else "SQLite"
    print(
        f"database: {database}; document: {len(pdf)} bytes uploaded, {len(original)} bytes stored "
        "after normalisation\n",
        flush=True,
    )
    rows = []
    for clients in CLIENTS:
        e2e, lib = run_phase(site, clients, contracts, pdf, original, library, f"c{clients}")
        rows.append(report_phase(clients, e2e, lib))
    missed = (
        any(r["ratio_e2e_over_library"] < TARGET_RATIO for r in rows)
        or rows[-1]["sign_p95_ms"] >= TARGET_P95_MS
    )
    results: dict[str, Any] = {
        "database": "postgresql" if site.database_url else "sqlite",
        "document_bytes": len(original),
        "contracts_per_row": contracts,
        "targets": {
            "ratio_e2e_over_library_min": TARGET_RATIO,
            "sign_p95_ms_at_4_clients_max": TARGET_P95_MS,
        },
        "targets_met": not missed,
        "rows": rows,
    }
    if missed or always_profile:
        profile = profile_sign_calls(site, pdf, PROFILED_CONTRACTS)
        report_profile(profile, PROFILED_CONTRACTS)
        results["profile_ms_per_sign_call"] = profile
    results["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


if __name__ == "__main__":
    main()
