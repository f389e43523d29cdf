"""Seal approvals through the API: alice (Finance's org admin and seal keeper) names dave as a
new seal's approver; bob's contract with the seal waits for dave, who approves it; alice seals
it; the seal's usage log names the approval. Whoever is not the organisation's gets 404."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from tests.api.conftest import ARCHIVISTS, FIELD, ApiEnv, assert_problem
from tests.fixtures.pdfs import make_png


def _sealed_contract(api_env: ApiEnv, seal_id: int) -> dict[str, Any]:
    client, bob = api_env.client(), api_env.auth("bob")
    created = api_env.create_contract("bob")
    assert created.status_code == 201, created.get_data(as_text=True)
    contract_id = created.get_json()["id"]
    party = {"kind": "seal", "seal_id": seal_id, "fields": [FIELD]}
    added = client.post(f"/api/v1/contracts/{contract_id}/parties", json=party, headers=bob)
    assert added.status_code == 201, added.get_data(as_text=True)
    sent = client.post(f"/api/v1/contracts/{contract_id}/send", headers=bob)
    assert sent.status_code == 200, sent.get_data(as_text=True)
    contract: dict[str, Any] = sent.get_json()
    return contract


def test_an_approver_approves_and_the_keeper_seals(api_env: ApiEnv) -> None:
    client = api_env.client()
    alice, bob, dave = api_env.auth("alice"), api_env.auth("bob"), api_env.auth("dave")
    seal = client.post("/api/v1/seals", json={"name": f"财务专用章 {secrets.token_hex(3)}"}, headers=alice)
    assert seal.status_code == 201, seal.get_data(as_text=True)
    seal_id = seal.get_json()["id"]
    certified = client.post(
        f"/api/v1/seals/{seal_id}/certificate", json=api_env.consent("alice"), headers=alice
    )
    assert certified.status_code == 201, certified.get_data(as_text=True)

    path = f"/api/v1/seals/{seal_id}/approvers"
    assert_problem(client.put(path, json={"approvers": ["dave"]}, headers=bob), 404)  # another organisation's
    assert_problem(client.put(path, json={"approvers": ["bob"]}, headers=alice), 400)  # not of Finance
    named = client.put(path, json={"approvers": ["dave"]}, headers=alice)
    assert (named.status_code, named.get_json()) == (200, {"approvers": ["dave"]})

    contract = _sealed_contract(api_env, seal_id)
    assert contract["state"] == "pending_approval"
    (approval,) = contract["approvals"]
    assert approval["approver_name"] == "Dave Zhou"
    assert (approval["status"], approval["yours"]) == ("pending", False)
    waiting = client.get("/api/v1/approvals", headers=dave).get_json()["items"]
    assert [(i["contract_id"], i["approval_id"]) for i in waiting] == [(contract["id"], approval["id"])]
    assert all(
        i["contract_id"] != contract["id"]
        for i in client.get("/api/v1/approvals", headers=alice).get_json()["items"]
    )

    decision = f"/api/v1/contracts/{contract['id']}/approvals/{approval['id']}"
    assert_problem(client.post(f"{decision}/reject", json={"comment": ""}, headers=dave), 400)
    assert_problem(client.post(f"{decision}/approve", json={}, headers=alice), 403)
    approved = client.post(f"{decision}/approve", json={"comment": "Budget checked."}, headers=dave)
    assert approved.status_code == 200, approved.get_data(as_text=True)
    assert approved.get_json()["state"] == "signing"
    assert approved.get_json()["approvals"][0]["comment"] == "Budget checked."
    assert_problem(client.post(f"{decision}/approve", json={}, headers=dave), 409)

    party = f"/api/v1/contracts/{contract['id']}/parties/{contract['parties'][0]['id']}"
    assert client.post(f"{party}/code", headers=alice).status_code == 200
    code = api_env.codes_mailed_to("alice@example.org")[-1]
    signed = client.post(f"{party}/sign", json={"code": code}, headers=alice)
    assert signed.status_code == 200, signed.get_data(as_text=True)
    assert signed.get_json()["state"] == "completed"

    log = client.get(f"/api/v1/seals/{seal_id}/usage", headers=dave)  # an auditor of Finance
    assert log.status_code == 200, log.get_data(as_text=True)
    (used,) = log.get_json()["items"]
    assert (used["contract_id"], used["approval_ids"]) == (contract["id"], [approval["id"]])
    assert used["document_sha256"] == signed.get_json()["versions"][-1]["sha256"]
    assert_problem(client.get(f"/api/v1/seals/{seal_id}/usage", headers=bob), 404)


def test_an_org_admin_manages_the_organisations_seals(api_env: ApiEnv) -> None:
    client, alice, bob = api_env.client(), api_env.auth("alice"), api_env.auth("bob")
    png = base64.b64encode(make_png(200, 200)).decode()
    created = client.post(
        "/api/v1/seals",
        json={"name": f"发票专用章 {secrets.token_hex(3)}", "kind": "invoice", "image_png": png},
        headers=alice,
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    seal_id = created.get_json()["id"]
    not_png = base64.b64encode(b"GIF89a not a png").decode()
    assert client.post(
        "/api/v1/seals", json={"name": "x", "image_png": not_png}, headers=alice
    ).status_code in (400, 422)

    seal = client.get(f"/api/v1/seals/{seal_id}", headers=alice).get_json()
    assert (seal["kind"], seal["state"], seal["has_image"], seal["certificate_usable"]) == (
        "invoice",
        "active",
        True,
        False,
    )
    assert seal_id in [s["id"] for s in client.get("/api/v1/seals", headers=alice).get_json()["items"]]
    disabled = client.put(f"/api/v1/seals/{seal_id}/state", json={"state": "disabled"}, headers=alice)
    assert disabled.get_json()["state"] == "disabled"
    retired = client.put(f"/api/v1/seals/{seal_id}/state", json={"state": "retired"}, headers=alice)
    assert retired.get_json()["state"] == "retired"
    assert_problem(client.put(f"/api/v1/seals/{seal_id}/state", json={"state": "active"}, headers=alice), 409)

    assert_problem(client.get("/api/v1/seals", headers=bob), 403)
    assert_problem(client.get(f"/api/v1/seals/{seal_id}", headers=bob), 404)
    assert_problem(client.put(f"/api/v1/seals/{seal_id}/state", json={"state": "active"}, headers=bob), 404)


def test_a_directory_group_approves_through_its_member(api_env: ApiEnv) -> None:
    client, alice, dave = api_env.client(), api_env.auth("alice"), api_env.auth("dave")
    seal_id = api_env.new_seal()
    named = client.put(f"/api/v1/seals/{seal_id}/approvers", json={"approvers": [ARCHIVISTS]}, headers=alice)
    assert (named.status_code, named.get_json()) == (200, {"approvers": [ARCHIVISTS]})
    contract = _sealed_contract(api_env, seal_id)
    (approval,) = contract["approvals"]
    assert (approval["approver_name"], approval["status"]) == ("auditors", "pending")
    waiting = client.get("/api/v1/approvals", headers=dave).get_json()["items"]  # dave is in the group
    assert approval["id"] in [i["approval_id"] for i in waiting]
    decision = f"/api/v1/contracts/{contract['id']}/approvals/{approval['id']}"
    assert_problem(client.post(f"{decision}/approve", json={}, headers=alice), 403)  # not in the group
    approved = client.post(f"{decision}/approve", json={"comment": "Checked."}, headers=dave)
    assert approved.status_code == 200, approved.get_data(as_text=True)
    assert approved.get_json()["state"] == "signing"
    assert approved.get_json()["approvals"][0]["approver_name"] == "Dave Zhou"
