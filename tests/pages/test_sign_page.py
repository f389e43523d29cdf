"""The sign page: the document's sha256 and the viewer's fields, a code by e-mail, clear words
for refused codes, the certificate agreement for a signer without a certificate, and a
whole contract signed and sealed through the pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from appliance.db import transaction
from appliance.models import VerificationCode
from appliance.web.after_response import wait_for_work_left
from tests.fixtures.independent import check_signed_contract
from tests.pages.conftest import PagesEnv, csrf_of


def _attempt(page: str) -> str:
    match = re.search(r'name="attempt"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="attempt"', page
    )
    assert match, "the sign page has no attempt id"
    return match.group(1)


def _send_code(client, path: str):  # type: ignore[no-untyped-def]
    page = client.get(path).get_data(as_text=True)
    response = client.post(path.replace("/sign", "/code"), data={"csrf_token": csrf_of(page)})
    assert response.status_code == 303, response.get_data(as_text=True)
    return client.get(path)


def _submit(client, path: str, code: str, attempt: str | None = None):  # type: ignore[no-untyped-def]
    page = client.get(path).get_data(as_text=True)
    return client.post(
        path, data={"code": code, "attempt": attempt or _attempt(page), "csrf_token": csrf_of(page)}
    )


def test_the_sign_page_shows_the_hash_the_fields_and_sends_a_code(pages: PagesEnv) -> None:
    pages.ensure_certificate("alice")
    contract = pages.contract([("alice", 1)])
    cid, party = contract["id"], contract["parties"][0]["id"]
    path = f"/contracts/{cid}/parties/{party}/sign"
    alice = pages.browser("alice")
    first = alice.get(path)
    page = first.get_data(as_text=True)
    assert first.headers["Cache-Control"] == "no-store"
    assert contract["versions"][-1]["sha256"] in page
    assert f"/contracts/{cid}/pages/1.png?party={party}" in page and "Page 1" in page
    assert 'id="send-code"' in page and 'id="code-sent"' not in page
    after = _send_code(alice, path).get_data(as_text=True)
    assert "A code was sent to a" in after and 'data-wait="' in after
    assert re.search(r"^\s+[0-9]{6,8}\s*$", pages.api.smtp.received[-1].get_body().get_content(), re.M)


def test_wrong_superseded_and_expired_codes_are_said_in_words(pages: PagesEnv) -> None:
    pages.ensure_certificate("alice")
    contract = pages.contract([("alice", 1)])
    cid, party = contract["id"], contract["parties"][0]["id"]
    path = f"/contracts/{cid}/parties/{party}/sign"
    alice = pages.browser("alice")
    _send_code(alice, path)
    old = pages.last_code("alice")
    wrong = _submit(alice, path, "000000" if old != "000000" else "111111")
    assert wrong.status_code == 400
    assert "The verification code is not correct" in wrong.get_data(as_text=True)
    assert "Attempts left: 4." in wrong.get_data(as_text=True)

    _send_code(alice, path)
    superseded = _submit(alice, path, old)
    assert superseded.status_code == 400 and "A newer verification code was sent" in superseded.get_data(
        as_text=True
    )

    with transaction(pages.api.services.sessions) as session:
        session.execute(
            update(VerificationCode)
            .where(VerificationCode.party_id == party)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    expired = _submit(alice, path, pages.last_code("alice"))
    assert expired.status_code == 400 and "has expired" in expired.get_data(as_text=True)

    chinese = pages.browser("alice", language="zh-CN")
    in_chinese = _submit(chinese, path, "000000" if pages.last_code("alice") != "000000" else "111111")
    assert "验证码" in in_chinese.get_data(as_text=True)


def test_a_signer_without_a_certificate_accepts_the_agreement_then_signs_and_seals_complete_it(
    pages: PagesEnv, tmp_path: Path
) -> None:
    seal_id = pages.new_seal()
    pages.without_certificate("dave")  # another test may have given him one
    contract = pages.contract([("dave", 1), (f"seal:{seal_id}", 2)])
    cid = contract["id"]
    dave_party, seal_party = (p["id"] for p in contract["parties"])
    dave = pages.browser("dave")
    path = f"/contracts/{cid}/parties/{dave_party}/sign"

    page = dave.get(path).get_data(as_text=True)
    # dave has no usable certificate until he accepts the agreement here
    assert 'id="agreement"' in page and "Digital certificate agreement" in page and 'id="sign"' not in page
    refused = dave.post(path.replace("/sign", "/certificate"), data={"csrf_token": csrf_of(page)})
    assert refused.status_code == 303
    assert "Tick the box" in dave.get(path).get_data(as_text=True)
    fields = dict(re.findall(r'name="(agreement_version|agreement_sha256|locale)" value="([^"]+)"', page))
    accepted = dave.post(
        path.replace("/sign", "/certificate"), data={**fields, "agree": "y", "csrf_token": csrf_of(page)}
    )
    assert accepted.status_code == 303 and accepted.headers["Location"].endswith(path)
    back = dave.get(path).get_data(as_text=True)
    assert "Your signing certificate is issued" in back and 'id="sign"' in back

    _send_code(dave, path)
    code = pages.last_code("dave")
    attempt = _attempt(dave.get(path).get_data(as_text=True))
    signed = _submit(dave, path, code, attempt)
    assert signed.status_code == 303 and signed.headers["Location"].endswith(f"/contracts/{cid}")
    assert "You signed the contract" in dave.get(f"/contracts/{cid}").get_data(as_text=True)
    # the same form sent twice (a double click, a retry) gets the first answer and signs once
    again = _submit(dave, path, code, attempt)
    assert again.status_code == 303

    alice = pages.browser("alice")
    todo = alice.get("/").get_data(as_text=True)
    assert f"/contracts/{cid}/parties/{seal_party}/sign" in todo
    seal_path = f"/contracts/{cid}/parties/{seal_party}/sign"
    _send_code(alice, seal_path)
    sealed = _submit(alice, seal_path, pages.last_code("alice"))
    assert sealed.status_code == 303, re.findall(r'id="sign-error">([^<]*)', sealed.get_data(as_text=True))
    wait_for_work_left()  # what the app left for after the answer (the certificate of completion)

    bob = pages.browser("bob")
    page = bob.get(f"/contracts/{cid}").get_data(as_text=True)
    assert "state-completed" in page, re.findall(r'class="(?:party-status|flash[^"]*)"[^>]*>([^<]*)', page)
    assert 'id="download-completion"' in page
    final = bob.get(f"/contracts/{cid}/documents/current")
    assert final.status_code == 200 and final.mimetype == "application/pdf"
    check_signed_contract(pages.api.services, final.data, 2, tmp_path)
    completion = bob.get(f"/contracts/{cid}/documents/completion")
    assert completion.status_code == 200 and completion.data.startswith(b"%PDF")
    timeline = bob.get(f"/contracts/{cid}").get_data(as_text=True).split('id="timeline"', 1)[1]
    assert timeline.count('data-action="signed"') == 2 and 'data-action="completed"' in timeline
    assert timeline.count('data-action="signed"') == 2  # the replayed form did not sign again
