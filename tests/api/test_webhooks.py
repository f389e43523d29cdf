"""The webhooks API for system admins: register (the secret once), the delivery log after a
contract goes out, redeliver, disable; nobody else reaches it."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from appliance.auth.local_admin import create_local_admin
from appliance.models import User
from appliance.notify.webhooks import deliver_due_webhooks, verify_signature
from tests.api.conftest import ApiEnv, assert_problem
from tests.fixtures.webhooks import WebhookReceiver


def _admin_token(api_env: ApiEnv) -> dict[str, str]:
    services = api_env.services
    username, password = f"hooks-admin-{secrets.token_hex(3)}", f"Break-Glass-{secrets.token_hex(6)}"
    create_local_admin(services.sessions, services.config.auth, services.clock, username, password)
    answer = api_env.client().post(
        "/api/v1/auth/tokens", json={"username": username, "password": password, "name": "ERP set-up"}
    )
    assert answer.status_code == 201, answer.get_data(as_text=True)
    return {"Authorization": f"Bearer {answer.get_json()['token']}"}


def test_a_system_admin_registers_an_endpoint_and_reads_its_delivery_log(
    api_env: ApiEnv, webhook_receiver: WebhookReceiver
) -> None:
    client, admin, bob = api_env.client(), _admin_token(api_env), api_env.auth("bob")
    with api_env.services.sessions() as session:
        organisation = session.scalars(select(User.organisation_id).where(User.username == "bob")).one()
    body = {"organisation_id": organisation, "url": webhook_receiver.url(), "event_types": ["contract.sent"]}
    assert_problem(client.post("/api/v1/webhooks", json=body, headers=bob), 403)
    assert_problem(
        client.post("/api/v1/webhooks", json={**body, "url": "http://192.0.2.1/"}, headers=admin), 400
    )
    assert client.post(
        "/api/v1/webhooks", json={**body, "event_types": ["contract.lost"]}, headers=admin
    ).status_code in (
        400,
        422,
    )
    created = client.post("/api/v1/webhooks", json={**body, "description": "ERP"}, headers=admin)
    assert created.status_code == 201, created.get_data(as_text=True)
    endpoint = created.get_json()
    secret, path = endpoint.pop("secret"), f"/api/v1/webhooks/{endpoint['id']}"
    assert client.get(path, headers=admin).get_json() == endpoint  # the secret is not shown again
    assert any(
        e["id"] == endpoint["id"] for e in client.get("/api/v1/webhooks", headers=admin).get_json()["items"]
    )
    assert_problem(client.get(path, headers=bob), 403)

    contract = api_env.create_contract("bob").get_json()
    party = {
        "kind": "person",
        "username": "alice",
        "fields": [{"page": 1, "x": 72, "y": 72, "width": 180, "height": 60}],
    }
    assert (
        client.post(f"/api/v1/contracts/{contract['id']}/parties", json=party, headers=bob).status_code == 201
    )
    assert client.post(f"/api/v1/contracts/{contract['id']}/send", headers=bob).status_code == 200
    assert api_env.services.webhooks is not None
    deliver_due_webhooks(api_env.services.sessions, api_env.services.webhooks, api_env.services.clock)
    (received,) = webhook_receiver.received
    assert verify_signature(secret, received.headers, received.body, api_env.services.clock.now())

    (delivery,) = client.get(f"{path}/deliveries", headers=admin).get_json()["items"]
    assert (delivery["event_type"], delivery["status"], delivery["last_status_code"]) == (
        "contract.sent",
        "delivered",
        204,
    )
    again = client.post(f"{path}/deliveries/{delivery['id']}/redeliver", headers=admin)
    assert (again.status_code, again.get_json()["status"]) == (200, "pending")
    assert_problem(client.post(f"{path}/deliveries/{delivery['id']}/redeliver", headers=admin), 409)
    deliver_due_webhooks(api_env.services.sessions, api_env.services.webhooks, api_env.services.clock)
    assert len(webhook_receiver.received) == 2
    assert webhook_receiver.received[1].headers["Esign-Webhook-Id"] == received.headers["Esign-Webhook-Id"]

    disabled = client.post(f"{path}/disable", headers=admin)
    assert disabled.status_code == 200 and disabled.get_json()["disabled_at"] is not None
    assert_problem(client.get("/api/v1/webhooks/999999", headers=admin), 404)
