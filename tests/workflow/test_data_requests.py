"""Requests about personal data: filed by the person, queued with a deadline, answered by a
system administrator, the person told; the log records that, not what was asked."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from appliance.errors import Conflict, Forbidden, InvalidInput
from appliance.models import AuditEvent, DataRequestKind, DataRequestStatus, Notification, Role
from appliance.notify.messages import render_message
from appliance.workflow import data_requests
from appliance.workflow.data_requests import add_working_days
from tests.fakes.clock import FakeClock
from tests.workflow.conftest import CLIENT

FRIDAY = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)


def test_the_deadline_counts_working_days() -> None:
    assert add_working_days(FRIDAY, 1) == datetime(2026, 12, 7, 16, 0, tzinfo=UTC)  # Monday
    assert add_working_days(FRIDAY, 15) == datetime(2026, 12, 25, 16, 0, tzinfo=UTC)


def test_filed_queued_answered_and_told(workflow_factory) -> None:
    env = workflow_factory()
    ctx = dataclasses.replace(env.ctx, clock=FakeClock(FRIDAY))
    alice = env.people["alice"]
    admin = env.add_person("sysadmin", "System Admin", Role.SYSTEM_ADMIN)
    filed = data_requests.file_request(
        ctx, alice, CLIENT, DataRequestKind.CORRECTION, "My phone is 13812341234, not the old one."
    )
    assert filed.status is DataRequestStatus.OPEN and filed.due_at == add_working_days(FRIDAY, 15)
    assert filed.from_directory
    with pytest.raises(InvalidInput):
        data_requests.file_request(ctx, alice, CLIENT, DataRequestKind.DELETION, "   ")

    with pytest.raises(Forbidden):
        data_requests.open_requests(ctx, env.people["orgadmin"])
    queue = data_requests.open_requests(ctx, admin)
    assert [(r.id, r.requester_name) for r in queue] == [(filed.id, "张伟")]

    with pytest.raises(Forbidden):
        data_requests.answer_request(ctx, alice, CLIENT, filed.id, DataRequestStatus.DONE, "done")
    answered = data_requests.answer_request(
        ctx, admin, CLIENT, filed.id, DataRequestStatus.DONE, "Asked IT to correct it in the directory."
    )
    assert answered.status is DataRequestStatus.DONE and answered.answered_at == FRIDAY
    with pytest.raises(Conflict):
        data_requests.answer_request(ctx, admin, CLIENT, filed.id, DataRequestStatus.REFUSED, "again")
    assert data_requests.open_requests(ctx, admin) == ()
    assert data_requests.my_requests(ctx, alice)[0].answer == "Asked IT to correct it in the directory."

    with env.services.sessions() as session:
        notice = session.scalars(
            select(Notification).where(
                Notification.user_id == alice.user_id, Notification.kind == "data_request_answered"
            )
        ).one()
        logged = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action.like("personal_data.request_%"))
            .order_by(AuditEvent.seq)
        ).all()
    message = render_message("data_request_answered", json.loads(notice.params), "zh_Hans_CN")
    assert "已办理" in message.body and "公司目录" in message.body
    assert [e.action for e in logged] == ["personal_data.request_filed", "personal_data.request_answered"]
    assert all("13812341234" not in e.details and "directory" not in e.details for e in logged)
