"""My certificates, the Verify page and the inbox's notices marked read when opened."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import secrets

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from sqlalchemy import delete, select

from appliance.db import transaction
from appliance.models import PrivacyAcceptance, User
from tests.api.conftest import password_of
from tests.fixtures.pdfs import make_pdf
from tests.pages.conftest import PagesEnv, csrf_of, post_form


def test_my_certificates_list_and_download(pages: PagesEnv) -> None:
    pages.ensure_certificate("alice")
    alice = pages.browser("alice")
    page = alice.get("/certificates").get_data(as_text=True)
    table = page.split('id="certificates"', 1)[1].split("</table>", 1)[0]
    assert "Alice Liu" in table and ">active<" in table
    assert 'id="agreement"' not in page  # she has a usable one
    link = re.search(r'href="(/certificates/(\d+)\.pem)"', table)
    assert link
    download = alice.get(link.group(1))
    assert download.status_code == 200 and download.headers["Cache-Control"] == "no-store"
    assert download.headers["Content-Disposition"].startswith("attachment; filename=")
    certificate = x509.load_pem_x509_certificate(download.data)
    assert certificate.fingerprint(hashes.SHA256()).hex() in table
    assert format(certificate.serial_number, "x") in table.lower() or str(certificate.serial_number) in table
    # someone else's certificate answers like one that does not exist
    assert pages.browser("dave").get(link.group(1)).status_code == 404
    assert alice.get("/certificates/999999.pem").status_code == 404


def test_a_person_without_a_certificate_gets_one_from_the_agreement(pages: PagesEnv) -> None:
    # bob starts contracts in these tests and never signs one: he has no certificate
    bob = pages.browser("bob")
    page = bob.get("/certificates").get_data(as_text=True)
    assert 'id="no-certificates"' in page and 'id="agreement"' in page
    fields = dict(re.findall(r'name="(agreement_version|agreement_sha256|locale)" value="([^"]+)"', page))
    unticked = bob.post("/certificates", data={**fields, "csrf_token": csrf_of(page)})
    assert unticked.status_code == 303
    assert "Tick the box" in bob.get("/certificates").get_data(as_text=True)
    accepted = bob.post("/certificates", data={**fields, "agree": "y", "csrf_token": csrf_of(page)})
    assert accepted.status_code == 303
    after = bob.get("/certificates").get_data(as_text=True)
    assert "Your signing certificate is issued" in after and ">active<" in after
    assert 'id="agreement"' not in after


def _verify(client, data: bytes, name: str = "upload.pdf"):  # type: ignore[no-untyped-def]
    token = csrf_of(client.get("/verify").get_data(as_text=True))
    return client.post(
        "/verify",
        data={"file": (io.BytesIO(data), name, "application/pdf"), "csrf_token": token},
        content_type="multipart/form-data",
    )


def test_verify_a_signed_a_tampered_an_unsigned_and_a_non_pdf(pages: PagesEnv) -> None:
    pages.ensure_certificate("alice")
    contract = pages.contract([("alice", 1)], title=f"To verify {secrets.token_hex(3)}")
    cid, party = contract["id"], contract["parties"][0]["id"]
    requested = pages.api.client().post(
        f"/api/v1/contracts/{cid}/parties/{party}/code", headers=pages.api.auth("alice")
    )
    assert requested.status_code == 200
    signed = pages.api.client().post(
        f"/api/v1/contracts/{cid}/parties/{party}/sign",
        json={"code": pages.last_code("alice")},
        headers=pages.api.auth("alice"),
    )
    assert signed.status_code == 200, signed.get_data(as_text=True)
    pdf = (
        pages.api.client()
        .get(f"/api/v1/contracts/{cid}/documents/current", headers=pages.api.auth("bob"))
        .data
    )
    dave = pages.browser("dave")  # anyone signed in may verify any PDF

    page = _verify(dave, pdf).get_data(as_text=True)
    assert 'data-verdict="valid"' in page and "Alice Liu" in page
    assert 'data-valid="no"' not in page
    report = re.search(r'href="data:application/json;base64,([^"]+)" download="validation-report.json"', page)
    assert report
    assert json.loads(base64.b64decode(report.group(1)))["verdict"] == "valid"

    # same length, so every offset still holds: only the signed bytes differ
    tampered = pdf.replace(b"/Type /Catalog >>", b"/Type  /Catalog>>", 1)
    assert tampered != pdf
    bad = _verify(dave, tampered).get_data(as_text=True)
    assert 'data-verdict="invalid"' in bad and 'data-problem="digest_mismatch"' in bad
    assert "The signed bytes were changed after signing." in bad

    assert "This document has no signatures." in _verify(dave, make_pdf()).get_data(as_text=True)
    refused = _verify(dave, b"hello, not a PDF", "notes.pdf")
    assert refused.status_code == 422 and "This file cannot be checked" in refused.get_data(as_text=True)
    chinese = pages.browser("dave", language="zh-CN")
    assert "有效" in _verify(chinese, pdf).get_data(as_text=True)
    no_token = dave.post(
        "/verify", data={"file": (io.BytesIO(pdf), "a.pdf")}, content_type="multipart/form-data"
    )
    assert no_token.status_code == 403


def test_notices_are_marked_read_when_the_inbox_is_opened(pages: PagesEnv) -> None:
    contract = pages.contract([("alice", 1)], title=f"Noticed {secrets.token_hex(3)}")
    cid, party = contract["id"], contract["parties"][0]["id"]
    alice = pages.browser("alice")
    post_form(alice, f"/contracts/{cid}", f"/contracts/{cid}/parties/{party}/reject", reason="No")
    bob = pages.browser("bob")
    first = bob.get("/inbox").get_data(as_text=True)
    notice = first.split(contract["title"], 1)[0].rsplit("<li", 1)[1]
    assert "unread" in notice
    second = bob.get("/inbox").get_data(as_text=True)
    assert "unread" not in second.split(contract["title"], 1)[0].rsplit("<li", 1)[1]


def test_revoke_my_certificate_with_a_reason_then_apply_again(pages: PagesEnv) -> None:
    pages.ensure_certificate("dave")
    dave = pages.browser("dave")
    page = dave.get("/certificates").get_data(as_text=True)
    assert 'id="renewal"' not in page  # a fresh certificate is years from its renewal window
    revoke = re.search(r'action="(/certificates/(\d+)/revoke)"', page)
    assert revoke, "an active certificate offers Revoke"
    # someone else cannot revoke it: it answers like a certificate that does not exist
    alice = pages.browser("alice")
    alice_page = alice.get("/certificates").get_data(as_text=True)
    refused = alice.post(
        revoke.group(1), data={"reason": "key_compromise", "csrf_token": csrf_of(alice_page)}
    )
    assert refused.status_code == 404
    done = dave.post(revoke.group(1), data={"reason": "key_compromise", "csrf_token": csrf_of(page)})
    assert done.status_code == 303
    after = dave.get("/certificates").get_data(as_text=True)
    assert "The certificate is revoked" in after and ">revoked<" in after
    assert 'id="agreement"' in after and f'action="{revoke.group(1)}"' not in after
    mine = pages.api.client().get("/api/v1/certificates/mine", headers=pages.api.auth("dave")).get_json()
    assert mine["certificate"] is None and mine["outdated"] is False
    pages.ensure_certificate("dave")  # what later tests expect of dave


def test_renewal_is_refused_before_its_window_on_the_page_and_the_api(pages: PagesEnv) -> None:
    pages.ensure_certificate("alice")
    mine = pages.api.client().get("/api/v1/certificates/mine", headers=pages.api.auth("alice")).get_json()
    opens = mine["renewable_from"][:10]
    early = pages.api.client().post(
        "/api/v1/certificates/mine/renew", json=pages.consent("alice"), headers=pages.api.auth("alice")
    )
    assert early.status_code == 409 and early.mimetype == "application/problem+json"
    assert f"renewed from {opens}" in early.get_json()["detail"]
    alice = pages.browser("alice")
    page = alice.get("/certificates").get_data(as_text=True)
    fields = pages.consent("alice")
    posted = alice.post("/certificates/renew", data={**fields, "agree": "y", "csrf_token": csrf_of(page)})
    assert posted.status_code == 303
    assert f"renewed from {opens}" in alice.get("/certificates").get_data(as_text=True)
    gone = pages.api.client().post(
        "/api/v1/certificates/mine/999999/revoke",
        json={"reason": "no_longer_needed"},
        headers=pages.api.auth("alice"),
    )
    assert gone.status_code == 404


def test_my_data_page_and_its_export_show_what_is_held_about_me(pages: PagesEnv) -> None:
    contract = pages.contract([("alice", 1)], title=f"Data test {secrets.token_hex(3)}")
    alice = pages.browser("alice")
    account = alice.get("/account").get_data(as_text=True)
    assert 'href="/me"' in account
    page = alice.get("/me").get_data(as_text=True)
    profile = page.split('id="profile"', 1)[1].split("</dl>", 1)[0]
    assert "alice@example.org" in profile and "Finance" in profile
    assert contract["title"] in page.split('id="my-contracts"', 1)[1]
    assert "Signed in" in page.split('id="my-sign-ins"', 1)[1]  # this very sign-in
    assert "bob@example.org" not in page

    export = alice.get("/me/export.json")
    assert export.status_code == 200 and export.mimetype == "application/json"
    assert "attachment" in export.headers["Content-Disposition"]
    data = export.get_json()
    assert data["profile"]["username"] == "alice" and contract["id"] in {c["id"] for c in data["contracts"]}

    api = pages.api.client().get("/api/v1/me/personal-data", headers=pages.api.auth("dave"))
    assert api.status_code == 200, api.get_data(as_text=True)
    assert api.get_json()["profile"]["username"] == "dave"
    assert "alice@example.org" not in api.get_data(as_text=True)
    in_chinese = pages.browser("alice", language="zh-CN").get("/me").get_data(as_text=True)
    assert "我的数据" in in_chinese


def test_a_request_about_my_data_is_filed_from_the_my_data_page(pages: PagesEnv) -> None:
    alice = pages.browser("alice")
    text = f"Please correct my department {secrets.token_hex(3)}"
    filed = post_form(alice, "/me", "/me/requests", kind="correction", text=text)
    assert filed.status_code == 303 and filed.headers["Location"].endswith("/me#my-requests")
    page = alice.get("/me").get_data(as_text=True)
    assert "Your request was filed. It is answered by" in page
    listed = page.split('id="my-request-list"', 1)[1].split("</ul>", 1)[0]
    assert "Correct my data: open" in listed
    refused = post_form(alice, "/me", "/me/requests", kind="correction", text="")
    assert refused.status_code == 303
    assert "Choose what you ask for and describe it." in alice.get("/me").get_data(as_text=True)
    assert pages.browser("alice").get("/admin/data-requests").status_code == 403


def test_the_privacy_notice_comes_before_any_page_until_accepted(pages: PagesEnv) -> None:
    with transaction(pages.api.services.sessions) as session:
        dave = session.scalars(select(User.id).where(User.username == "dave")).one()
        session.execute(delete(PrivacyAcceptance).where(PrivacyAcceptance.user_id == dave))
    client = pages.api.client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    signed_in = client.post(
        "/login",
        data={
            "username": "dave",
            "password": password_of("dave"),
            "csrf_token": csrf_of(client.get("/login").get_data(as_text=True)),
        },
    )
    assert signed_in.status_code == 303
    assert client.get("/account").status_code == 200  # signing out and freezing never wait for it
    gated = client.get("/certificates")
    assert gated.status_code == 303 and gated.headers["Location"].startswith("/privacy?next=/certificates")
    notice = client.get(gated.headers["Location"]).get_data(as_text=True)
    assert "隐私政策" in notice and 'id="privacy-form"' in notice
    form = notice.split('id="privacy-form"', 1)[1].split("</form>", 1)[0]
    found = re.search(r'<form[^>]*action="([^"]+)"[^>]*id="privacy-form"', notice)
    assert found
    action = html.unescape(found.group(1))
    fields = dict(re.findall(r'name="(version|sha256|locale)"[^>]*value="([^"]+)"', form))
    unticked = client.post(action, data={**fields, "csrf_token": csrf_of(notice)})
    assert unticked.status_code == 303 and client.get("/certificates").status_code == 303
    accepted = client.post(action, data={**fields, "agree": "y", "csrf_token": csrf_of(notice)})
    assert accepted.status_code == 303 and accepted.headers["Location"] == "/certificates"
    assert client.get("/certificates").status_code == 200
    assert 'id="privacy-form"' not in client.get("/privacy").get_data(as_text=True)
