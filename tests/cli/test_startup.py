"""The CLI starts without the heavy stack and keeps third-party deprecations off the terminal."""

from __future__ import annotations

import subprocess
import sys
import warnings

import click
import pytest

from appliance.cli import COMMANDS, main
from appliance.foreign_warnings import silence_foreign_deprecations
from tests.cli.test_core_commands import appliance

HEAVY = ("pyhanko", "sqlalchemy", "ldap3", "flask", "alembic", "pkcs11", "pydantic")


@pytest.mark.parametrize("args", [["--help"], ["version"]])
def test_help_and_version_import_none_of_the_heavy_stack(args: list[str]) -> None:
    probe = (
        "import sys\n"
        "from appliance.cli import main\n"
        f"main({args!r}, standalone_mode=False)\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_command_table_matches_the_commands() -> None:
    context = click.Context(main)
    for name, lazy in COMMANDS.items():
        command = main.get_command(context, name)
        assert command is not None and command.name == name
        assert (command.help or "").startswith(lazy.short_help), name
    assert set(main.list_commands(context)) == {*COMMANDS, "version"}


def test_a_pyhanko_import_prints_no_deprecation_warning() -> None:
    # The command that made a fresh clone's CI red: check-config imports the signing stack.
    result = appliance("check-config", "--help")
    assert result.returncode == 0
    assert "Warning" not in result.stderr, result.stderr
    imported = subprocess.run(
        [sys.executable, "-W", "default", "-c", "import appliance.cli; import pyhanko.sign.signers.pdf_cms"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stderr == ""


def test_only_named_foreign_packages_are_silenced() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_foreign_deprecations()
        warnings.warn_explicit("old api", DeprecationWarning, "pyhanko/x.py", 1, module="pyhanko.x")
        warnings.warn_explicit("old api", DeprecationWarning, "pyhankofake.py", 1, module="pyhankofake")
        warnings.warn_explicit("ours", DeprecationWarning, "appliance/x.py", 1, module="appliance.x")
        warnings.warn_explicit("not a deprecation", UserWarning, "ldap3/x.py", 1, module="ldap3.x")
    assert [str(w.message) for w in caught] == ["old api", "ours", "not a deprecation"]
