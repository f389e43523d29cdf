"""ansible-lint (production profile) and the playbook's syntax check pass."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.ansible.conftest import ANSIBLE_DIR, VENV_BIN, ansible_env


def test_ansible_lint_passes_with_the_production_profile(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "ansible-lint"), "--offline", "--nocolor", "--profile", "production"],
        cwd=ANSIBLE_DIR,
        env=ansible_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in result.stderr + result.stdout


def test_playbook_syntax_check_passes(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "--syntax-check",
            "-i",
            "inventories/example/hosts.yml",
            "site.yml",
        ],
        cwd=ANSIBLE_DIR,
        env=ansible_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_role_documents_and_types_its_variables() -> None:
    import yaml

    for role in sorted((ANSIBLE_DIR / "roles").iterdir()):
        defaults = yaml.safe_load((role / "defaults/main.yml").read_text()) or {}
        specs = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]["main"][
            "options"
        ]
        assert set(defaults) <= set(specs), (
            f"{role.name}: defaults not in argument_specs: {set(defaults) - set(specs)}"
        )
        assert all(
            name.startswith(role.name.rstrip("_") + "_") or name.startswith("appliance_") for name in specs
        )
        assert all(spec.get("description") and spec.get("type") for spec in specs.values()), role.name
        platforms = yaml.safe_load((role / "meta/main.yml").read_text())["galaxy_info"]["platforms"]
        assert platforms, role.name
