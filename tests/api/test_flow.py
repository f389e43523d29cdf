"""The whole flow through the REST API: two people and an organisation seal, sequential and
parallel, on SQLite and PostgreSQL; the final PDF checked by pdfsig, openssl and pyHanko."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from appliance.web.after_response import wait_for_work_left
from tests.api.conftest import FIELD, ApiEnv, assert_problem
from tests.fixtures.independent import check_signed_contract
from tests.fixtures.pdfs import make_pdf


def _ensure_certificate(env: ApiEnv, username: str) -> None:
    mine = env.client().get("/api/v1/certificates/mine", headers=env.auth(username))
    if mine.get_json().get("certificate") is None:
        applied = env.client().post(
            "/api/v1/certificates/mine", json=env.consent(username, "zh_Hans_CN"), headers=env.auth(username)
        )
        assert applied.status_code == 201, applied.get_data(as_text=True)


def _new_seal(env: ApiEnv) -> int:
    created = env.client().post(
        "/api/v1/seals", json={"name": f"合同专用章 {secrets.token_hex(3)}"}, headers=env.auth("alice")
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    seal_id: int = created.get_json()["id"]
    certified = env.client().post(
        f"/api/v1/seals/{seal_id}/certificate",
        json=env.consent("alice", "zh_Hans_CN"),
        headers=env.auth("alice"),
    )
    assert certified.status_code == 201, certified.get_data(as_text=True)
    return seal_id


def _sign(env: ApiEnv, signer: str, contract_id: int, party_id: int) -> tuple[dict[str, Any], str]:
    """Request a code, read it from the mail, sign; the contract after it and the code used."""
    email = {"alice": "alice@example.org", "dave": "dave@example.org"}[signer]
    requested = env.client().post(
        f"/api/v1/contracts/{contract_id}/parties/{party_id}/code", headers=env.auth(signer)
    )
    assert requested.status_code == 200, requested.get_data(as_text=True)
    code = env.codes_mailed_to(email)[-1]
    signed = env.client().post(
        f"/api/v1/contracts/{contract_id}/parties/{party_id}/sign",
        json={"code": code},
        headers={**env.auth(signer), "Idempotency-Key": f"sign-{contract_id}-{party_id}"},
    )
    assert signed.status_code == 200, signed.get_data(as_text=True)
    answer = dict(signed.get_json())
    wait_for_work_left()  # what the app left for after the answer (the certificate of completion)
    return answer, code


@pytest.mark.parametrize("routing", ["sequential", "parallel"])
def test_two_people_and_a_seal_sign_through_the_api(api_env: ApiEnv, routing: str, tmp_path: Path) -> None:
    env = api_env
    for person in ("alice", "dave"):
        _ensure_certificate(env, person)
    seal_id = _new_seal(env)
    created = env.create_contract("bob", pdf=make_pdf(pages=2), title="采购合同 Purchase", routing=routing)
    assert created.status_code == 201, created.get_data(as_text=True)
    contract_id = created.get_json()["id"]
    parties = [
        {"kind": "person", "username": "dave", "fields": [FIELD], "routing_order": 1},
        {"kind": "person", "username": "alice", "fields": [FIELD | {"page": 2}], "routing_order": 2},
        {"kind": "seal", "seal_id": seal_id, "fields": [FIELD | {"x": 300}], "routing_order": 3},
    ]
    for party in parties:
        added = env.client().post(
            f"/api/v1/contracts/{contract_id}/parties", json=party, headers=env.auth("bob")
        )
        assert added.status_code == 201, added.get_data(as_text=True)
    sent = env.client().post(f"/api/v1/contracts/{contract_id}/send", headers=env.auth("bob")).get_json()
    ids = [p["id"] for p in sent["parties"]]
    order = [("dave", ids[0]), ("alice", ids[1]), ("alice", ids[2])]
    if routing == "sequential":
        early = env.client().post(
            f"/api/v1/contracts/{contract_id}/parties/{ids[1]}/code", headers=env.auth("alice")
        )
        assert_problem(early, 409, "not_your_turn")
    else:
        order.reverse()  # in parallel the seal may go first
    for signer, party_id in order:
        contract, code = _sign(env, signer, contract_id, party_id)
    assert contract["state"] == "completed"
    assert not contract["has_completion_certificate"]  # made after the last signer's answer
    retried = env.client().post(
        f"/api/v1/contracts/{contract_id}/parties/{order[-1][1]}/sign",
        json={"code": code},
        headers={**env.auth(order[-1][0]), "Idempotency-Key": f"sign-{contract_id}-{order[-1][1]}"},
    )
    # the retry of the last call gets its first answer; it does not sign again
    assert retried.status_code == 200 and retried.get_json() == contract

    final = env.client().get(f"/api/v1/contracts/{contract_id}/documents/current", headers=env.auth("bob"))
    assert final.status_code == 200 and final.mimetype == "application/pdf"
    check_signed_contract(env.services, final.get_data(), 3, tmp_path)
    completion = env.client().get(
        f"/api/v1/contracts/{contract_id}/documents/completion", headers=env.auth("dave")
    )
    assert completion.status_code == 200 and completion.get_data().startswith(b"%PDF")
    shown = env.client().get(f"/api/v1/contracts/{contract_id}", headers=env.auth("bob")).get_json()
    assert shown["has_completion_certificate"]
    evidence = (
        env.client().get(f"/api/v1/contracts/{contract_id}/evidence", headers=env.auth("bob")).get_json()
    )
    actions = [e["action"] for e in evidence["items"]]
    assert actions.count("signed") == 3 and actions.count("code_sent") == 3 and "completed" in actions
