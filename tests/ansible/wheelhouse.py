"""An offline wheelhouse for the Ansible real-run test, built without the network.

The appliance's own wheel is built from the repository (`pip wheel --no-deps`). Its
dependencies are re-packed as wheels from the distributions already installed in the
test virtualenv (each dist-info's RECORD lists its files), so the role's
`pip install --no-index --find-links` exercises the same path as the offline bundle
while the test needs nothing beyond what installer/run-tests installed.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]


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


def build_wheelhouse(target: Path, source: Path, python: str = "/usr/bin/python3") -> Path:
    """Wheels for esign-appliance (built from `source`) and its run-time dependencies."""
    target.mkdir(parents=True, exist_ok=True)
    build_appliance_wheel(source, target)
    wheel = next(target.glob("esign_appliance-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        meta_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        meta_text = archive.read(meta_name).decode()
    requires = [
        line.split(":", 1)[1].strip() for line in meta_text.splitlines() if line.startswith("Requires-Dist:")
    ]
    add_requirements(target, requires, python)
    return target


def add_requirements(target: Path, requires: list[str], python: str = "/usr/bin/python3") -> Path:
    """Re-packed wheels for `requires` and everything they depend on (for `python`'s markers),
    e.g. ansible-core and `wheel` for installer/build-bundle --no-index."""
    target.mkdir(parents=True, exist_ok=True)
    for dist in _dependency_closure(requires, python):
        _repack(dist, target)
    return target


_MARKER_ENV_SCRIPT = """
import json, os, platform, sys
info = sys.implementation.version
version = f"{info.major}.{info.minor}.{info.micro}"
print(json.dumps({
    "implementation_name": sys.implementation.name,
    "implementation_version": version,
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}))
"""


def target_marker_environment(python: str) -> dict[str, str]:
    """Environment markers of the Python the role installs with (Debian's, not this venv's)."""
    out = subprocess.run([python, "-c", _MARKER_ENV_SCRIPT], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


def _dependency_closure(requires: list[str], python: str) -> list[metadata.Distribution]:
    seen: dict[str, metadata.Distribution] = {}
    pending: list[tuple[str, frozenset[str]]] = []
    done: set[tuple[str, frozenset[str]]] = set()
    environment = target_marker_environment(python)

    def add(lines: list[str], extras: frozenset[str]) -> None:
        for line in lines:
            req = Requirement(line)
            if req.marker is not None and not any(
                req.marker.evaluate({**environment, "extra": extra}) for extra in (extras or {""})
            ):
                continue
            pending.append((req.name, frozenset(req.extras)))

    add(requires, frozenset())
    while pending:
        name, extras = pending.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError as exc:
            raise RuntimeError(
                f"{name} is a dependency for {python} but not installed in the test venv, so it cannot "
                "be re-packed: add it to the `test` extra in pyproject.toml and run installer/run-tests"
            ) from exc
        key = canonicalize_name(dist.metadata["Name"])
        if (key, extras) in done:
            continue
        done.add((key, extras))
        seen[key] = dist
        add(list(dist.requires or []), extras)
    return list(seen.values())


def _repack(dist: metadata.Distribution, target: Path) -> None:
    files = dist.files or []
    dist_info = next(str(f).split("/")[0] for f in files if str(f).endswith(".dist-info/METADATA"))
    wheel_meta = (Path(str(dist.locate_file(dist_info))) / "WHEEL").read_text()
    tags = [line.split(":", 1)[1].strip() for line in wheel_meta.splitlines() if line.startswith("Tag:")]
    pythons, abis, platforms = (sorted({t.split("-")[i] for t in tags}) for i in range(3))
    name = re.sub(r"[^\w\d.]+", "_", dist.metadata["Name"])
    filename = f"{name}-{dist.version}-{'.'.join(pythons)}-{'.'.join(abis)}-{'.'.join(platforms)}.whl"
    if (target / filename).exists():
        return
    record_name = f"{dist_info}/RECORD"
    rows: list[tuple[str, str, str]] = []
    with zipfile.ZipFile(target / filename, "w", zipfile.ZIP_DEFLATED) as wheel:
        for entry in files:
            path = str(entry)
            # Console scripts are regenerated from entry_points.txt at install time; pip
            # writes INSTALLER/REQUESTED/direct_url.json itself.
            if path.startswith("..") or "__pycache__" in path or path == record_name:
                continue
            if path.startswith(dist_info + "/") and path.split("/")[-1] in (
                "INSTALLER",
                "REQUESTED",
                "direct_url.json",
            ):
                continue
            data = Path(str(dist.locate_file(entry))).read_bytes()
            wheel.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rows.append((path, f"sha256={digest}", str(len(data))))
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([*rows, (record_name, "", "")])
        wheel.writestr(record_name, out.getvalue())
