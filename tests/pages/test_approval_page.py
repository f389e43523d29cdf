"""Seal approvals on the pages: the approver finds the contract on their home page, decides on
the contract page (approve with an optional comment, reject only with one), and everyone who
reads the contract sees the approvals; in English and Chinese."""

from __future__ import annotations

from typing import Any

from tests.pages.conftest import PagesEnv, csrf_of


def _awaiting_dave(pages: PagesEnv, title: str) -> tuple[dict[str, Any], int]:
    seal_id = pages.new_seal()
    named = pages.api.client().put(
        f"/api/v1/seals/{seal_id}/approvers", json={"approvers": ["dave"]}, headers=pages.api.auth("alice")
    )
    assert named.status_code == 200, named.get_data(as_text=True)
    contract = pages.contract([(f"seal:{seal_id}", 1)], title=title)
    assert contract["state"] == "pending_approval"
    return contract, contract["approvals"][0]["id"]


def test_the_approver_approves_from_the_contract_page(pages: PagesEnv) -> None:
    contract, approval = _awaiting_dave(pages, "Office lease")
    dave = pages.browser("dave")
    home = dave.get("/").get_data(as_text=True)
    assert 'id="approvals-todo"' in home and "Office lease" in home
    page_path = f"/contracts/{contract['id']}"
    page = dave.get(page_path).get_data(as_text=True)
    assert f'id="decide-{approval}"' in page and "Waiting for approval" in page
    assert f'id="decide-{approval}"' not in pages.browser("bob").get(page_path).get_data(as_text=True)

    refused = dave.post(
        f"{page_path}/approvals/{approval}/reject", data={"comment": "", "csrf_token": csrf_of(page)}
    )
    assert refused.status_code == 303
    assert "Say why you reject" in dave.get(page_path).get_data(as_text=True)

    page = dave.get(page_path).get_data(as_text=True)
    done = dave.post(
        f"{page_path}/approvals/{approval}/approve",
        data={"comment": "Lease terms checked.", "csrf_token": csrf_of(page)},
    )
    assert done.status_code == 303
    page = dave.get(page_path).get_data(as_text=True)
    assert "You approved the use of the seal." in page and "Out for signing" in page
    assert "Lease terms checked." in page and f'id="decide-{approval}"' not in page
    assert "Use of the seal approved" in pages.browser("bob").get(page_path).get_data(as_text=True)


def test_a_rejection_on_the_page_rejects_the_contract_in_chinese(pages: PagesEnv) -> None:
    contract, approval = _awaiting_dave(pages, "采购框架协议")
    dave = pages.browser("dave", language="zh-CN")
    page_path = f"/contracts/{contract['id']}"
    page = dave.get(page_path).get_data(as_text=True)
    assert "用印审批" in page and "批准" in page
    dave.post(
        f"{page_path}/approvals/{approval}/reject",
        data={"comment": "预算不足。", "csrf_token": csrf_of(page)},
    )
    page = dave.get(page_path).get_data(as_text=True)
    assert "您已驳回用印" in page and "预算不足。" in page
    assert '<span class="state state-rejected">已拒签</span>' in page
