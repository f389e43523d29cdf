"""The installable web app in Chromium's mobile emulation: Chromium finds it installable, its
service worker keeps exactly the static shell (never a page, document or API answer), and
without the network the app shows the offline page."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from PIL import Image

from appliance import __version__
from appliance.web.webapp import SHELL
from tests.fixtures.browser import page_errors, screenshot
from tests.pages.conftest import PagesEnv
from tests.pages.test_pages_in_chromium import MOBILE, _sign_in

pytestmark = pytest.mark.e2e

CACHED = """async () => {
  const kept = [];
  for (const name of await caches.keys()) {
    for (const request of await (await caches.open(name)).keys()) {
      kept.push([name, new URL(request.url).pathname]);
    }
  }
  return kept;
}"""


def test_the_manifest_names_the_app_in_each_language_with_its_icons(pages: PagesEnv) -> None:
    client = pages.api.client()
    for language, name in (("en", "E-Signature Appliance"), ("zh-CN", "电子签约一体机")):
        manifest = client.get("/manifest.webmanifest", headers={"Accept-Language": language})
        assert manifest.mimetype == "application/manifest+json"
        body = manifest.get_json(force=True)
        assert (body["name"], body["start_url"], body["display"]) == (name, "/", "standalone")
    for icon in body["icons"]:
        image = Image.open(io.BytesIO(client.get(icon["src"]).data))
        assert f"{image.width}x{image.height}" == icon["sizes"]


def test_the_app_installs_and_keeps_only_its_static_shell(
    pages: PagesEnv, live_server: Callable[[Flask], str], browser: Any
) -> None:
    contract = pages.contract([("alice", 1)], title="Offline check")
    base = live_server(pages.api.app)
    context = browser.new_context(**MOBILE, locale="en-US", accept_downloads=True)
    page = context.new_page()
    errors = page_errors(page)
    _sign_in(page, base, "bob")
    page.goto(f"{base}/")
    scope = page.evaluate("navigator.serviceWorker.ready.then(r => r.scope)")
    assert scope == f"{base}/"
    cdp = context.new_cdp_session(page)
    problems = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
    # Playwright's contexts are incognito, which Chromium names and then checks all the rest
    assert [p["errorId"] for p in problems if p["errorId"] != "in-incognito"] == []

    # a page, a document and an API answer, fetched while the worker runs
    page.goto(f"{base}/contracts/{contract['id']}")
    with page.expect_download() as download:
        page.locator("#download-original").tap()
    assert download.value.path().read_bytes().startswith(b"%PDF")
    assert page.evaluate("fetch('/api/v1/openapi.json').then(r => r.status)") == 200
    kept = page.evaluate(CACHED)
    assert {name for name, _ in kept} == {f"shell-{__version__}"}
    assert sorted(path for _, path in kept) == sorted(f"/static/{name}" for name in SHELL)

    context.set_offline(True)
    page.goto(f"{base}/contracts/{contract['id']}")
    assert page.locator("#offline h1").first.inner_text() == "You are offline"
    screenshot(page, "webapp-offline-touch")
    context.set_offline(False)
    assert errors == [] or all("net::ERR_INTERNET_DISCONNECTED" in e for e in errors)
    context.close()
