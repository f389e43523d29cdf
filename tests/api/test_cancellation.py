"""A directory person cancels their account through the API: refused while a contract waits for
them, confirmed with the mailed code; afterwards their token and password open nothing, and
what others read (the contract, its evidence, the lists, the people search) holds
their pseudonym instead of their name, login name, e-mail address or phone number."""

from __future__ import annotations

from tests.api.conftest import ApiEnv, DirectoryPerson, assert_problem, password_of

PHONE = "13912345678"


def test_a_person_cancels_their_account_and_nothing_of_them_is_retrievable(
    api_env: ApiEnv, directory_person: DirectoryPerson
) -> None:
    uid, name = directory_person("leaver", phone=PHONE)
    client = api_env.client()
    password = {"username": uid, "password": password_of(uid), "name": "phone"}
    issued = client.post("/api/v1/auth/tokens", json=password)
    assert issued.status_code == 201, issued.get_data(as_text=True)
    mine = {"Authorization": f"Bearer {issued.get_json()['token']}"}
    contract = api_env.sent("bob", party=uid)
    party = contract["parties"][0]["id"]

    check = client.get("/api/v1/me/cancellation", headers=mine).get_json()
    assert check["blockers"] == [
        {"kind": "to_sign", "contract_id": contract["id"], "title": contract["title"]}
    ]
    assert_problem(client.post("/api/v1/me/cancellation", headers=mine), 409, "cancellation_blocked")
    rejected = client.post(
        f"/api/v1/contracts/{contract['id']}/parties/{party}/reject",
        json={"reason": "I am leaving the company."},
        headers=mine,
    )
    assert rejected.status_code == 200, rejected.get_data(as_text=True)
    assert client.get("/api/v1/me/cancellation", headers=mine).get_json()["blockers"] == []
    before = client.get(f"/api/v1/contracts/{contract['id']}/evidence", headers=api_env.auth("bob"))
    # what the scan below must no longer find
    assert name in before.get_data(as_text=True)
    assert name in client.get(
        "/api/v1/people", query_string={"q": name}, headers=api_env.auth("bob")
    ).get_data(as_text=True)

    started = client.post("/api/v1/me/cancellation", headers=mine)
    assert started.status_code == 201, started.get_data(as_text=True)
    assert started.get_json()["destination"] != f"{uid}@example.org"
    code = api_env.codes_mailed_to(f"{uid}@example.org")[-1]
    wrong = f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"
    confirm = "/api/v1/me/cancellation/confirm"
    assert_problem(client.post(confirm, json={"email_code": wrong}, headers=mine), 400, "otp_wrong")
    cancelled = client.post(confirm, json={"email_code": code}, headers=mine)
    assert cancelled.status_code == 200, cancelled.get_data(as_text=True)
    pseudonym = cancelled.get_json()["pseudonym"]

    assert_problem(client.get("/api/v1/me/cancellation", headers=mine), 401)
    assert_problem(client.post("/api/v1/auth/tokens", json=password), 401)

    bob = api_env.auth("bob")
    answers = [
        client.get(f"/api/v1/contracts/{contract['id']}", headers=bob),
        client.get(f"/api/v1/contracts/{contract['id']}/evidence", headers=bob),
        client.get(f"/api/v1/contracts?party={uid}", headers=bob),
        client.get("/api/v1/people", query_string={"q": name}, headers=bob),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.get_data(as_text=True)
        text = answer.get_data(as_text=True)
        for value in (name, uid, PHONE, f"{uid}@example.org"):
            assert value not in text, (answer.request.path, value)
    assert pseudonym in answers[1].get_data(as_text=True)
