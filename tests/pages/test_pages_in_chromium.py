"""In Debian's Chromium: the signing path (to-do, contract, sign with the e-mailed code,
download, verify the download) and starting a contract with a field placed by a click on its
page; at desktop width and on a 375 px phone, in English and Simplified Chinese. The whole
job: an initiator places two colleagues and a company seal on the pages, each signs from
their to-do list, the seal keeper applies the seal, and the initiator downloads the signed
PDF (checked by pyHanko, pdfsig and openssl, stamps where they were placed) and the
certificate of completion. A rejection and a withdrawal. No console errors, no horizontal
scrolling; screenshots of every page under test-artifacts/.

The signer's certificate is issued through the page when they have none yet (the first run in
a test process), so no pyHanko work runs in this thread while Playwright's loop is open.
"""

from __future__ import annotations

import io
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import enumerate_sig_fields

from tests.api.conftest import password_of
from tests.fixtures.browser import page_errors, screenshot
from tests.fixtures.independent import check_signed_contract
from tests.fixtures.pdfs import make_pdf
from tests.pages.conftest import PagesEnv

pytestmark = pytest.mark.e2e

WIDTHS = [({"width": 1280, "height": 900}, "desktop"), ({"width": 375, "height": 740}, "phone")]
MOBILE = {  # Chromium's mobile emulation: a 375 px touch screen, a phone's browser
    "viewport": {"width": 375, "height": 667},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 2,
    "user_agent": (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/156.0.0.0 Mobile Safari/537.36"
    ),
}
DEVICES = [*(({"viewport": viewport}, label) for viewport, label in WIDTHS), (MOBILE, "touch")]


def _press(page: Any, target: Any) -> None:
    """Tap on a touch screen, click elsewhere: `target` is a selector or a locator."""
    locator = page.locator(target) if isinstance(target, str) else target
    if page.evaluate("navigator.maxTouchPoints") > 0:
        locator.tap()
    else:
        locator.click()


def _sign_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", password_of(username))
    _press(page, "#sign-in")
    page.wait_for_url(f"{base}/account")
    page.goto(f"{base}/privacy")
    if page.locator("#accept-privacy").count():  # the first sign-in: the notice, once
        page.check("#agree")
        page.click("#accept-privacy")
        page.wait_for_url(f"{base}/account")


def _upload(page: Any, base: str, pdf: Path, title: str, shot: Callable[[], None] = lambda: None) -> None:
    """From home, New contract: the PDF and its title, up to the page where parties are added."""
    page.goto(f"{base}/")
    page.click("#new-contract")
    page.set_input_files("#file", str(pdf))
    page.fill("#title", title)
    page.check("#not_excluded")
    shot()
    page.click("#create")
    page.wait_for_selector("#party-form")


def _fits(page: Any, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width, page.url


def _shot(page: Any, name: str, width: int) -> None:
    page.wait_for_load_state("networkidle")  # the page pictures are in
    _fits(page, width)
    screenshot(page, name)


@pytest.mark.parametrize(("device", "label"), DEVICES)
def test_sign_a_contract_in_the_browser(
    pages: PagesEnv,
    live_server: Callable[[Flask], str],
    browser: Any,
    device: dict[str, Any],
    label: str,
) -> None:
    """The signing path (sign in, to-do, contract, code, sign, download) at desktop width, at
    375 px, and by touch in the mobile emulation."""
    title = f"Service agreement {secrets.token_hex(3)}"
    contract = pages.contract([("alice", 1)], title=title)
    cid, party = contract["id"], contract["parties"][0]["id"]
    base = live_server(pages.api.app)
    width = device["viewport"]["width"]
    context = browser.new_context(**device, locale="en-US", accept_downloads=True)
    page = context.new_page()
    errors = page_errors(page)
    _sign_in(page, base, "alice")

    page.goto(f"{base}/")
    assert page.locator("#todo").get_by_role("link", name=title, exact=True).is_visible()
    _shot(page, f"pages-todo-en-{label}", width)

    _press(page, page.locator("#todo").get_by_role("link", name=title, exact=True))
    page.wait_for_url(f"{base}/contracts/{cid}")
    assert page.locator("#contract-state").inner_text() == "Out for signing"
    _shot(page, f"pages-contract-en-{label}", width)

    _press(page, f"#sign-{party}")
    page.wait_for_url(f"{base}/contracts/{cid}/parties/{party}/sign")
    if page.locator("#agreement").count():
        _shot(page, f"pages-agreement-en-{label}", width)
        page.check("#agree")
        _press(page, "#accept-agreement")
        page.wait_for_selector("#send-code")
    assert page.locator("#document-sha256").inner_text() == contract["versions"][-1]["sha256"]
    _shot(page, f"pages-sign-en-{label}", width)

    _ask_for_code(page)
    # the re-send button counts down (the page's deferred script), then offers a new code
    expect(page.locator("#send-code")).to_be_disabled()
    expect(page.locator("#send-code")).to_contain_text("Send again in")
    page.fill("#code", pages.last_code("alice"))
    _shot(page, f"pages-sign-code-en-{label}", width)
    _press(page, "#sign")
    page.wait_for_url(f"{base}/contracts/{cid}")
    assert page.locator("#contract-state").inner_text() == "Completed"
    page.reload()  # the certificate of completion is made after the signer's answer
    _shot(page, f"pages-signed-en-{label}", width)

    with page.expect_download() as download:
        _press(page, "#download-current")
    data = download.value.path().read_bytes()
    assert data.startswith(b"%PDF") and data.count(b"/ByteRange") >= 1
    assert download.value.suggested_filename.endswith(".pdf")

    page.click("#nav-verify")
    page.set_input_files("#file", str(download.value.path()))
    page.click("#verify")
    page.wait_for_selector("#report")
    assert page.get_attribute("#report-heading", "data-verdict") == "valid"
    _shot(page, f"pages-verify-en-{label}", width)
    page.click("#nav-certificates")
    assert "Alice Liu" in page.inner_text("#certificates")
    _shot(page, f"pages-certificates-en-{label}", width)
    assert errors == []
    context.close()


@pytest.mark.parametrize(("viewport", "label"), WIDTHS)
def test_the_pages_in_chinese(
    pages: PagesEnv,
    live_server: Callable[[Flask], str],
    browser: Any,
    viewport: dict[str, int],
    label: str,
) -> None:
    contract = pages.contract([("alice", 1), ("dave", 2)], title="采购合同 Purchase")
    cid, party = contract["id"], contract["parties"][0]["id"]
    base = live_server(pages.api.app)
    width = viewport["width"]
    context = browser.new_context(viewport=viewport, locale="zh-CN")
    page = context.new_page()
    errors = page_errors(page)
    _sign_in(page, base, "alice")
    page.goto(f"{base}/")
    assert page.locator("#todo-heading").inner_text().startswith("等待您处理")
    _shot(page, f"pages-todo-zh-{label}", width)
    page.goto(f"{base}/contracts/{cid}")
    assert page.locator("#contract-state").inner_text() == "签署中"
    page.click(f"#sign-{party} ~ details summary")
    page.wait_for_selector(f"#reject-reason-{party}")
    _shot(page, f"pages-contract-zh-{label}", width)
    page.goto(f"{base}/contracts/{cid}/parties/{party}/sign")
    assert page.locator("#document-sha256").is_visible()
    _shot(page, f"pages-sign-zh-{label}", width)
    page.goto(f"{base}/certificates")
    _shot(page, f"pages-certificates-zh-{label}", width)
    seal_id = pages.new_seal()  # alice is Finance's org admin
    page.click("#nav-seals")
    assert page.locator("#seals-heading").inner_text() == "印章"
    _shot(page, f"pages-seals-zh-{label}", width)
    page.goto(f"{base}/admin/seals/{seal_id}")
    assert page.locator("#approvers-heading").inner_text() == "用印审批人"
    _shot(page, f"pages-seal-zh-{label}", width)
    page.goto(f"{base}/contracts/new")
    _shot(page, f"pages-new-zh-{label}", width)
    draft = pages.contract([("alice", 1)], title="草稿合同 Draft", send=False)
    page.click("#logout")
    _sign_in(page, base, "bob")
    page.goto(f"{base}/contracts/{draft['id']}/edit")
    assert page.locator("#edit-heading").inner_text().startswith("准备")
    _shot(page, f"pages-edit-zh-{label}", width)
    page.click("#save-template-heading")
    page.fill("#template-name", f"草稿模板 {label}")
    page.click("#save-as-template")
    page.wait_for_selector("#start-heading")
    assert page.locator("#start-heading").inner_text() == "用此模板发起合同"
    _shot(page, f"pages-template-zh-{label}", width)
    page.click("#nav-templates")
    assert page.locator("#templates-heading").inner_text() == "模板"
    _shot(page, f"pages-templates-zh-{label}", width)
    page.goto(f"{base}/verify")
    assert page.locator("#verify-heading").inner_text() == "验证 PDF"
    _shot(page, f"pages-verify-zh-{label}", width)
    # keyboard only: from the file field, Tab reaches the button and Enter submits (refused: no file)
    page.focus("#file")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "verify"
    page.click("#logout")
    _sign_in(page, base, "dave")  # the archive admin
    page.click("#nav-archive")
    assert page.locator("#archive-heading").inner_text() == "归档"
    _shot(page, f"pages-archive-zh-{label}", width)
    page.click("#nav-seal-usage")  # and an auditor of Finance
    assert page.locator("#seal-usage-heading").inner_text() == "用印查询"
    _shot(page, f"pages-seal-usage-zh-{label}", width)
    page.goto(f"{base}/mobile")
    assert page.locator("#mobile-heading").inner_text() == "移动端访问"
    assert page.locator("#setup-qr").is_visible()
    _shot(page, f"pages-mobile-zh-{label}", width)
    page.goto(f"{base}/me")
    assert page.locator("#my-data-heading").inner_text() == "我的数据"
    _shot(page, f"pages-my-data-zh-{label}", width)
    page.click("#cancel-account-link")
    assert page.locator("#cancel-heading").inner_text() == "注销我的账户"
    _shot(page, f"pages-cancel-zh-{label}", width)
    assert errors == []
    context.close()


@pytest.mark.parametrize(("viewport", "label"), WIDTHS)
def test_start_a_contract_in_the_browser(
    pages: PagesEnv,
    live_server: Callable[[Flask], str],
    browser: Any,
    viewport: dict[str, int],
    label: str,
    tmp_path: Path,
) -> None:
    pdf = tmp_path / "合同.pdf"
    pdf.write_bytes(make_pdf(pages=2))
    title = f"Framework agreement {secrets.token_hex(3)}"
    base = live_server(pages.api.app)
    width = viewport["width"]
    context = browser.new_context(viewport=viewport, locale="en-US")
    page = context.new_page()
    errors = page_errors(page)
    _sign_in(page, base, "bob")
    _upload(page, base, pdf, title, shot=lambda: _shot(page, f"pages-new-en-{label}", width))

    page.fill("#q", "Alice")
    page.click("#search")
    page.click("#people a[data-username=alice]")
    page.wait_for_selector("#party-form")
    assert page.input_value("#username") == "alice"
    image = page.locator("img[data-page='2']")
    image.scroll_into_view_if_needed()
    page.wait_for_load_state("networkidle")
    box = image.bounding_box()
    assert box is not None
    # a click half-way across and down page 2 puts the field's corner there
    image.click(position={"x": box["width"] / 2, "y": box["height"] / 2})
    assert page.input_value("#page") == "2"
    assert abs(float(page.input_value("#x")) - 595 / 2) < 3
    assert abs(float(page.input_value("#y")) - (842 / 2 - 60)) < 3
    assert page.locator(".marker").is_visible()
    _shot(page, f"pages-edit-en-{label}", width)
    page.click("#add")
    page.wait_for_selector("#draft-parties")
    assert "Alice Liu" in page.inner_text("#draft-parties")
    page.click("#send")
    page.wait_for_selector("#contract-state")
    assert page.locator("#contract-state").inner_text() == "Out for signing"
    assert errors == []
    context.close()


def _sign_from_the_to_do_list(
    page: Any, pages: PagesEnv, base: str, username: str, cid: int, party: int
) -> None:
    """As `username`: open the contract from the to-do list, accept the certificate agreement
    when it is offered, ask for a code, read it from the mail, sign."""
    _sign_in(page, base, username)
    page.goto(f"{base}/")
    page.click(f"#todo a[href='/contracts/{cid}/parties/{party}/sign']")
    page.wait_for_url(f"{base}/contracts/{cid}/parties/{party}/sign")
    if page.locator("#agreement").count():
        page.check("#agree")
        page.click("#accept-agreement")
        page.wait_for_selector("#send-code")
    _ask_for_code(page)
    page.fill("#code", pages.last_code(username))
    page.click("#sign")
    page.wait_for_url(f"{base}/contracts/{cid}")
    page.click("#logout")


def _ask_for_code(page: Any) -> None:
    """Press "send me a code" and wait for the page that says where it went."""
    with page.expect_response(lambda response: response.url.endswith("/code")) as answer:
        _press(page, "#send-code")
    assert answer.value.status == 303, f"{answer.value.url}: {answer.value.status}"
    page.wait_for_selector("#code-sent, .flash-error")
    refused = page.locator(".flash-error")
    assert not refused.count(), f"{page.url}: {refused.all_inner_texts()}"


def _place(page: Any, page_number: int, across: float, down: float) -> None:
    """Click page `page_number` of the preview at (`across`, `down`), fractions of its size."""
    image = page.locator(f"img[data-page='{page_number}']")
    image.scroll_into_view_if_needed()
    page.wait_for_load_state("networkidle")
    box = image.bounding_box()
    assert box is not None
    image.click(position={"x": box["width"] * across, "y": box["height"] * down})


def _stamps(pdf: bytes) -> dict[str, tuple[int, tuple[float, ...]]]:
    """Each signature field of `pdf`: (0-based page, rectangle)."""
    reader = PdfFileReader(io.BytesIO(pdf))
    kids = [ref.idnum for ref in reader.root["/Pages"]["/Kids"]]
    stamps = {}
    for name, _value, ref in enumerate_sig_fields(reader):
        widget = ref.get_object()
        stamps[name] = (kids.index(widget.raw_get("/P").idnum), tuple(float(v) for v in widget["/Rect"]))
    return stamps


def test_two_colleagues_and_a_seal_in_the_browser(
    pages: PagesEnv, live_server: Callable[[Flask], str], browser: Any, tmp_path: Path
) -> None:
    seal_id = pages.new_seal()  # alice keeps it
    pdf = tmp_path / "purchase.pdf"
    pdf.write_bytes(make_pdf(pages=2))
    title = f"Purchase agreement {secrets.token_hex(3)}"
    base = live_server(pages.api.app)
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="en-US", accept_downloads=True
    )
    page = context.new_page()
    errors = page_errors(page)

    # bob starts it: dave on page 1, alice on page 2, then the company seal on page 1
    _sign_in(page, base, "bob")
    _upload(page, base, pdf, title)
    for order, (who, page_number, across, down) in enumerate(
        [("dave", 1, 0.1, 0.7), ("alice", 2, 0.5, 0.5), ("seal", 1, 0.55, 0.8)], start=1
    ):
        if who == "seal":
            page.select_option("#kind", "seal")
            page.select_option("#seal_id", str(seal_id))
        else:
            page.fill("#q", who)
            page.click("#search")
            page.click(f"#people a[data-username={who}]")
            page.wait_for_selector("#party-form")
        page.fill("#routing_order", str(order))
        _place(page, page_number, across, down)
        page.click("#add")
        page.wait_for_selector("#draft-parties")
    page.click("#send")
    page.wait_for_selector("#contract-state")
    assert page.locator("#contract-state").inner_text() == "Out for signing"
    cid = int(page.url.rstrip("/").rsplit("/", 1)[1])
    page.click("#logout")

    contract = pages.api.client().get(f"/api/v1/contracts/{cid}", headers=pages.api.auth("bob")).get_json()
    parties = contract["parties"]
    assert [p["kind"] for p in parties] == ["person", "person", "seal"]
    for username, party in (("dave", parties[0]), ("alice", parties[1]), ("alice", parties[2])):
        _sign_from_the_to_do_list(page, pages, base, username, cid, party["id"])

    _sign_in(page, base, "bob")
    page.goto(f"{base}/contracts/{cid}")
    assert page.locator("#contract-state").inner_text() == "Completed"
    # the certificate of completion is made after the last signer's answer: it shows up shortly
    for _attempt in range(40):
        if page.locator("#download-completion").count():
            break
        page.wait_for_timeout(250)
        page.reload()
    with page.expect_download() as signed:
        page.click("#download-current")
    with page.expect_download() as completion:
        page.click("#download-completion")
    final = signed.value.path().read_bytes()
    assert completion.value.path().read_bytes().startswith(b"%PDF")
    assert errors == []
    context.close()

    # the independent checks use pyHanko's asyncio, which may not run on Playwright's thread
    failures: list[BaseException] = []

    def check() -> None:
        try:
            check_signed_contract(pages.api.services, final, 3, tmp_path)
        except BaseException as failure:
            failures.append(failure)

    checker = threading.Thread(target=check)
    checker.start()
    checker.join()
    assert not failures, failures[0]
    stamps = _stamps(final)
    for party in parties:
        for field in party["fields"]:
            where = stamps[f"Party{party['id']}Field{field['id']}"]
            x, y = field["x"], field["y"]
            assert where[0] == field["page"] - 1
            assert where[1] == pytest.approx((x, y, x + field["width"], y + field["height"]), abs=0.5)


@pytest.mark.parametrize(("viewport", "label"), WIDTHS)
def test_reject_and_withdraw_in_the_browser(
    pages: PagesEnv, live_server: Callable[[Flask], str], browser: Any, viewport: dict[str, int], label: str
) -> None:
    to_reject = pages.contract([("alice", 1)], title=f"Too expensive {secrets.token_hex(3)}")
    to_withdraw = pages.contract([("alice", 1)], title=f"Sent by mistake {secrets.token_hex(3)}")
    base = live_server(pages.api.app)
    context = browser.new_context(viewport=viewport, locale="en-US")
    page = context.new_page()
    errors = page_errors(page)

    _sign_in(page, base, "alice")
    party = to_reject["parties"][0]["id"]
    page.goto(f"{base}/contracts/{to_reject['id']}")
    page.click(f"#sign-{party} ~ details summary")
    page.fill(f"#reject-reason-{party}", "价格太高 The price is too high")
    page.click(f"#reject-{party}")
    page.wait_for_url(f"{base}/contracts/{to_reject['id']}")
    assert page.locator("#contract-state").inner_text() == "Rejected"
    assert "The price is too high" in page.inner_text("main")
    _shot(page, f"pages-rejected-en-{label}", viewport["width"])
    page.click("#logout")

    _sign_in(page, base, "bob")
    page.goto(f"{base}/contracts/{to_withdraw['id']}")
    page.click("#withdraw-reason >> xpath=ancestor::details/summary")
    page.fill("#withdraw-reason", "Sent to the wrong person")
    page.click("#withdraw")
    page.wait_for_url(f"{base}/contracts/{to_withdraw['id']}")
    assert page.locator("#contract-state").inner_text() == "Withdrawn"
    _shot(page, f"pages-withdrawn-en-{label}", viewport["width"])
    assert errors == []
    context.close()
