"""Sign in and out in Debian's Chromium: the name shows, no console errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from tests.auth.conftest import LdapAppFactory
from tests.fixtures.browser import page_errors, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.ldap]


def test_login_see_name_logout(
    ldap_app: LdapAppFactory, live_server: Callable[[Flask], str], browser: Any
) -> None:
    env = ldap_app()
    base = live_server(env.app)
    page = browser.new_page()
    errors = page_errors(page)
    try:
        page.goto(f"{base}/login")
        page.fill("#username", "alice")
        page.fill("#password", "wrong-password")
        page.click("#sign-in")
        assert "incorrect" in page.inner_text("#login-error")
        page.fill("#username", "alice")
        page.fill("#password", "alice-Secret-1")
        page.click("#sign-in")
        page.wait_for_url(f"{base}/account")
        assert "Alice Liu" in page.inner_text("#welcome")
        page.click("#logout")
        page.wait_for_url(f"{base}/login")
        assert "signed out" in page.content()
        page.goto(f"{base}/account")
        assert page.url.startswith(f"{base}/login")
        screenshot(page, "auth-login-logout")
    finally:
        page.close()
    # the 401 of the wrong password is an expected network "error" line in Chromium's console
    assert [e for e in errors if "401" not in e] == []
