"""The top bar's links signed out and signed in, role names in the page's language, and the
token table's column labels for phones."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from appliance.models.enums import Role
from appliance.web.roles import ROLE_LABELS
from tests.web.conftest import create_token, sign_in

ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}


def _nav(page: str) -> str:
    match = re.search(r"<nav[^>]*>(.*?)</nav>", page, re.S)
    assert match, "the page has no <nav>"
    return match.group(1)


def test_signed_out_start_page_links_to_sign_in(client: FlaskClient) -> None:
    nav = _nav(client.get("/").get_data(as_text=True))
    assert '<a href="/login" id="nav-sign-in">Sign in</a>' in nav
    assert "/logout" not in nav and "/account" not in nav


def test_signed_out_start_page_in_chinese(client: FlaskClient) -> None:
    nav = _nav(client.get("/", headers=ZH).get_data(as_text=True))
    assert ">登录</a>" in nav


def test_signed_in_pages_link_to_the_account_and_sign_out(admin_app: Flask) -> None:
    client = admin_app.test_client()
    sign_in(client)
    for path in ("/", "/account", "/no/such/page"):
        nav = _nav(client.get(path).get_data(as_text=True))
        assert re.search(r'<a href="/account"[^>]*>root-admin</a>', nav), path
        assert 'action="/logout"' in nav and 'id="logout"' in nav, path
        assert "/login" not in nav, path
    # the sign-out button in the top bar works from the start page
    token = re.search(r'name="csrf_token" value="([^"]+)"', _nav(client.get("/").get_data(as_text=True)))
    assert token
    assert client.post("/logout", data={"csrf_token": token.group(1)}).status_code == 303
    assert 'id="nav-sign-in"' in _nav(client.get("/").get_data(as_text=True))


def test_every_role_has_a_label_translated_to_chinese(admin_app: Flask) -> None:
    assert set(ROLE_LABELS) == set(Role)
    with admin_app.test_request_context(headers=ZH):
        chinese = {role: str(label) for role, label in ROLE_LABELS.items()}
    with admin_app.test_request_context(headers={"Accept-Language": "en"}):
        english = {role: str(label) for role, label in ROLE_LABELS.items()}
    assert all(chinese[role] != english[role] for role in Role), chinese
    assert chinese[Role.SYSTEM_ADMIN] == "系统管理员"


def test_account_page_names_roles_in_the_page_language(admin_app: Flask) -> None:
    client = admin_app.test_client()
    sign_in(client)
    chinese = client.get("/account", headers=ZH).get_data(as_text=True)
    assert '<span class="role" data-role="system_admin">系统管理员</span>' in chinese
    assert ">system_admin<" not in chinese
    english = client.get("/account", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<span class="role" data-role="system_admin">System administrator</span>' in english


def test_token_table_cells_carry_their_column_labels(admin_app: Flask) -> None:
    client = admin_app.test_client()
    sign_in(client)
    create_token(client, "mobile phone")
    page = client.get("/account", headers=ZH).get_data(as_text=True)
    table = re.search(r'<table class="list stacked" id="tokens">(.*?)</table>', page, re.S)
    assert table
    headings = re.findall(r"<th>([^<]+)</th>", table.group(1))
    labels = re.findall(r'<td data-label="([^"]+)"', table.group(1))
    assert headings == ["名称", "创建时间", "到期时间", "状态"], headings
    assert labels == headings
