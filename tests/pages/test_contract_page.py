"""The contract page: preview, parties, timeline and only the viewer's actions; page pictures
and downloads for those who may see the contract and 404 for anyone else; CSRF and no-store;
rejecting and withdrawing through the pages."""

from __future__ import annotations

import io
import re
import secrets

from PIL import Image

from tests.pages.conftest import PagesEnv, csrf_of, post_form


def test_the_page_shows_parties_timeline_preview_and_the_party_s_actions(pages: PagesEnv) -> None:
    contract = pages.contract([("alice", 1), ("dave", 2)])
    cid = contract["id"]
    alice_party, dave_party = (p["id"] for p in contract["parties"])
    page = pages.browser("alice").get(f"/contracts/{cid}").get_data(as_text=True)
    assert "Supply agreement" in page and "Out for signing" in page
    parties = page.split('id="parties"', 1)[1].split("</table>", 1)[0]
    assert parties.index("Alice Liu") < parties.index("Dave Zhou")
    assert "To sign now" in parties and "Waiting for earlier parties" in parties
    assert f"/contracts/{cid}/pages/1.png" in page and f"/contracts/{cid}/pages/2.png" in page
    assert f"/contracts/{cid}/parties/{alice_party}/sign" in page
    assert f"/contracts/{cid}/parties/{alice_party}/reject" in page
    assert f"/parties/{dave_party}/" not in page
    assert 'id="withdraw"' not in page  # only the initiator withdraws
    timeline = page.split('id="timeline"', 1)[1].split("</ol>", 1)[0]
    for action in ("created", "party_added", "sent", "viewed"):
        assert f'data-action="{action}"' in timeline
    assert contract["versions"][0]["sha256"] in page

    initiator = pages.browser("bob").get(f"/contracts/{cid}").get_data(as_text=True)
    assert 'id="withdraw"' in initiator and "/parties/" not in initiator
    waiting = pages.browser("dave").get(f"/contracts/{cid}").get_data(as_text=True)
    assert "/parties/" not in waiting  # not dave's turn yet: nothing to sign or reject


def test_page_pictures_are_pngs_with_the_party_s_fields_drawn_on(pages: PagesEnv) -> None:
    contract = pages.contract([("alice", 1)])
    cid, party = contract["id"], contract["parties"][0]["id"]
    alice = pages.browser("alice")
    plain = alice.get(f"/contracts/{cid}/pages/1.png")
    assert plain.status_code == 200 and plain.mimetype == "image/png"
    assert plain.headers["Cache-Control"] == "no-store"
    marked = alice.get(f"/contracts/{cid}/pages/1.png", query_string={"party": party})
    image, original = Image.open(io.BytesIO(marked.data)).convert("RGB"), Image.open(io.BytesIO(plain.data))
    # the field is at x 72..252, y 72..132 points from the bottom of an A4 page (842 points)
    x, y = int(150 * image.width / 595), int((842 - 100) * image.height / 842)
    assert original.convert("RGB").getpixel((x, y)) == (255, 255, 255)
    assert image.getpixel((x, y)) != (255, 255, 255)
    assert alice.get(f"/contracts/{cid}/pages/3.png").status_code == 404
    assert alice.get(f"/contracts/{cid}/pages/0.png").status_code == 404


def test_another_person_s_contract_is_404_on_every_route(pages: PagesEnv) -> None:
    contract = pages.contract([("alice", 1)])
    cid, party = contract["id"], contract["parties"][0]["id"]
    dave = pages.browser("dave")
    token = csrf_of(dave.get("/").get_data(as_text=True))
    gets = [
        f"/contracts/{cid}",
        f"/contracts/{cid}/pages/1.png",
        f"/contracts/{cid}/documents/original",
        f"/contracts/{cid}/documents/current",
        f"/contracts/{cid}/documents/completion",
        f"/contracts/{cid}/parties/{party}/sign",
    ]
    for path in gets:
        assert dave.get(path).status_code == 404, path
    posts = [
        (f"/contracts/{cid}/parties/{party}/reject", {"reason": "no"}),
        (f"/contracts/{cid}/withdraw", {"reason": "no"}),
        (f"/contracts/{cid}/parties/{party}/code", {}),
        (f"/contracts/{cid}/parties/{party}/sign", {"code": "123456", "attempt": secrets.token_urlsafe(24)}),
    ]
    for path, data in posts:
        assert dave.post(path, data={**data, "csrf_token": token}).status_code == 404, path
    # the same as an id that does not exist, and ids beyond the database's range
    assert dave.get("/contracts/999999").status_code == 404
    assert dave.get(f"/contracts/{2**31}").status_code == 404
    # bob's party page for alice is not his to sign
    assert pages.browser("bob").get(f"/contracts/{cid}/parties/{party}/sign").status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in(pages: PagesEnv) -> None:
    contract = pages.contract([("alice", 1)])
    response = pages.api.client().get(f"/contracts/{contract['id']}/pages/1.png")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_posts_without_a_csrf_token_are_refused(pages: PagesEnv) -> None:
    contract = pages.contract([("alice", 1)])
    cid, party = contract["id"], contract["parties"][0]["id"]
    alice = pages.browser("alice")
    for path, data in [
        (f"/contracts/{cid}/parties/{party}/reject", {"reason": "no"}),
        (f"/contracts/{cid}/parties/{party}/code", {}),
        (f"/contracts/{cid}/parties/{party}/sign", {"code": "123456", "attempt": secrets.token_urlsafe(24)}),
        (f"/contracts/{cid}/parties/{party}/certificate", {"agree": "y"}),
    ]:
        response = alice.post(path, data=data)
        assert response.status_code == 403, path
        assert "form has expired" in response.get_data(as_text=True)
    withdraw = pages.browser("bob").post(f"/contracts/{cid}/withdraw", data={"reason": "no"})
    assert withdraw.status_code == 403
    assert "Out for signing" in alice.get(f"/contracts/{cid}").get_data(as_text=True)


def test_downloads_have_a_safe_name_and_no_store(pages: PagesEnv) -> None:
    created = pages.api.create_contract("bob", filename='合同 "final"\r\nX-Evil: 1.pdf', title="Named file")
    assert created.status_code == 201, created.get_data(as_text=True)
    cid = created.get_json()["id"]
    response = pages.browser("bob").get(f"/contracts/{cid}/documents/original")
    assert response.status_code == 200 and response.data.startswith(b"%PDF")
    assert response.headers["Cache-Control"] == "no-store"
    disposition = response.headers["Content-Disposition"]
    assert disposition.isascii() and "\r" not in disposition and "\n" not in disposition
    assert "X-Evil" not in response.headers
    assert "filename*=UTF-8''" in disposition and '"final"' not in disposition
    for path in (f"/contracts/{cid}", f"/contracts/{cid}/pages/1.png"):
        assert pages.browser("bob").get(path).headers["Cache-Control"] == "no-store"


def test_reject_with_a_reason_through_the_page(pages: PagesEnv) -> None:
    contract = pages.contract([("alice", 1), ("dave", 2)])
    cid, party = contract["id"], contract["parties"][0]["id"]
    alice = pages.browser("alice")
    empty = post_form(alice, f"/contracts/{cid}", f"/contracts/{cid}/parties/{party}/reject", reason="")
    assert empty.status_code == 303
    assert "Give a reason" in alice.get(f"/contracts/{cid}").get_data(as_text=True)
    response = post_form(
        alice, f"/contracts/{cid}", f"/contracts/{cid}/parties/{party}/reject", reason="价格不对 Wrong price"
    )
    assert response.status_code == 303
    page = alice.get(response.headers["Location"]).get_data(as_text=True)
    assert "You rejected the contract" in page and "state-rejected" in page
    assert "价格不对 Wrong price" in page and 'data-action="rejected"' in page
    assert f"/contracts/{cid}/parties/{party}/reject" not in page
    state = pages.api.client().get(f"/api/v1/contracts/{cid}", headers=pages.api.auth("bob")).get_json()
    assert state["state"] == "rejected"


def test_withdraw_with_a_reason_through_the_page(pages: PagesEnv) -> None:
    contract = pages.contract([("alice", 1)])
    cid = contract["id"]
    bob = pages.browser("bob")
    response = post_form(bob, f"/contracts/{cid}", f"/contracts/{cid}/withdraw", reason="Terms changed")
    assert response.status_code == 303
    page = bob.get(f"/contracts/{cid}").get_data(as_text=True)
    assert "You withdrew the contract" in page and "state-withdrawn" in page and "Terms changed" in page
    # a second withdrawal is refused in words, not with an error page
    again = post_form(bob, f"/contracts/{cid}", f"/contracts/{cid}/withdraw", reason="again")
    assert again.status_code == 303
    assert "current state" in bob.get(f"/contracts/{cid}").get_data(as_text=True)
    alice_page = pages.browser("alice").get(f"/contracts/{cid}").get_data(as_text=True)
    assert "/parties/" not in alice_page


def test_the_initiator_reminds_the_parties_through_the_page(pages: PagesEnv) -> None:
    contract = pages.contract([("alice", 1)])
    cid = contract["id"]
    assert 'id="remind"' not in pages.browser("alice").get(f"/contracts/{cid}").get_data(as_text=True)
    bob = pages.browser("bob")
    assert post_form(bob, f"/contracts/{cid}", f"/contracts/{cid}/remind").status_code == 303
    assert "were reminded" in bob.get(f"/contracts/{cid}").get_data(as_text=True)
    # an hour must pass before the next reminder; the page says so instead of failing
    assert post_form(bob, f"/contracts/{cid}", f"/contracts/{cid}/remind").status_code == 303
    assert "were reminded" not in bob.get(f"/contracts/{cid}").get_data(as_text=True)
    alice_page = pages.browser("alice").get("/").get_data(as_text=True)
    unread = re.search(r'id="nav-unread-count"[^>]*>(\d+)<', alice_page)
    assert unread and int(unread.group(1)) >= 1  # the reminder is in her notices
