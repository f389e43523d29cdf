"""Home for a signed-in person: the to-do list with deadline and initiator, their contracts
filtered and paged, the count on the navigation; visitors keep the start page."""

from __future__ import annotations

import re
import secrets

from tests.pages.conftest import PagesEnv


def test_a_visitor_keeps_the_start_page(pages: PagesEnv) -> None:
    page = pages.api.client().get("/").get_data(as_text=True)
    assert "Electronic contracts, signed inside the company" in page
    assert 'id="todo-heading"' not in page


def test_the_to_do_list_shows_what_waits_for_me_with_a_count(pages: PagesEnv) -> None:
    title = f"Lease {secrets.token_hex(4)}"
    contract = pages.contract([("alice", 1)], title=title)
    alice = pages.browser("alice")
    page = alice.get("/").get_data(as_text=True)
    todo = page.split('id="todo"', 1)[1].split("</ul>", 1)[0]
    assert title in todo and "From Bob Chen" in todo
    party_id = contract["parties"][0]["id"]
    assert f"/contracts/{contract['id']}/parties/{party_id}/sign" in todo
    count = re.search(r'id="nav-todo-count"[^>]*>(\d+)<', page)
    assert count and int(count.group(1)) == todo.count('class="todo-item"')
    # bob started it: not on his to-do list, but in his contracts
    bob_page = pages.browser("bob").get("/").get_data(as_text=True)
    assert title not in bob_page.split('id="todo-heading"', 1)[1].split('id="mine-heading"', 1)[0]
    assert title in bob_page.split('id="contracts"', 1)[1]


def test_a_long_to_do_list_shows_the_first_twenty_and_links_to_all(pages: PagesEnv) -> None:
    tag = secrets.token_hex(4)
    for n in range(21):
        pages.contract([("dave", 1)], title=f"Pile {tag} {n:02d}")
    page = pages.browser("dave").get("/").get_data(as_text=True)
    todo = page.split('id="todo"', 1)[1].split("</ul>", 1)[0]
    assert todo.count('class="todo-item"') == 20
    count = re.search(r'id="nav-todo-count"[^>]*>(\d+)<', page)
    assert count and int(count.group(1)) >= 21  # the count is of all of them
    link = re.search(r'href="([^"]+)" id="todo-all"', page)
    assert link
    everything = pages.browser("dave").get(link.group(1).replace("&amp;", "&").split("#")[0])
    listed = everything.get_data(as_text=True).split('id="contracts"', 1)[1]
    assert listed.count(f"Pile {tag}") == 20 and 'id="next-page"' in listed  # paged, 20 a page


def test_a_seal_keeper_sees_the_seal_to_apply(pages: PagesEnv) -> None:
    seal_id = pages.new_seal()
    title = f"Seal only {secrets.token_hex(4)}"
    pages.contract([(f"seal:{seal_id}", 1)], title=title)
    page = pages.browser("alice").get("/").get_data(as_text=True)
    item = page.split(title, 1)[1].split("</li>", 1)[0]
    assert "Apply the seal 合同专用章" in item


def test_filters_and_pages(pages: PagesEnv) -> None:
    tag = secrets.token_hex(4)
    for n in range(3):
        pages.contract([("alice", 1)], title=f"Batch {tag} {n}", send=n != 0)
    bob = pages.browser("bob")

    drafts = bob.get("/", query_string={"state": "draft", "title": tag}).get_data(as_text=True)
    assert f"Batch {tag} 0" in drafts and f"Batch {tag} 1" not in drafts

    first = bob.get("/", query_string={"title": tag, "role": "initiated"}).get_data(as_text=True)
    assert first.count(f"Batch {tag}") == 3
    # no contract was created before 2020 nor after 2100; the date range is inclusive
    assert "No contracts match." in bob.get("/", query_string={"created_to": "2020-01-01"}).get_data(
        as_text=True
    )
    assert f"Batch {tag} 2" in bob.get(
        "/", query_string={"created_from": "2020-01-01", "created_to": "2100-01-01", "title": tag}
    ).get_data(as_text=True)


def test_contracts_are_found_by_a_party_s_name(pages: PagesEnv) -> None:
    tag = secrets.token_hex(4)
    pages.contract([("alice", 1)], title=f"With Alice {tag}")
    pages.contract([("dave", 1)], title=f"With Dave {tag}")
    bob = pages.browser("bob")
    alice_name = (
        pages.api.client().get("/api/v1/me", headers=pages.api.auth("alice")).get_json()["display_name"]
    )
    found = bob.get("/", query_string={"title": tag, "party": alice_name[:3]}).get_data(as_text=True)
    listed = found.split('id="contracts"', 1)[1]
    assert f"With Alice {tag}" in listed and f"With Dave {tag}" not in listed


def test_pagination_follows_the_cursor_and_keeps_the_filter(pages: PagesEnv) -> None:
    tag = secrets.token_hex(4)
    for n in range(22):
        pages.contract([("alice", 1)], title=f"Many {tag} {n:02d}", send=False)
    bob = pages.browser("bob")
    first = bob.get("/", query_string={"title": tag}).get_data(as_text=True)
    assert first.count(f"Many {tag}") == 20
    next_link = re.search(r'href="([^"]+)" id="next-page"', first)
    assert next_link
    second = bob.get(next_link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert second.count(f"Many {tag}") == 2 and 'id="next-page"' not in second
    assert 'id="first-page"' in second
    bad = bob.get("/", query_string={"cursor": "not-a-cursor"})
    assert bad.status_code == 400


def test_home_in_chinese(pages: PagesEnv) -> None:
    page = pages.browser("alice", language="zh-CN").get("/").get_data(as_text=True)
    assert '<html lang="zh-CN">' in page
    assert "等待您处理" in page and "我的合同" in page
