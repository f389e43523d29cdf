"""Mobile access in the workflow: the setup everyone sees, and each person's WireGuard
configuration handed out once per content (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from appliance.audit.browse import LogFilter
from appliance.errors import Conflict, Forbidden, NotFound
from appliance.models import Role, VpnHandout
from appliance.workflow.mobile import collect_vpn_config, mobile_setup, my_vpn_config, vpn_handouts
from appliance.workflow.oplog import browse_log
from tests.workflow.conftest import CLIENT, WorkflowEnv

KEY = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="


def client_config(key: str = KEY) -> str:
    return (
        "[Interface]\n"
        f"PrivateKey = {key}\n"
        "Address = 10.99.0.10/32\n\n"
        "[Peer]\n"
        "PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n"
        "Endpoint = vpn.corp.example:51820\n"
        "AllowedIPs = 10.99.0.1/32\n"
    )


@pytest.fixture
def vpn_env(workflow_factory, any_db_url, tmp_path: Path) -> tuple[WorkflowEnv, Path]:
    folder = tmp_path / "wireguard-clients"
    folder.mkdir()
    env = workflow_factory(any_db_url, mobile={"wireguard_clients_dir": str(folder)})
    env.add_person("sysadmin", "Sys Admin", Role.SYSTEM_ADMIN)
    return env, folder


def test_everyone_sees_the_address_and_the_root_fingerprint_the_app_checks(workflow_factory) -> None:
    env = workflow_factory()
    setup = mobile_setup(env.ctx, env.people["bob"])
    assert setup.address == "https://esign.corp.example"
    assert setup.discovery_url == "https://esign.corp.example/.well-known/esign-configuration"
    assert setup.link == f"{setup.discovery_url}#ca-sha256={setup.root_ca_sha256}"
    assert len(setup.root_ca_sha256) == 64 and setup.tls_sha256 is None
    assert my_vpn_config(env.ctx, env.people["bob"]) is None  # this site hands out none
    with pytest.raises(NotFound):
        collect_vpn_config(env.ctx, env.people["bob"], CLIENT)


def test_a_configuration_is_collected_once_until_it_changes(vpn_env) -> None:
    env, folder = vpn_env
    bob = env.people["bob"]
    state = my_vpn_config(env.ctx, bob)
    assert state is not None and (state.available, state.collected_at) == (False, None)
    with pytest.raises(NotFound, match="no VPN configuration for you"):
        collect_vpn_config(env.ctx, bob, CLIENT)

    (folder / "bob.conf").write_text(client_config())
    collected = collect_vpn_config(env.ctx, bob, CLIENT)
    assert (collected.filename, collected.text) == ("bob.conf", client_config())
    state = my_vpn_config(env.ctx, bob)
    assert state is not None and state.collected_at is not None
    with pytest.raises(Conflict, match="collected your VPN configuration already"):
        collect_vpn_config(env.ctx, bob, CLIENT)

    # IT issued a new key: the new file is collected once more
    (folder / "bob.conf").write_text(client_config("8N3W" + KEY[4:]))
    assert "8N3W" in collect_vpn_config(env.ctx, bob, CLIENT).text

    log = browse_log(env.ctx, env.people["sysadmin"], LogFilter(action="mobile."), before=None, limit=10)
    assert [e.action for e in log.entries] == ["mobile.vpn_config_collected"] * 2
    assert KEY not in repr(log) and "8N3W" not in repr(log)  # the private keys are never logged
    digest = hashlib.sha256(client_config().encode()).hexdigest()
    assert digest in repr(log)


def test_only_a_plain_file_named_after_the_login_is_handed_out(vpn_env) -> None:
    env, folder = vpn_env
    (folder / "alice.conf").mkdir()  # not a file
    (folder / "bob.conf").write_text("x" * 9000)  # larger than any client configuration
    for who in ("alice", "bob"):
        with pytest.raises(NotFound):
            collect_vpn_config(env.ctx, env.people[who], CLIENT)
    weird = env.add_person("../keeper", "Dots")
    (folder.parent / "keeper.conf").write_text(client_config())
    with pytest.raises(NotFound):
        collect_vpn_config(env.ctx, weird, CLIENT)


def test_the_system_admin_sees_who_collected_and_nobody_else_does(vpn_env) -> None:
    env, folder = vpn_env
    for name in ("bob", "keeper", "newcomer"):  # newcomer has never signed in here
        (folder / f"{name}.conf").write_text(client_config())
    (folder / "notes.txt").write_text("not a client")
    collect_vpn_config(env.ctx, env.people["bob"], CLIENT)
    rows = vpn_handouts(env.ctx, env.people["sysadmin"])
    assert [(r.username, r.collected_at is not None) for r in rows] == [
        ("bob", True),
        ("keeper", False),
        ("newcomer", False),
    ]
    for who in ("bob", "orgadmin"):
        with pytest.raises(Forbidden):
            vpn_handouts(env.ctx, env.people[who])


def test_two_racing_collections_hand_the_configuration_out_once(vpn_env) -> None:
    env, folder = vpn_env
    (folder / "bob.conf").write_text(client_config())
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def collect() -> None:
        start.wait()
        try:
            collect_vpn_config(env.ctx, env.people["bob"], CLIENT)
            outcomes.append("collected")
        except Conflict:
            outcomes.append("refused")

    threads = [threading.Thread(target=collect) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["collected", "refused"]
    with env.services.sessions() as session:
        assert session.scalar(select(func.count()).select_from(VpnHandout)) == 1
