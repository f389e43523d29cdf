"""Who may read and export the operation log: auditors and system administrators, nobody else."""

from __future__ import annotations

import pytest

from appliance.audit.browse import LogFilter
from appliance.errors import Forbidden
from appliance.models import Role
from appliance.workflow.oplog import browse_log, export_log
from tests.workflow.conftest import CLIENT


def test_only_auditors_and_system_admins_read_the_log(workflow_factory) -> None:
    env = workflow_factory()
    env.start([("alice", 1)])  # some contract events in the log
    auditor = env.add_person("audrey", "Audrey", Role.AUDITOR)
    admin = env.add_person("root", "Sys Admin", Role.SYSTEM_ADMIN)
    everyone_else = [env.people[name] for name in ("initiator", "alice", "bob", "keeper")]
    for person in everyone_else:
        with pytest.raises(Forbidden, match="auditors and system administrators"):
            browse_log(env.ctx, person, LogFilter(), before=None, limit=10)
        with pytest.raises(Forbidden):
            export_log(env.ctx, person, CLIENT, LogFilter())
    for reader in (auditor, admin):
        page = browse_log(env.ctx, reader, LogFilter(action="contract."), before=None, limit=100)
        assert page.entries and all(e.action.startswith("contract.") for e in page.entries)
    exported = list(export_log(env.ctx, auditor, CLIENT, LogFilter(action="contract.")))
    assert [e.seq for e in exported] == sorted(e.seq for e in page.entries)
    newest = browse_log(env.ctx, admin, LogFilter(), before=None, limit=1).entries[0]
    assert newest.action == "oplog.exported" and newest.actor_name == "audrey"
    assert '"action":"contract."' in newest.details
