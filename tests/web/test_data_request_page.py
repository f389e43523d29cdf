"""The system administrator's queue of requests about personal data, and answering one."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask

from appliance.auth.records import ClientInfo, Principal
from appliance.models import DataRequestKind, Notification, Role, User, UserSource
from appliance.web.context import current_services
from appliance.workflow.data_requests import file_request
from tests.web.conftest import csrf_token, sign_in


def test_the_admin_sees_the_open_request_with_its_deadline_and_answers_it(admin_app: Flask) -> None:
    now = datetime.now(UTC)
    with admin_app.app_context():
        services = current_services()
        with services.sessions.begin() as session:
            person = User(
                username="zhao.liu",
                source=UserSource.DIRECTORY,
                display_name="赵六",
                active=True,
                created_at=now,
                updated_at=now,
            )
            session.add(person)
            session.flush()
            person_id = person.id
        principal = Principal(person_id, "zhao.liu", "赵六", frozenset({Role.EMPLOYEE}), False)
        filed = file_request(
            services.workflow,
            principal,
            ClientInfo("10.1.2.3", "pytest"),
            DataRequestKind.DELETION,
            "删除我的手机号",
        )
    client = admin_app.test_client()
    sign_in(client)
    assert 'id="nav-data-requests"' in client.get("/account").get_data(as_text=True)
    page = client.get("/admin/data-requests").get_data(as_text=True)
    item = page.split(f'id="data-request-{filed.id}"', 1)[1].split("</li>", 1)[0]
    assert "赵六" in item and "删除我的手机号" in item and f"due {filed.due_at:%Y-%m-%d}" in item
    assert "profile from the company directory" in item
    answered = client.post(
        f"/admin/data-requests/{filed.id}/answer",
        data={
            "outcome": "refused",
            "answer": "Signed contracts keep it for five years.",
            "csrf_token": csrf_token(client, "/admin/data-requests"),
        },
    )
    assert answered.status_code == 303
    after = client.get("/admin/data-requests").get_data(as_text=True)
    assert "The answer was recorded and the person told." in after and 'id="no-data-requests"' in after
    with admin_app.app_context(), current_services().sessions() as session:
        assert (
            session.query(Notification).filter_by(user_id=person_id, kind="data_request_answered").count()
            == 1
        )
