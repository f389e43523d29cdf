"""Scale benchmark (not a test): bench/flow.py's end-to-end signing through nginx, against one
node and against two nodes on one PostgreSQL, at 1, 4 and 16 concurrent clients.

    .venv/bin/python bench/scale.py --postgresql URL [--contracts 32] [--quick]

Each topology is a site of its own (bench/_flow_setup.py, in a child process: the PKCS#11
module keeps the token directory it was first loaded with): `appliance serve` nodes
(gunicorn, 2 workers each) sharing the database (a scratch schema of URL), the blob folder and
the SoftHSM2 token, behind one nginx upstream on 127.0.0.1. For each number of clients,
`--contracts` contracts of 1 MB are spread over the clients (threads, each with its own
initiator and two signers); a round prepares them (draft, two parties, send, codes; not
timed), then every client signs its contracts, first signer then second, through nginx.

Printed per row: signatures per second (sign calls over the wall clock of the signing), the
sign call's latency p50/p95/p99 as the client sees it, the errors (any answer but 200), and
the library signer's rate measured in the same child just before (bench/flow.py's
LibrarySigner: the same signatures in-process, no HTTP, one at a time) with the ratio.
Targets: zero errors; p99 under 1 s at 16 clients; two nodes at least 0.9 x one node (no
coordination collapse when the nodes share the database and the token).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.foreign_warnings import silence_foreign_deprecations
from bench._flow_setup import running_site
from bench.flow import (
    DOCUMENT_BYTES,
    ROUND,
    Api,
    LibrarySigner,
    Signing,
    make_pdf,
    on_threads,
    percentile,
    prepare,
)

CLIENTS = (1, 4, 16)
TARGET_P99_MS = 1000.0
TARGET_TWO_NODES = 0.9


def sign_counting(contracts: list[list[Signing]]) -> list[tuple[float, bool]]:
    """Every signing of a client's contracts in order: (seconds of the sign call, answered 200?)."""
    results = []
    for signings in contracts:
        for s in signings:
            started = time.perf_counter()
            answer = s.api.http.post(
                f"{s.api.url}/contracts/{s.contract_id}/parties/{s.party_id}/sign",
                json={"code": s.code},
                headers={"Idempotency-Key": uuid.uuid4().hex},
                timeout=120,
            )
            results.append((time.perf_counter() - started, answer.status_code == 200))
    return results


def run_topology(postgresql: str, nodes: int, contracts: int) -> dict[str, Any]:
    """In the child: the site with `nodes` nodes behind nginx, and a row per number of clients."""
    base = Path(tempfile.mkdtemp(prefix=f"bench-scale-{nodes}-"))
    pdf = make_pdf(DOCUMENT_BYTES)
    try:
        with running_site(base, max(CLIENTS), postgresql, nodes=nodes, proxy=True) as site:
            warm = on_threads(
                [partial(prepare, site, crew, pdf, [f"Warm-up {n}"]) for n, crew in enumerate(site.crews)]
            )
            on_threads([partial(sign_counting, w) for w in warm])
            first = warm[0][0][0]
            original = (
                Api(site.url, site.crews[0].initiator)
                .call("GET", f"/contracts/{first.contract_id}/documents/original", 200)
                .content
            )
            library = LibrarySigner(site, site.crews[0])
            rows = [_row(site, library, original, pdf, clients, contracts) for clients in CLIENTS]
        return {"nodes": nodes, "rows": rows}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _row(
    site: Any, library: LibrarySigner, original: bytes, pdf: bytes, clients: int, contracts: int
) -> dict[str, Any]:
    started = time.perf_counter()
    for number in range(min(contracts, 8)):
        library.sign_contract(original, number)
    library_rate = 2 * min(contracts, 8) / (time.perf_counter() - started)
    shares = [contracts // clients + (1 if c < contracts % clients else 0) for c in range(clients)]
    timings: list[tuple[float, bool]] = []
    wall = 0.0
    done = [0] * clients
    while any(d < s for d, s in zip(done, shares, strict=True)):
        batch = [min(ROUND, s - d) for d, s in zip(done, shares, strict=True)]
        titles = [[f"Scale {clients}-{c}-{done[c] + i}" for i in range(batch[c])] for c in range(clients)]
        prepared = on_threads([partial(prepare, site, site.crews[c], pdf, t) for c, t in enumerate(titles)])
        begun = time.perf_counter()
        for client_timings in on_threads([partial(sign_counting, p) for p in prepared]):
            timings += client_timings
        wall += time.perf_counter() - begun
        done = [d + b for d, b in zip(done, batch, strict=True)]
    seconds = [t for t, _ in timings]
    rate = len(timings) / wall
    return {
        "clients": clients,
        "signatures": len(timings),
        "signatures_per_s": round(rate, 2),
        "p50_ms": round(percentile(seconds, 50) * 1000, 1),
        "p95_ms": round(percentile(seconds, 95) * 1000, 1),
        "p99_ms": round(percentile(seconds, 99) * 1000, 1),
        "errors": sum(1 for _, ok in timings if not ok),
        "library_signatures_per_s": round(library_rate, 2),
        "ratio_over_library": round(rate / library_rate, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--postgresql", metavar="URL", required=True, help="the database both topologies share"
    )
    parser.add_argument("--contracts", type=int, default=32, help="contracts per row (two signatures each)")
    parser.add_argument("--quick", action="store_true", help="16 contracts per row")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    contracts = 16 if args.quick else args.contracts
    silence_foreign_deprecations()
    if args.child is not None:
        args.json.write_text(json.dumps(run_topology(args.postgresql, args.child, contracts)))
        return
    print(__doc__.split("\n\n", 2)[2], flush=True)
    print(
        f"loadavg at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs\n",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as folder:
        for nodes in (1, 2):
            out = Path(folder) / f"{nodes}.json"
            command = [
                sys.executable,
                __file__,
                "--postgresql",
                args.postgresql,
                "--contracts",
                str(contracts),
            ]
            subprocess.run([*command, "--child", str(nodes), "--json", str(out)], check=True)
            results.append(json.loads(out.read_text()))
    print(
        f"{'nodes':>5} {'clients':>7} {'sig/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'errors':>6} {'library sig/s':>13} {'ratio':>6}"
    )
    for topology in results:
        for row in topology["rows"]:
            print(
                f"{topology['nodes']:>5} {row['clients']:>7} {row['signatures_per_s']:>7} {row['p50_ms']:>8} "
                f"{row['p95_ms']:>8} {row['p99_ms']:>8} {row['errors']:>6} "
                f"{row['library_signatures_per_s']:>13} {row['ratio_over_library']:>6}"
            )
    one, two = (t["rows"] for t in results)
    scaling = [round(b["signatures_per_s"] / a["signatures_per_s"], 2) for a, b in zip(one, two, strict=True)]
    errors = sum(r["errors"] for t in results for r in t["rows"])
    p99 = max(t["rows"][-1]["p99_ms"] for t in results)
    print(f"\ntwo nodes over one node, per row: {scaling} (target >= {TARGET_TWO_NODES})")
    print(
        f"errors: {errors} (target 0); p99 at {CLIENTS[-1]} clients: {p99} ms (target < {TARGET_P99_MS:.0f})"
    )
    print(
        json.dumps({"topologies": results, "two_over_one": scaling, "loadavg_end": os.getloadavg()}, indent=2)
    )


if __name__ == "__main__":
    main()
