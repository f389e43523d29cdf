"""Sign one party per process, so that tests/workflow/test_crash.py can SIGKILL the signer at
any moment of the signing.

    python -m tests.workflow._sign_once CONFIG

reads jobs from stdin, one a line: `CONTRACT_ID PARTY_ID USER_ID CODE`. For each it forks a
child that builds the services from CONFIG, opens the HSM and calls `sign_party` once, then
leaves with os._exit. The next line says what to do with the child: `kill` (SIGKILL, at
once; the end of stdin does the same) or `wait`; either way the parent then reaps it. Only
the parent kills, and only a child it has not reaped yet, so the pid cannot belong to
another process by then.

Forking from a parent that imported everything once spares each signing the interpreter
start and the imports (seconds), which would otherwise bound how many kills a test can
afford; the child opens its database connections and its PKCS#11 session itself after the
fork, as a gunicorn worker does. Lines on stdout:

    ready                 the parent has imported everything and waits for jobs
    started PID           the child PID is about to call sign_party (time the kill from here)
    done PID              sign_party returned: its transaction committed
    exit PID STATUS       the child ended: 0, 1 (a traceback on stderr) or minus the signal
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path

from appliance.foreign_warnings import silence_foreign_deprecations

# before the imports below, as at every entry point of the appliance
silence_foreign_deprecations()

from appliance.auth.access import principal_of  # noqa: E402
from appliance.auth.records import ClientInfo  # noqa: E402
from appliance.config import AppConfig, load_config  # noqa: E402
from appliance.hsm import check_hsm  # noqa: E402
from appliance.models import User  # noqa: E402
from appliance.services import build_services  # noqa: E402
from appliance.workflow.signatures import sign_party  # noqa: E402

CLIENT = ClientInfo(address="10.1.2.3", user_agent="crash test signer")


def say(line: str) -> None:
    # one write per line: the parent and its children share the pipe
    os.write(1, f"{line}\n".encode())


def sign_in_child(config: AppConfig, contract_id: int, party_id: int, user_id: int, code: str) -> None:
    services = build_services(config)
    with services.sessions() as session:
        user = session.get(User, user_id)
        assert user is not None, f"no user {user_id}"
        principal = principal_of(user)
    assert services.custody is not None, "the config has no hsm section"
    check_hsm(services.custody)  # opens the module and logs in: not part of the signing
    say(f"started {os.getpid()}")
    sign_party(services.workflow, principal, CLIENT, contract_id, party_id, code)
    say(f"done {os.getpid()}")


def main(config_path: str) -> None:
    config = load_config(Path(config_path), environ={})
    say("ready")
    while line := sys.stdin.readline():
        contract_id, party_id, user_id, code = line.split()
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                sign_in_child(config, int(contract_id), int(party_id), int(user_id), code)
            except BaseException:
                traceback.print_exc()
                sys.stderr.flush()
                status = 1
            os._exit(status)  # never back into the parent's loop
        # a child that ended already is a zombie until reaped; a test that gave up (stdin
        # closed) leaves no signer behind
        if sys.stdin.readline().strip() != "wait":
            os.kill(pid, signal.SIGKILL)
        _, wait_status = os.waitpid(pid, 0)
        say(f"exit {pid} {os.waitstatus_to_exitcode(wait_status)}")


if __name__ == "__main__":
    main(sys.argv[1])
