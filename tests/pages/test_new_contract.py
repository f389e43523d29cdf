"""The New-contract pages: upload (and a refused upload), parties found in the directory or
chosen among the seals, fields placed by their page and place, the draft only for its
initiator, send."""

from __future__ import annotations

import io
import re
import secrets
from datetime import date, timedelta

from flask.testing import FlaskClient

from tests.fixtures.pdfs import make_pdf
from tests.pages.conftest import PagesEnv, csrf_of

DEADLINE = date.today() + timedelta(days=60)
MULTIPART = "multipart/form-data"
PARTY = {"kind": "person", "username": "dave", "routing_order": "1", "page": "1"} | {
    "x": "72",
    "y": "72",
    "width": "180",
    "height": "60",
}


def _upload(client: FlaskClient, data: bytes, title: str, name: str = "购销合同.pdf"):  # type: ignore[no-untyped-def]
    page = client.get("/contracts/new").get_data(as_text=True)
    attempt = re.search(r'name="attempt"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="attempt"', page
    )
    assert attempt
    return client.post(
        "/contracts/new",
        data={
            "file": (io.BytesIO(data), name, "application/pdf"),
            "title": title,
            "message": "请于本周内签署。",
            "deadline": DEADLINE.isoformat(),
            "routing": "sequential",
            "not_excluded": "y",
            "attempt": attempt.group(1),
            "csrf_token": csrf_of(page),
        },
        content_type=MULTIPART,
    )


def _add(client: FlaskClient, cid: int, **fields: str):  # type: ignore[no-untyped-def]
    page = client.get(f"/contracts/{cid}/edit").get_data(as_text=True)
    data = PARTY | {"username": ""} | fields
    return client.post(f"/contracts/{cid}/parties", data={**data, "csrf_token": csrf_of(page)})


def test_upload_find_people_add_a_person_and_a_seal_and_send(pages: PagesEnv) -> None:
    seal_id = pages.new_seal()
    bob = pages.browser("bob")
    assert 'id="new-contract"' in bob.get("/").get_data(as_text=True)
    title = f"Purchase {secrets.token_hex(3)}"
    created = _upload(bob, make_pdf(pages=2), title)
    assert created.status_code == 303, created.get_data(as_text=True)
    edit_path = created.headers["Location"]
    cid = int(re.search(r"/contracts/(\d+)/edit", edit_path).group(1))  # type: ignore[union-attr]
    page = bob.get(edit_path).get_data(as_text=True)
    assert title in page and 'data-page="2"' in page and 'id="no-parties"' in page

    found = bob.get(edit_path, query_string={"q": "Dave"}).get_data(as_text=True)
    people = found.split('id="people"', 1)[1].split("</ul>", 1)[0]
    assert "Dave Zhou" in people and 'data-username="dave"' in people
    assert "dave@example.org" not in people  # no contact details in the search
    picked = bob.get(edit_path, query_string={"q": "Dave", "username": "dave"}).get_data(as_text=True)
    assert re.search(r'id="username"[^>]*value="dave"', picked) or re.search(
        r'value="dave"[^>]*id="username"', picked
    )

    assert _add(bob, cid, kind="person", username="dave", page="2", x="300", y="100").status_code == 303
    assert _add(bob, cid, kind="seal", seal_id=str(seal_id), routing_order="2").status_code == 303
    outside = _add(bob, cid, kind="person", username="alice", x="500")  # 500 + 180 > 595 points
    assert outside.status_code == 400 and "lies outside page 1" in outside.get_data(as_text=True)
    nobody = _add(bob, cid, kind="person", username="nobody-here")
    assert nobody.status_code == 404 and "nobody-here" in nobody.get_data(as_text=True)

    page = bob.get(edit_path).get_data(as_text=True)
    parties = page.split('id="draft-parties"', 1)[1].split("</table>", 1)[0]
    assert "Dave Zhou" in parties and "Page 2 (300, 100)" in parties and "合同专用章" in parties

    sent = bob.post(f"/contracts/{cid}/send", data={"csrf_token": csrf_of(page)})
    assert sent.status_code == 303 and sent.headers["Location"].endswith(f"/contracts/{cid}")
    shown = bob.get(f"/contracts/{cid}").get_data(as_text=True)
    assert "The contract is sent" in shown and "Out for signing" in shown and "请于本周内签署。" in shown
    assert f"{DEADLINE.isoformat()} 23:59 UTC" in shown
    # the edit page of a sent contract leads back to the contract page
    assert bob.get(edit_path).status_code == 303
    todo = pages.browser("dave").get("/").get_data(as_text=True)
    assert title in todo.split('id="todo"', 1)[1].split("</ul>", 1)[0]


def test_a_refused_upload_is_said_in_words_and_the_same_form_twice_makes_one_draft(pages: PagesEnv) -> None:
    bob = pages.browser("bob")
    refused = _upload(bob, b"not a pdf at all", "Bad file")
    assert refused.status_code == 400 and 'id="new-error"' in refused.get_data(as_text=True)

    page = bob.get("/contracts/new").get_data(as_text=True)
    attempt = re.search(r'name="attempt"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="attempt"', page
    )
    assert attempt
    pdf = make_pdf()
    form = {
        "title": "Twice",
        "routing": "parallel",
        "not_excluded": "y",
        "attempt": attempt.group(1),
        "csrf_token": csrf_of(page),
    }
    first = bob.post(
        "/contracts/new",
        data={**form, "file": (io.BytesIO(pdf), "a.pdf")},
        content_type="multipart/form-data",
    )
    second = bob.post(
        "/contracts/new",
        data={**form, "file": (io.BytesIO(pdf), "a.pdf")},
        content_type="multipart/form-data",
    )
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]


def test_a_draft_is_only_for_its_initiator(pages: PagesEnv) -> None:
    draft = pages.contract([("alice", 1)], send=False)
    cid, party = draft["id"], draft["parties"][0]["id"]
    dave = pages.browser("dave")
    token = csrf_of(dave.get("/").get_data(as_text=True))
    assert dave.get(f"/contracts/{cid}/edit").status_code == 404
    for path in (
        f"/contracts/{cid}/parties",
        f"/contracts/{cid}/parties/{party}/remove",
        f"/contracts/{cid}/send",
    ):
        assert (
            dave.post(
                path,
                data={
                    "csrf_token": token,
                    "kind": "person",
                    "username": "dave",
                    "routing_order": "1",
                    "page": "1",
                    "x": "72",
                    "y": "72",
                    "width": "180",
                    "height": "60",
                },
            ).status_code
            == 404
        ), path
    # alice, a party, sees the draft's page but is sent there from its edit page, and cannot change it
    alice = pages.browser("alice")
    assert alice.get(f"/contracts/{cid}/edit").status_code == 303
    refused = alice.post(
        f"/contracts/{cid}/send", data={"csrf_token": csrf_of(alice.get("/").get_data(as_text=True))}
    )
    assert refused.status_code == 303
    assert "Draft" in pages.browser("bob").get(f"/contracts/{cid}").get_data(as_text=True)
    bob = pages.browser("bob")
    removed = bob.post(
        f"/contracts/{cid}/parties/{party}/remove",
        data={"csrf_token": csrf_of(bob.get("/").get_data(as_text=True))},
    )
    assert removed.status_code == 303
    assert 'id="no-parties"' in bob.get(f"/contracts/{cid}/edit").get_data(as_text=True)
    assert bob.post(f"/contracts/{cid}/send", data={}).status_code == 403  # no CSRF token


def test_a_contract_starts_only_with_the_confirmation_that_the_law_allows_it(pages: PagesEnv) -> None:
    bob = pages.browser("bob")
    page = bob.get("/contracts/new").get_data(as_text=True)
    assert 'id="not_excluded"' in page and "marriage, adoption or inheritance" in page
    attempt = re.search(r'name="attempt"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="attempt"', page
    )
    assert attempt
    refused = bob.post(
        "/contracts/new",
        data={
            "file": (io.BytesIO(make_pdf()), "a.pdf"),
            "title": "Unconfirmed",
            "routing": "parallel",
            "attempt": attempt.group(1),
            "csrf_token": csrf_of(page),
        },
        content_type="multipart/form-data",
    )
    assert refused.status_code == 400
    assert "Confirm that the document may be signed electronically." in refused.get_data(as_text=True)
    created = _upload(bob, make_pdf(), f"Confirmed {secrets.token_hex(3)}")
    cid = int(re.search(r"/contracts/(\d+)/edit", created.headers["Location"]).group(1))  # type: ignore[union-attr]
    evidence = pages.api.client().get(f"/api/v1/contracts/{cid}/evidence", headers=pages.api.auth("bob"))
    created_event = evidence.get_json()["items"][0]
    assert created_event["action"] == "created" and created_event["details"]["confirmed_not_excluded"]
