"""Freezing one's own account from the account page ends the session at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask

from appliance.models import User, UserSource
from appliance.web.context import current_services
from tests.web.conftest import ADMIN, ADMIN_PASSWORD, csrf_token, sign_in


def test_freeze_from_the_account_page_signs_out_and_keeps_out(admin_app: Flask) -> None:
    client = admin_app.test_client()
    sign_in(client)
    page = client.get("/account").get_data(as_text=True)
    assert page.count('id="freeze-account"') == 1
    assert page.split("<title>", 1)[1].split("</title>", 1)[0].strip().startswith("My account")
    frozen = client.post("/account/freeze", data={"csrf_token": csrf_token(client, "/account")})
    assert frozen.status_code == 303 and frozen.headers["Location"].endswith("/login")
    notice = client.get("/login").get_data(as_text=True)
    assert "Your account is frozen" in notice
    assert client.get("/account").status_code in (302, 303)  # the session is gone
    again = client.post(
        "/login", data={"username": ADMIN, "password": ADMIN_PASSWORD, "csrf_token": csrf_token(client)}
    )
    assert again.status_code != 303  # refused, with the one common message
    assert "Sign in" in again.get_data(as_text=True)


def test_freezing_needs_the_forms_token(admin_app: Flask) -> None:
    client = admin_app.test_client()
    sign_in(client)
    refused = client.post("/account/freeze", data={})
    assert refused.status_code == 403  # the CSRF check
    assert client.get("/account").status_code == 200  # still signed in: nothing was frozen


def test_the_system_admin_lifts_a_freeze_from_the_locks_page(admin_app: Flask) -> None:
    now = datetime.now(UTC)
    with admin_app.app_context(), current_services().sessions.begin() as session:
        person = User(
            username="zhao.liu",
            source=UserSource.DIRECTORY,
            display_name="赵六",
            active=True,
            created_at=now,
            updated_at=now,
            frozen_at=now - timedelta(hours=1),
        )
        session.add(person)
        session.flush()
        person_id = person.id
    client = admin_app.test_client()
    sign_in(client)
    page = client.get("/admin/sign-in-locks").get_data(as_text=True)
    frozen = page.split('id="frozen"', 1)[1].split("</table>", 1)[0]
    assert "赵六" in frozen and f'value="{person_id}"' in frozen
    lifted = client.post(
        "/admin/frozen-accounts/lift",
        data={"user_id": str(person_id), "csrf_token": csrf_token(client, "/admin/sign-in-locks")},
    )
    assert lifted.status_code == 303
    after = client.get("/admin/sign-in-locks").get_data(as_text=True)
    assert "The freeze is lifted" in after and 'id="no-frozen"' in after
    unknown = client.post(
        "/admin/frozen-accounts/lift",
        data={"user_id": str(person_id), "csrf_token": csrf_token(client, "/admin/sign-in-locks")},
    )
    assert unknown.status_code == 404
