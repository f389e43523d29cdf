"""The operation log page and its CSV export, as the local system administrator sees them;
at 375 px in Debian's Chromium too."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from appliance.audit import AuditRecord, append_event
from appliance.web.context import current_services
from tests.fixtures.browser import page_errors, screenshot
from tests.web.conftest import ADMIN, ADMIN_PASSWORD, sign_in

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _add_events(app: Flask, count: int, **fields: Any) -> None:
    with app.app_context():
        services = current_services()
        with services.sessions.begin() as session:
            for i in range(count):
                append_event(
                    session,
                    AuditRecord(
                        action=fields.get("action", f"test.event{i}"),
                        occurred_at=fields.get("occurred_at", T0 + timedelta(minutes=i)),
                        actor_name=fields.get("actor_name", "张伟"),
                        client_address="10.1.2.3",
                        details=fields.get("details", {"n": i}),
                    ),
                )


def test_the_log_pages_newest_first_and_filters(admin_app: Flask) -> None:
    _add_events(admin_app, 60)
    _add_events(admin_app, 1, action="auth.lock_lifted", actor_name="Li Si", details={"who": "bob"})
    client = admin_app.test_client()
    sign_in(client)

    first = client.get("/audit/log")
    assert first.status_code == 200
    text = first.get_data(as_text=True)
    assert text.index("auth.login") < text.index("test.event59") < text.index("test.event20")
    assert "test.event11<" not in text  # 50 a page: the oldest are on the next one
    older_link = re.search(r'<a href="([^"]+)" id="log-older"', text)
    assert older_link is not None
    older = client.get(html.unescape(older_link.group(1)))
    assert "test.event0<" in older.get_data(as_text=True)

    by_action = client.get("/audit/log?action=auth.lock").get_data(as_text=True)
    assert "auth.lock_lifted" in by_action and "test.event" not in by_action
    by_actor = client.get("/audit/log?actor=li+s").get_data(as_text=True)
    assert "auth.lock_lifted" in by_actor and "test.event" not in by_actor
    by_day = client.get("/audit/log?since=2026-12-01&until=2026-12-01&action=test.").get_data(as_text=True)
    assert "test.event59" in by_day
    bad = client.get("/audit/log?contract=zero")
    assert bad.status_code == 200 and 'role="alert"' in bad.get_data(as_text=True)


def test_the_csv_export_is_in_chain_order_safe_for_spreadsheets_and_logged(admin_app: Flask) -> None:
    _add_events(admin_app, 3)
    _add_events(admin_app, 1, action="test.formula", actor_name='=HYPERLINK("http://x")')
    client = admin_app.test_client()
    sign_in(client)
    response = client.get("/audit/log.csv?action=test.")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    body = response.get_data()
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][:4] == ["seq", "occurred_at", "action", "actor"]
    assert [r[2] for r in rows[1:]] == ["test.event0", "test.event1", "test.event2", "test.formula"]
    assert [int(r[0]) for r in rows[1:]] == sorted(int(r[0]) for r in rows[1:])
    assert rows[-1][3] == '\'=HYPERLINK("http://x")'  # not a formula in a spreadsheet
    assert rows[1][3] == "张伟"
    logged = client.get("/audit/log?action=oplog.exported").get_data(as_text=True)
    assert "oplog.exported" in logged and "test." in logged  # the filter used is in its details


def test_the_log_needs_a_sign_in(admin_app: Flask) -> None:
    for path in ("/audit/log", "/audit/log.csv"):
        response = admin_app.test_client().get(path)
        assert response.status_code in (302, 303) and "/login" in response.headers["Location"]


@pytest.mark.e2e
def test_the_log_fits_a_phone(admin_app: Flask, live_server: Callable[[Flask], str], browser: Any) -> None:
    _add_events(admin_app, 5, details={"note": "a rather long value " * 8})
    base = live_server(admin_app)
    page = browser.new_page(
        viewport={"width": 375, "height": 740},
        locale="zh-CN",
        extra_http_headers={"Accept-Language": "zh-CN"},
    )
    errors = page_errors(page)
    try:
        page.goto(f"{base}/login")
        page.fill("#username", ADMIN)
        page.fill("#password", ADMIN_PASSWORD)
        page.click("#sign-in")
        page.wait_for_url(f"{base}/account")
        page.click("#nav-log")
        page.wait_for_selector("#log")
        assert page.inner_text("h1") == "操作日志"
        sideways = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        assert page.evaluate(sideways) <= 0
        screenshot(page, "web-operation-log-phone")
    finally:
        page.close()
    assert errors == []


PERSONAL = {"phone": "13812341234", "email": "zhang.wei@corp.example", "id_number": "110101199003071234"}


def test_the_log_shows_auditors_no_unmasked_contact_data_or_id_numbers(admin_app: Flask) -> None:
    _add_events(admin_app, 1, action="auth.login_failed", details={"username": PERSONAL["email"], **PERSONAL})
    client = admin_app.test_client()
    sign_in(client)
    page = client.get("/audit/log?action=auth.login_failed").get_data(as_text=True)
    exported = client.get("/audit/log.csv?action=auth.login_failed").get_data(as_text=True)
    for shown in (html.unescape(page), exported):
        assert "138****1234" in shown and "z***@corp.example" in shown and "110***********1234" in shown
        for raw in PERSONAL.values():
            assert raw not in shown
