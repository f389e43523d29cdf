"""The privacy notice: accepted once per major version, by people, not by the appliance's own accounts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from appliance.errors import Conflict, InvalidInput
from appliance.models import AuditEvent, User, UserSource
from appliance.workflow import privacy_notice
from appliance.workflow.privacy_notice import accept_privacy_notice, needs_acceptance
from tests.workflow.conftest import CLIENT


def test_accepted_once_per_major_version(workflow_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    env = workflow_factory()
    alice = env.people["alice"]
    assert needs_acceptance(env.ctx, alice.user_id)
    shown = privacy_notice.privacy_notice("zh_Hans_CN")
    assert "隐私政策" in shown.text and shown.locale == "zh_Hans_CN"
    with pytest.raises(InvalidInput):
        accept_privacy_notice(env.ctx, alice, CLIENT, shown.version, "0" * 64, shown.locale)
    accept_privacy_notice(env.ctx, alice, CLIENT, shown.version, shown.sha256, shown.locale)
    assert not needs_acceptance(env.ctx, alice.user_id)
    with pytest.raises(Conflict):
        accept_privacy_notice(env.ctx, alice, CLIENT, shown.version, shown.sha256, shown.locale)
    with env.services.sessions() as session:
        logged = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "privacy.notice_accepted")
        ).one()
    assert logged.actor_user_id == alice.user_id and '"locale":"zh_Hans_CN"' in logged.details

    monkeypatch.setattr(privacy_notice, "NOTICE_VERSION", "1.1")  # a wording fix: not asked again
    assert not needs_acceptance(env.ctx, alice.user_id)
    monkeypatch.setattr(privacy_notice, "NOTICE_VERSION", "2.0")  # a new major version: asked again
    assert needs_acceptance(env.ctx, alice.user_id)


def test_the_local_administrator_is_not_asked(workflow_factory) -> None:
    env = workflow_factory()
    now = datetime.now(UTC)
    with env.services.sessions.begin() as session:
        admin = User(
            username="admin",
            source=UserSource.LOCAL,
            display_name="Admin",
            active=True,
            created_at=now,
            updated_at=now,
        )
        session.add(admin)
        session.flush()
        admin_id = admin.id
    assert not needs_acceptance(env.ctx, admin_id)
