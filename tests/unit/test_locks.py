"""pyproject.toml and the locks under requirements/ agree (refresh them with installer/lock)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SELF = canonicalize_name(PROJECT["project"]["name"])
# Debian 12's python3 and the CI's: the locks must cover both.
TARGETS = [{"python_version": "3.11", "python_full_version": v} for v in ("3.11.2", "3.11.7")]


# "    # via flask" or, one per line, "    #   esign-appliance (pyproject.toml)"
VIA = re.compile(r"^\s+#\s+(?:via\s+)?(\S[^(]*?)\s*(?:\(.*\))?$")


@dataclass
class Pin:
    version: str
    marker: str
    hashes: int = 0
    via: set[str] = field(default_factory=set)


def read_lock(name: str) -> dict[str, list[Pin]]:
    pins: dict[str, list[Pin]] = {}
    current: Pin | None = None
    for line in (REPO / "requirements" / name).read_text().splitlines():
        head = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$", line)
        if head:
            current = Pin(head.group(2), head.group(3) or "")
            pins.setdefault(canonicalize_name(head.group(1)), []).append(current)
        elif current and "--hash=sha256:" in line:
            current.hashes += 1
        elif current and (via := VIA.match(line)) and via.group(1) != "via":
            current.via.add(canonicalize_name(via.group(1)))
    return pins


def applies(marker: str, environment: dict[str, str]) -> bool:
    parsed = Requirement(f"x; {marker}").marker
    return parsed is None or parsed.evaluate(environment)


def requirements(specs: list[str]) -> list[Requirement]:
    return [r for r in map(Requirement, specs) if canonicalize_name(r.name) != SELF]


def extra(name: str) -> list[str]:
    return list(PROJECT["project"]["optional-dependencies"][name])


LOCKS = {
    "runtime.lock": PROJECT["project"]["dependencies"],
    "dev.lock": PROJECT["project"]["dependencies"] + extra("test") + extra("dev"),
    "build.lock": PROJECT["build-system"]["requires"],
    "controller.lock": [r for r in extra("dev") if r.startswith("ansible-core")],
}


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_requirement_is_pinned_with_hashes_inside_its_range(lock: str) -> None:
    pins = read_lock(lock)
    assert pins, f"requirements/{lock} is empty"
    for requirement in requirements(LOCKS[lock]):
        candidates = pins.get(canonicalize_name(requirement.name))
        assert candidates, f"{requirement.name} is not in requirements/{lock}: run installer/lock"
        for pin in candidates:
            assert requirement.specifier.contains(pin.version, prereleases=True), (
                f"requirements/{lock} pins {requirement.name}=={pin.version} "
                f"outside {requirement.specifier}: run installer/lock"
            )
    for name, candidates in pins.items():
        for pin in candidates:
            assert pin.hashes > 0, f"{name} in requirements/{lock} has no hash"


@pytest.mark.parametrize("lock", ["runtime.lock", "dev.lock"])
def test_the_lock_holds_no_direct_dependency_that_pyproject_dropped(lock: str) -> None:
    wanted = {canonicalize_name(r.name) for r in requirements(LOCKS[lock])}
    direct = {name for name, pins in read_lock(lock).items() if any(SELF in pin.via for pin in pins)}
    assert direct == wanted, f"requirements/{lock} is stale: run installer/lock"


def test_a_package_has_the_same_version_in_every_lock() -> None:
    seen: dict[tuple[str, str], str] = {}
    for lock in LOCKS:
        for name, candidates in read_lock(lock).items():
            for pin in candidates:
                first = seen.setdefault((name, pin.marker), pin.version)
                assert first == pin.version, f"{name} differs between the locks: run installer/lock"


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t["python_full_version"])
def test_each_lock_gives_one_version_per_package_on_the_supported_pythons(target: dict[str, str]) -> None:
    for lock in LOCKS:
        for name, candidates in read_lock(lock).items():
            chosen = [p for p in candidates if not p.marker or applies(p.marker, target)]
            assert len(chosen) <= 1, f"{name} has {len(chosen)} pins in requirements/{lock}"
