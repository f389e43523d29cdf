"""At 375 px (a phone) in Debian's Chromium: the top bar's links fit, the token table keeps
its column labels, and nothing scrolls sideways."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from tests.fixtures.browser import page_errors, screenshot
from tests.web.conftest import ADMIN, ADMIN_PASSWORD

pytestmark = pytest.mark.e2e

PHONE = {"width": 375, "height": 740}

# each cell's label as the phone shows it (the ::before box), and whether it is on screen
CELL_LABELS = """() => [...document.querySelectorAll('#tokens tbody tr')].map(row =>
  [...row.querySelectorAll('td[data-label]')].map(cell => {
    const before = getComputedStyle(cell, '::before');
    const box = cell.getBoundingClientRect();
    return {
      label: cell.dataset.label,
      shown: before.content,
      visible: before.display !== 'none' && before.visibility !== 'hidden' && box.width > 0,
      inside: box.left >= 0 && box.right <= window.innerWidth,
    };
  }))"""
SIDEWAYS = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def _assert_fits(page: Any, selector: str) -> None:
    box = page.locator(selector).bounding_box()
    assert box is not None and page.locator(selector).is_visible(), selector
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (selector, box)


def test_token_table_keeps_its_labels_on_a_phone(
    admin_app: Flask, live_server: Callable[[Flask], str], browser: Any
) -> None:
    base = live_server(admin_app)
    page = browser.new_page(viewport=PHONE, locale="zh-CN", extra_http_headers={"Accept-Language": "zh-CN"})
    errors = page_errors(page)
    try:
        page.goto(f"{base}/")
        _assert_fits(page, "#nav-sign-in")
        page.click("#nav-sign-in")
        page.fill("#username", ADMIN)
        page.fill("#password", ADMIN_PASSWORD)
        page.click("#sign-in")
        page.wait_for_url(f"{base}/account")
        for name in ("手机", "a token with a rather long name for a narrow screen"):
            page.fill("#name", name)
            page.fill("#token-password", ADMIN_PASSWORD)
            page.click("#create-token")
            page.wait_for_selector("#new-token")
            page.goto(f"{base}/account")

        # the heading row is only for screen readers here
        heading = page.locator("#tokens thead").bounding_box()
        assert heading is not None and heading["height"] <= 1
        rows = page.evaluate(CELL_LABELS)
        assert len(rows) == 2
        for cells in rows:
            assert [c["label"] for c in cells] == ["名称", "创建时间", "到期时间", "状态"]
            for cell in cells:
                assert cell["shown"] == f'"{cell["label"]}"', cell
                assert cell["visible"] and cell["inside"], cell
        assert page.evaluate(SIDEWAYS) <= 0
        _assert_fits(page, "#nav-account")
        _assert_fits(page, "#logout")
        assert "系统管理员" in page.inner_text(".facts")
        screenshot(page, "web-account-phone")

        page.goto(f"{base}/")
        assert page.evaluate(SIDEWAYS) <= 0
        _assert_fits(page, "#nav-account")
        page.click("#logout")
        page.wait_for_url(f"{base}/login")
        _assert_fits(page, "#nav-sign-in")
    finally:
        page.close()
    assert errors == []
