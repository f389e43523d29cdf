"""Wheels for the Ansible real-run test, which builds the offline bundle without the network.

installer/run-tests downloads every file of the runtime, build and controller locks for
Debian's python3 into a folder (APPLIANCE_TEST_WHEELHOUSE), checked against the locks'
hashes; installer/build-bundle then takes them from there with `--no-index`, exactly as
an admin builds a bundle from a local mirror. The appliance's own wheel is built here
from a copy of the repository (`pip wheel --no-deps`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import require_backend

REPO = Path(__file__).resolve().parents[2]


def locked_wheelhouse() -> Path:
    """The folder of locked wheels installer/run-tests prepared (fails when it is missing)."""
    folder = Path(os.environ.get("APPLIANCE_TEST_WHEELHOUSE", "/nonexistent"))
    require_backend(
        "locked wheelhouse",
        (folder / "SHA256SUMS").is_file(),
        "APPLIANCE_TEST_WHEELHOUSE is not prepared: run the suite with installer/run-tests",
    )
    return folder


def copy_source(target: Path, version: str | None = None) -> Path:
    """A copy of the package source (so builds never write into the shared work tree),
    optionally with another version number, as an upgrade would bring."""
    for name in ("pyproject.toml", "README.md"):
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target / name)
    shutil.copytree(
        REPO / "appliance", target / "appliance", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    if version is not None:
        init = target / "appliance" / "__init__.py"
        init.write_text(re.sub(r'__version__ = "[^"]+"', f'__version__ = "{version}"', init.read_text()))
    return target


def build_appliance_wheel(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(target),
            str(source),
        ],
        check=True,
        cwd=source,
    )
