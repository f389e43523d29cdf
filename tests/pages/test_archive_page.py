"""The archive page and the API's archive list: archived contracts are the archive admins'
alone, gone from everyone else's lists and ids (dave is the archive admin here)."""

from __future__ import annotations

import secrets

from appliance.db import transaction
from appliance.models import Contract
from appliance.web.after_response import wait_for_work_left
from tests.api.conftest import assert_problem
from tests.pages.conftest import PagesEnv


def _archived_contract(pages: PagesEnv, title: str) -> int:
    """A contract of bob's that alice signed, then archived."""
    pages.ensure_certificate("alice")
    contract = pages.contract([("alice", 1)], title=title)
    cid, party = contract["id"], contract["parties"][0]["id"]
    api, alice = pages.api, pages.api.auth("alice")
    assert (
        api.client().post(f"/api/v1/contracts/{cid}/parties/{party}/code", headers=alice).status_code == 200
    )
    signed = api.client().post(
        f"/api/v1/contracts/{cid}/parties/{party}/sign",
        json={"code": pages.last_code("alice")},
        headers=alice,
    )
    assert signed.status_code == 200 and signed.get_json()["state"] == "completed", signed.get_data(
        as_text=True
    )
    wait_for_work_left()
    # the sweep that archives is tested with a moved clock (tests/workflow/test_retention.py);
    # here it would archive the other tests' completed contracts in this shared database too
    with transaction(api.services.sessions) as session:
        row = session.get(Contract, cid)
        row.archived_at = api.services.clock.now()
    return cid


def test_the_archive_admin_finds_an_archived_contract_and_nobody_else_sees_it(pages: PagesEnv) -> None:
    title = f"Archived lease {secrets.token_hex(4)}"
    cid = _archived_contract(pages, title)

    dave = pages.browser("dave")
    home = dave.get("/").get_data(as_text=True)
    assert 'id="nav-archive"' in home and title not in home
    archive = dave.get("/archive", query_string={"title": title}).get_data(as_text=True)
    listed = archive.split('id="archived"', 1)[1].split("</table>", 1)[0]
    assert title in listed and f"/contracts/{cid}" in listed
    assert title not in dave.get("/archive", query_string={"state": "ended"}).get_data(as_text=True)
    assert dave.get(f"/contracts/{cid}").status_code == 200
    assert dave.get(f"/contracts/{cid}/documents/current").status_code == 200
    in_chinese = pages.browser("dave", language="zh-CN").get("/archive").get_data(as_text=True)
    assert "归档" in in_chinese

    for who in ("bob", "alice"):
        browser = pages.browser(who)
        page = browser.get("/").get_data(as_text=True)
        assert title not in page and 'id="nav-archive"' not in page
        assert browser.get(f"/contracts/{cid}").status_code == 404
        assert browser.get("/archive").status_code == 403

    api = pages.api
    listed_api = api.client().get(
        "/api/v1/contracts", query_string={"archived": "true", "title": title}, headers=api.auth("dave")
    )
    assert [c["id"] for c in listed_api.get_json()["items"]] == [cid]
    assert listed_api.get_json()["items"][0]["archived_at"]
    assert_problem(
        api.client().get("/api/v1/contracts", query_string={"archived": "true"}, headers=api.auth("bob")), 403
    )
    ordinary = api.client().get("/api/v1/contracts", query_string={"title": title}, headers=api.auth("bob"))
    assert ordinary.get_json()["items"] == []
    assert_problem(api.client().get(f"/api/v1/contracts/{cid}", headers=api.auth("bob")), 404)
