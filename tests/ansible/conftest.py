"""Running the playbook and single roles against this machine (`-c local`).

Everything the roles write goes under a throwaway root in /var/tmp (traversable by the
service user, unlike pytest's 0700 tmp folders); servers listen on free loopback ports.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_backend

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
VENV_BIN = Path(sys.executable).parent
ROLE_PLAYBOOK = Path(__file__).parent / "playbooks" / "role.yml"
_RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@dataclass(frozen=True)
class PlayResult:
    returncode: int
    output: str

    @property
    def changed(self) -> int:
        return sum(int(m.group(3)) for m in _RECAP.finditer(self.output))

    @property
    def failed(self) -> int:
        return sum(int(m.group(5)) for m in _RECAP.finditer(self.output))

    def report(self) -> str:
        """The failing tasks' messages (pip's long output cut) and the recap."""
        lines = self.output.splitlines()
        keep = [
            line[:3000]
            for i, line in enumerate(lines)
            if line.startswith(("fatal:", "failed:", "TASK ["))
            and (
                not line.startswith("TASK [")
                or (i + 1 < len(lines) and lines[i + 1].startswith(("fatal:", "failed:")))
            )
        ]
        return "\n".join(keep) + "\n" + self.output[-800:]

    def changed_tasks(self) -> list[str]:
        """Names of tasks that reported a change (from the default callback's output)."""
        tasks: list[str] = []
        current = ""
        for line in self.output.splitlines():
            if line.startswith(("TASK [", "RUNNING HANDLER [")):
                current = line
            elif line.startswith("changed:"):
                tasks.append(current)
        return tasks


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ansible_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
        ANSIBLE_HOME=str(home),
        ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
        ANSIBLE_REMOTE_TEMP=str(home / "remote-tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
    )
    return env


def run_playbook(
    playbook: Path, inventory: Path, extra_vars: Path, home: Path, *args: str, timeout: int = 600
) -> PlayResult:
    result = subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            "-e",
            f"@{extra_vars}",
            *args,
            str(playbook),
        ],
        cwd=ANSIBLE_DIR,
        env=ansible_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return PlayResult(result.returncode, result.stdout + result.stderr)


def write_local_inventory(path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        "appliance": {
                            "hosts": {
                                "localhost": {
                                    "ansible_connection": "local",
                                    "ansible_python_interpreter": "/usr/bin/python3",
                                    # Root already; this machine has no sudo.
                                    "ansible_become": False,
                                }
                            }
                        }
                    }
                }
            }
        )
    )
    return path


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None and not (VENV_BIN / t).exists()]
    require_backend("Ansible test tools", not missing, f"missing: {', '.join(missing)}")
    if os.geteuid() != 0:
        pytest.skip("the Ansible real run needs root (it creates a user and starts servers)")


def role_run(role: str, variables: dict[str, Any], workdir: Path, *args: str) -> PlayResult:
    """Apply one role to localhost with the given variables."""
    inventory = write_local_inventory(workdir / "inventory.yml")
    extra = workdir / "vars.yml"
    extra.write_text(yaml.safe_dump({"role_under_test": role, **variables}))
    return run_playbook(ROLE_PLAYBOOK, inventory, extra, workdir / "ansible-home", *args)
