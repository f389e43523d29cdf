"""The start page in Chromium: both languages, phone and desktop widths, no console errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from tests.fixtures.browser import page_errors, screenshot

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("viewport", "label"),
    [({"width": 390, "height": 844}, "phone"), ({"width": 1280, "height": 800}, "desktop")],
)
def test_start_page_and_language_switch(
    app: Flask,
    live_server: Callable[[Flask], str],
    browser,
    viewport: dict[str, int],
    label: str,  # type: ignore[no-untyped-def]
) -> None:
    base = live_server(app)
    context = browser.new_context(viewport=viewport, locale="en-US")
    page = context.new_page()
    errors = page_errors(page)
    page.goto(base + "/")
    assert page.locator("h1").inner_text() == "Electronic contracts, signed inside the company"
    assert page.get_attribute("html", "lang") == "en"
    # The page fits the screen: nothing wider than the viewport.
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    screenshot(page, f"home-en-{label}")

    page.select_option("#locale", "zh_Hans_CN")
    page.click("form.language button[type=submit]")
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "电子合同，在公司内部完成签署"
    assert page.get_attribute("html", "lang") == "zh-CN"
    screenshot(page, f"home-zh-{label}")
    assert errors == []
    context.close()


def test_chinese_browser_gets_chinese(app: Flask, live_server: Callable[[Flask], str], browser) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    errors = page_errors(page)
    page.goto(live_server(app) + "/no-such-page")
    assert page.locator("h1").inner_text() == "未找到"
    # The page itself is the 404; nothing else on it may fail.
    assert [e for e in errors if "404" not in e] == []
    assert len(errors) <= 1
    context.close()
