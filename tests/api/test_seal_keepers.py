"""Seal keepers by directory group, against the real slapd: alice (Finance's org admin) names
the auditors' group as a new seal's keepers; dave, of Finance and in that group by the
directory (recorded at his sign-in), sees bob's contract with the seal in his to-do list and
applies it; alice, a seal keeper by role but not in the group, no longer may."""

from __future__ import annotations

from tests.api.conftest import ARCHIVISTS, FIELD, ApiEnv, assert_problem


def test_the_members_of_a_keeper_group_apply_the_seal(api_env: ApiEnv) -> None:
    client = api_env.client()
    alice, bob, dave = api_env.auth("alice"), api_env.auth("bob"), api_env.auth("dave")
    seal_id = api_env.new_seal()
    path = f"/api/v1/seals/{seal_id}/keepers"
    assert_problem(client.put(path, json={"usernames": [], "groups": [ARCHIVISTS]}, headers=bob), 404)
    assert_problem(client.put(path, json={"usernames": [], "groups": ["no dn"]}, headers=alice), 400)
    upper = ARCHIVISTS.replace("cn=auditors", "CN=Auditors")
    named = client.put(path, json={"usernames": [], "groups": [upper]}, headers=alice)
    assert named.status_code == 200, named.get_data(as_text=True)
    assert named.get_json() == {"usernames": [], "groups": [ARCHIVISTS]}
    assert client.get(f"/api/v1/seals/{seal_id}", headers=alice).get_json()["keepers"]["groups"] == [
        ARCHIVISTS
    ]

    created = api_env.create_contract("bob")
    contract_id = created.get_json()["id"]
    party = {"kind": "seal", "seal_id": seal_id, "fields": [FIELD]}
    assert client.post(f"/api/v1/contracts/{contract_id}/parties", json=party, headers=bob).status_code == 201
    sent = client.post(f"/api/v1/contracts/{contract_id}/send", headers=bob)
    assert sent.status_code == 200, sent.get_data(as_text=True)
    seal_party = sent.get_json()["parties"][0]["id"]

    mine = client.get("/api/v1/contracts", query_string={"role": "to_sign"}, headers=dave).get_json()["items"]
    assert contract_id in [c["id"] for c in mine]
    party_path = f"/api/v1/contracts/{contract_id}/parties/{seal_party}"
    assert_problem(client.post(f"{party_path}/code", headers=alice), 404)  # a keeper by role only
    assert client.post(f"{party_path}/code", headers=dave).status_code == 200
    code = api_env.codes_mailed_to("dave@example.org")[-1]
    signed = client.post(f"{party_path}/sign", json={"code": code}, headers=dave)
    assert signed.status_code == 200, signed.get_data(as_text=True)
    assert signed.get_json()["state"] == "completed"
