"""Templates and automatic sealing through the API: dave (Finance) saves a draft with Finance's
seal and a buyer as a template; alice (Finance's org admin) authorises it for the seal; a
contract started from it and sent at once gets the seal from the appliance once the answer is
sent, and bob signs it to completion. Sales (bob) sees no Finance template: 404."""

from __future__ import annotations

from typing import Any

from appliance.web.after_response import wait_for_work_left
from tests.api.conftest import FIELD, ApiEnv, assert_problem


def _template(api_env: ApiEnv, seal_id: int) -> dict[str, Any]:
    client, dave = api_env.client(), api_env.auth("dave")
    created = api_env.create_contract("dave")
    assert created.status_code == 201, created.get_data(as_text=True)
    contract_id = created.get_json()["id"]
    parties = f"/api/v1/contracts/{contract_id}/parties"
    seal = {"kind": "seal", "seal_id": seal_id, "fields": [FIELD], "routing_order": 1}
    assert client.post(parties, json=seal, headers=dave).status_code == 201
    buyer = {"kind": "person", "username": "bob", "fields": [FIELD], "routing_order": 2}
    added = client.post(parties, json=buyer, headers=dave)
    assert added.status_code == 201, added.get_data(as_text=True)
    person = next(p["id"] for p in added.get_json()["parties"] if p["kind"] == "person")
    saved = client.post(
        f"/api/v1/contracts/{contract_id}/template",
        json={"name": "Standard purchase", "labels": [{"party_id": person, "label": "Buyer"}]},
        headers=dave,
    )
    assert saved.status_code == 201, saved.get_data(as_text=True)
    template: dict[str, Any] = saved.get_json()
    return template


def test_a_template_authorised_for_a_seal_is_sealed_by_the_appliance(api_env: ApiEnv) -> None:
    client = api_env.client()
    alice, bob, dave = api_env.auth("alice"), api_env.auth("bob"), api_env.auth("dave")
    seal_id = api_env.new_seal()
    template = _template(api_env, seal_id)
    assert [(r["label"], r["kind"], r["seal_id"]) for r in template["roles"]] == [
        (template["roles"][0]["seal_name"], "seal", seal_id),
        ("Buyer", "person", None),
    ]
    assert template["roles"][1]["fields"] == [FIELD]
    listed = client.get("/api/v1/templates", headers=alice).get_json()["items"]
    assert template["id"] in [t["id"] for t in listed]

    automation = f"/api/v1/seals/{seal_id}/automation"
    body = {"initiators": [], "template_ids": [template["id"]]}
    assert_problem(client.put(automation, json=body, headers=dave), 403)  # not an org admin
    assert_problem(client.put(automation, json=body, headers=bob), 404)
    authorised = client.put(automation, json=body, headers=alice)
    assert authorised.status_code == 200, authorised.get_data(as_text=True)
    assert authorised.get_json()["templates"] == [{"id": template["id"], "name": "Standard purchase"}]
    seal = client.get(f"/api/v1/seals/{seal_id}", headers=alice).get_json()
    assert seal["automation"]["templates"] == authorised.get_json()["templates"]

    buyer_role = template["roles"][1]["id"]
    start = {
        "title": "Purchase order 42",
        "not_excluded": True,
        "people": [{"role_id": buyer_role, "username": "bob"}],
        "send": True,
    }
    started = client.post(f"/api/v1/templates/{template['id']}/contracts", json=start, headers=dave)
    assert started.status_code == 201, started.get_data(as_text=True)
    contract = started.get_json()
    assert contract["state"] == "signing" and contract["approvals"] == []
    wait_for_work_left()  # the appliance seals once the answer is sent
    contract = client.get(f"/api/v1/contracts/{contract['id']}", headers=dave).get_json()
    assert [p["status"] for p in contract["parties"]] == ["signed", "pending"]

    party = f"/api/v1/contracts/{contract['id']}/parties/{contract['parties'][1]['id']}"
    if client.get("/api/v1/certificates/mine", headers=bob).get_json()["certificate"] is None:
        applied = client.post("/api/v1/certificates/mine", json=api_env.consent("bob"), headers=bob)
        assert applied.status_code == 201, applied.get_data(as_text=True)
    assert client.post(f"{party}/code", headers=bob).status_code == 200
    code = api_env.codes_mailed_to("bob@example.org")[-1]
    signed = client.post(f"{party}/sign", json={"code": code}, headers=bob)
    assert signed.status_code == 200, signed.get_data(as_text=True)
    assert signed.get_json()["state"] == "completed"

    (used,) = client.get(f"/api/v1/seals/{seal_id}/usage", headers=alice).get_json()["items"]
    assert (used["contract_id"], used["applied_by"], used["automatic"]) == (contract["id"], "", "template")


def test_templates_are_their_organisations_and_retired_ones_start_nothing(api_env: ApiEnv) -> None:
    client = api_env.client()
    alice, bob, dave = api_env.auth("alice"), api_env.auth("bob"), api_env.auth("dave")
    template = _template(api_env, api_env.new_seal())
    path = f"/api/v1/templates/{template['id']}"
    assert_problem(client.get(path, headers=bob), 404)
    assert_problem(client.get(f"/api/v1/templates/{template['id'] + 10_000}", headers=dave), 404)
    assert_problem(client.post(f"{path}/retire", headers=bob), 404)
    assert template["id"] not in [
        t["id"] for t in client.get("/api/v1/templates", headers=bob).get_json()["items"]
    ]
    start = {
        "title": "Too late",
        "not_excluded": True,
        "people": [{"role_id": template["roles"][1]["id"], "username": "bob"}],
    }
    assert_problem(client.post(f"{path}/contracts", json={**start, "people": []}, headers=dave), 400)
    assert_problem(client.post(f"{path}/contracts", json={**start, "not_excluded": False}, headers=dave), 400)

    retired = client.post(f"{path}/retire", headers=alice)  # an org admin retires dave's template
    assert retired.status_code == 200 and retired.get_json()["retired_at"] is not None
    assert_problem(client.post(f"{path}/contracts", json=start, headers=dave), 409)
    listed = client.get("/api/v1/templates?include_retired=true", headers=dave).get_json()["items"]
    assert template["id"] in [t["id"] for t in listed]
