"""Pages in both languages, the language switch, CSRF and security headers."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.conftest import csrf_token_from


def test_home_in_english_by_default(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    assert '<html lang="en">' in page
    assert "Electronic contracts, signed inside the company" in page
    assert "https://esign.test.example" in page


def test_home_in_chinese_from_accept_language(client: FlaskClient) -> None:
    page = client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}).get_data(as_text=True)
    assert '<html lang="zh-CN">' in page
    assert "电子合同，在公司内部完成签署" in page
    assert "私有云地址" in page


def test_plain_zh_accept_language_picks_simplified_chinese(client: FlaskClient) -> None:
    page = client.get("/", headers={"Accept-Language": "zh"}).get_data(as_text=True)
    assert '<html lang="zh-CN">' in page


def test_language_switch_overrides_the_browser(client: FlaskClient) -> None:
    token = csrf_token_from(client)
    response = client.post("/language", data={"locale": "zh_Hans_CN", "csrf_token": token})
    assert response.status_code == 303
    page = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "电子合同" in page


def test_form_without_csrf_token_is_rejected(client: FlaskClient) -> None:
    response = client.post("/language", data={"locale": "zh_Hans_CN"})
    assert response.status_code == 403
    assert "form has expired" in response.get_data(as_text=True)
    page = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="en">' in page  # nothing changed


def test_form_with_forged_csrf_token_is_rejected(client: FlaskClient) -> None:
    csrf_token_from(client)
    response = client.post("/language", data={"locale": "zh_Hans_CN", "csrf_token": "forged.token"})
    assert response.status_code == 403


def test_error_page_in_chinese(client: FlaskClient) -> None:
    response = client.get("/missing", headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 404
    assert "未找到" in response.get_data(as_text=True)


def test_security_headers(client: FlaskClient) -> None:
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP in this config
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_tls_config_adds_hsts_and_secure_host_cookie(write_config) -> None:  # type: ignore[no-untyped-def]
    from appliance.db import create_db_engine, migrate_database
    from appliance.web import create_app

    _, cfg = write_config(server={"tls": True})
    migrate_database(create_db_engine(cfg.database))
    response = create_app(cfg).test_client().get("/", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-appliance=") and "Secure" in cookie
