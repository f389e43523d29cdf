"""The system admin's webhook pages: register an endpoint (the secret shown once), read the
delivery log after a contract goes out, redeliver, disable; in English and Chinese."""

from __future__ import annotations

import re
import secrets

from flask.testing import FlaskClient
from sqlalchemy import select

from appliance.auth.local_admin import create_local_admin
from appliance.models import User
from appliance.notify.webhooks import deliver_due_webhooks, verify_signature
from tests.fixtures.webhooks import WebhookReceiver
from tests.pages.conftest import PagesEnv, csrf_of, post_form


def _local_admin(pages: PagesEnv, language: str = "en") -> FlaskClient:
    services = pages.api.services
    username, password = f"hooks-{secrets.token_hex(3)}", f"Break-Glass-{secrets.token_hex(6)}"
    create_local_admin(services.sessions, services.config.auth, services.clock, username, password)
    client = pages.api.client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = language
    login = client.get("/login").get_data(as_text=True)
    signed_in = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": csrf_of(login)}
    )
    assert signed_in.status_code == 303
    return client


def test_the_admin_registers_an_endpoint_and_redelivers_from_its_log(
    pages: PagesEnv, webhook_receiver: WebhookReceiver
) -> None:
    services = pages.api.services
    with services.sessions() as session:
        sales = session.scalars(select(User.organisation_id).where(User.username == "bob")).one()
    admin = _local_admin(pages)
    listing = admin.get("/admin/webhooks").get_data(as_text=True)
    assert 'id="nav-webhooks"' in listing and 'id="endpoint-form"' in listing
    shown = admin.post(
        "/admin/webhooks",
        data={
            "organisation": str(sales),
            "url": webhook_receiver.url("/pages-hook"),
            "description": "OA",
            "event": ["contract.sent", "contract.completed"],
            "csrf_token": csrf_of(listing),
        },
    )
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    page = shown.get_data(as_text=True)
    secret = re.search(r'id="webhook-secret">([^<]+)<', page).group(1)  # type: ignore[union-attr]
    endpoint_path = re.search(r'href="(/admin/webhooks/\d+)"', page).group(1)  # type: ignore[union-attr]
    assert secret not in admin.get(endpoint_path).get_data(as_text=True)  # shown once

    refused = post_form(
        admin,
        "/admin/webhooks",
        "/admin/webhooks",
        organisation=str(sales),
        url="http://192.0.2.7/",
        event="contract.sent",
    )
    assert refused.status_code == 303
    assert "not an allowed integration host" in admin.get("/admin/webhooks").get_data(as_text=True)

    pages.contract([("alice", 1)], title="Webhook page check")
    assert services.webhooks is not None
    deliver_due_webhooks(services.sessions, services.webhooks, services.clock)
    (received,) = [r for r in webhook_receiver.received if r.path == "/pages-hook"]
    assert verify_signature(secret, received.headers, received.body, services.clock.now())
    page = admin.get(endpoint_path).get_data(as_text=True)
    row = page.split("data-delivery=", 1)[1].split("</tr>", 1)[0]
    assert "contract.sent" in row and "Delivered" in row and "204" in row
    delivery = re.search(r'id="redeliver-(\d+)"', page).group(1)  # type: ignore[union-attr]
    post_form(admin, endpoint_path, f"{endpoint_path}/deliveries/{delivery}/redeliver")
    assert "goes out again" in admin.get(endpoint_path).get_data(as_text=True)
    post_form(admin, endpoint_path, f"{endpoint_path}/disable")
    assert '<dd id="endpoint-state">Disabled</dd>' in admin.get(endpoint_path).get_data(as_text=True)

    chinese = _local_admin(pages, "zh-CN").get(endpoint_path).get_data(as_text=True)
    assert "投递记录" in chinese and "已停用" in chinese
    bob = pages.browser("bob")
    assert 'id="nav-webhooks"' not in bob.get("/").get_data(as_text=True)
    assert bob.get("/admin/webhooks").status_code == 403
