"""The contract workflow through /api/v1: a draft up to "sent", a verification code that
arrives by mail, downloads, lists, idempotent creation and the upload limits."""

from __future__ import annotations

import hashlib
import itertools
from urllib.parse import quote

import pytest

from appliance.web.files import attachment_disposition
from tests.api.conftest import FIELD, MAX_UPLOAD, ApiEnv, assert_problem
from tests.fixtures.pdfs import make_pdf


def test_a_draft_goes_out_for_signing(api_env: ApiEnv) -> None:
    client, bob, alice = api_env.client(), api_env.auth("bob"), api_env.auth("alice")

    created = api_env.create_contract("bob", title="Supply agreement 2027", routing="sequential")
    assert created.status_code == 201, created.get_data(as_text=True)
    contract = created.get_json()
    assert contract["state"] == "draft"
    assert contract["title"] == "Supply agreement 2027"
    assert contract["parties"] == []
    assert [v["number"] for v in contract["versions"]] == [1]
    assert contract["page_sizes"] == [{"width": 595.0, "height": 842.0}]
    path = f"/api/v1/contracts/{contract['id']}"

    added = client.post(
        f"{path}/parties", json={"kind": "person", "username": "alice", "fields": [FIELD]}, headers=bob
    )
    assert added.status_code == 201, added.get_data(as_text=True)
    (party,) = added.get_json()["parties"]
    assert (party["kind"], party["name"], party["status"]) == ("person", "Alice Liu", "waiting")
    assert party["fields"] == [{"id": party["fields"][0]["id"], **FIELD}]
    assert party["yours"] is False

    sent = client.post(f"{path}/send", headers=bob)
    assert sent.status_code == 200, sent.get_data(as_text=True)
    assert sent.get_json()["state"] == "signing"

    as_alice = client.get(path, headers=alice)
    assert as_alice.status_code == 200
    assert as_alice.get_json()["your_turn"] == [party["id"]]
    todo = client.get("/api/v1/contracts", query_string={"role": "to_sign"}, headers=alice).get_json()
    assert contract["id"] in [item["id"] for item in todo["items"]]
    evidence = client.get(f"{path}/evidence", headers=bob).get_json()["items"]
    assert [e["action"] for e in evidence][:3] == ["created", "party_added", "sent"]
    assert all(later["prev_hash"] == earlier["hash"] for earlier, later in itertools.pairwise(evidence))


def test_a_code_request_is_mailed_to_the_signer(api_env: ApiEnv) -> None:
    contract = api_env.sent("bob", "alice")
    (party,) = contract["parties"]
    before = len(api_env.codes_mailed_to("alice@example.org"))

    response = api_env.client().post(
        f"/api/v1/contracts/{contract['id']}/parties/{party['id']}/code", headers=api_env.auth("alice")
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    sent = response.get_json()
    assert sent["channel"] == "email"
    assert "alice@example.org" not in sent["destination"]  # masked
    codes = api_env.codes_mailed_to("alice@example.org")
    assert len(codes) == before + 1
    assert len(codes[-1]) == api_env.services.config.codes.digits


def test_only_the_signer_may_ask_for_their_code(api_env: ApiEnv) -> None:
    contract = api_env.sent("bob", "alice")
    (party,) = contract["parties"]
    path = f"/api/v1/contracts/{contract['id']}/parties/{party['id']}/code"

    assert_problem(api_env.client().post(path, headers=api_env.auth("bob")), 403, "forbidden")


def test_downloads_are_pdf_attachments_named_and_tagged_by_hash(api_env: ApiEnv) -> None:
    pdf = make_pdf(text="Framework agreement")
    created = api_env.create_contract("bob", pdf=pdf, filename="框架协议 2027.pdf").get_json()
    version = created["versions"][0]

    response = api_env.client().get(
        f"/api/v1/contracts/{created['id']}/documents/original", headers=api_env.auth("bob")
    )

    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    body = response.get_data()
    assert body.startswith(b"%PDF-")
    assert hashlib.sha256(body).hexdigest() == version["sha256"]
    assert response.headers["ETag"] == f'"{version["sha256"]}"'
    assert int(response.headers["Content-Length"]) == len(body) == version["size"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Disposition"] == (
        f"attachment; filename=\"2027.pdf\"; filename*=UTF-8''{quote('框架协议 2027.pdf', safe='')}"
    )
    current = api_env.client().get(
        f"/api/v1/contracts/{created['id']}/documents/current", headers=api_env.auth("bob")
    )
    assert current.get_data() == body
    no_certificate = api_env.client().get(
        f"/api/v1/contracts/{created['id']}/documents/completion", headers=api_env.auth("bob")
    )
    assert_problem(no_certificate, 404, "not_found")
    actions = [
        e["action"]
        for e in api_env.client()
        .get(f"/api/v1/contracts/{created['id']}/evidence", headers=api_env.auth("bob"))
        .get_json()["items"]
    ]
    assert actions.count("downloaded") == 2


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("contract.pdf", 'attachment; filename="contract.pdf"'),
        ("Supply agreement (2027).pdf", 'attachment; filename="Supply agreement (2027).pdf"'),
        ('a"b\\c/d\r\n.pdf', 'attachment; filename="abcd.pdf"'),
        (
            "Vertrag für Müller.pdf",
            'attachment; filename="Vertrag fur Muller.pdf"; '
            "filename*=UTF-8''Vertrag%20f%C3%BCr%20M%C3%BCller.pdf",
        ),
        ("合同.pdf", "attachment; filename=\"contract.pdf\"; filename*=UTF-8''%E5%90%88%E5%90%8C.pdf"),
        ("...", 'attachment; filename="contract.pdf"'),
        ("evil\u202egnp.pdf", 'attachment; filename="evilgnp.pdf"'),
    ],
)
def test_download_names_are_sanitised(name: str, header: str) -> None:
    assert attachment_disposition(name) == header


def test_lists_come_a_page_at_a_time(api_env: ApiEnv) -> None:
    title = f"Paged {hashlib.sha256(api_env.tokens['dave'].encode()).hexdigest()[:8]}"
    ids = [api_env.create_contract("bob", title=title).get_json()["id"] for _ in range(3)]
    client, bob = api_env.client(), api_env.auth("bob")

    first = client.get("/api/v1/contracts", query_string={"title": title, "limit": 2}, headers=bob).get_json()
    second = client.get(
        "/api/v1/contracts",
        query_string={"title": title, "limit": 2, "cursor": first["next_cursor"]},
        headers=bob,
    ).get_json()

    assert [i["id"] for i in first["items"]] == ids[::-1][:2]
    assert [i["id"] for i in second["items"]] == ids[:1]
    assert second["next_cursor"] is None
    assert {i["state"] for i in first["items"]} == {"draft"}
    drafts = client.get("/api/v1/contracts", query_string={"title": title, "state": "signing"}, headers=bob)
    assert drafts.get_json()["items"] == []


def test_a_retried_create_returns_the_same_contract(api_env: ApiEnv) -> None:
    key = {"Idempotency-Key": f"create-{hashlib.sha256(api_env.tokens['bob'].encode()).hexdigest()[:12]}"}
    pdf = make_pdf(text="Retried")

    first = api_env.create_contract("bob", pdf=pdf, title="Retried", headers=key)
    retry = api_env.create_contract("bob", pdf=pdf, title="Retried", headers=key)
    other = api_env.create_contract("bob", pdf=pdf, title="Another title", headers=key)

    assert first.status_code == 201
    assert retry.status_code == 201
    assert retry.get_json() == first.get_json()
    assert_problem(other, 422, "idempotency_key_reused")


def test_an_upload_over_the_limit_is_refused_with_413(api_env: ApiEnv) -> None:
    # over the request limit: werkzeug stops reading
    huge = api_env.create_contract("bob", pdf=make_pdf(payload_bytes=MAX_UPLOAD * 2))
    assert_problem(huge, 413, "http_413")
    # within the request limit (it leaves room for the form) but over uploads.max_bytes
    just_over = make_pdf(payload_bytes=MAX_UPLOAD + 4096)
    assert MAX_UPLOAD < len(just_over) < MAX_UPLOAD + 32 * 1024
    assert_problem(api_env.create_contract("bob", pdf=just_over), 413, "upload_too_large")


def test_a_retried_signature_returns_the_first_answer(api_env: ApiEnv) -> None:
    """The sign view's Idempotency-Key: the same request again is answered from the first
    time, and the key with another body is refused (the full signing flows are tested elsewhere)."""
    client, dave = api_env.client(), api_env.auth("dave")
    if client.get("/api/v1/certificates/mine", headers=dave).get_json()["certificate"] is None:
        agreement = client.get("/api/v1/certificates/agreement", headers=dave).get_json()
        consent = {
            "agreement_version": agreement["version"],
            "agreement_sha256": agreement["sha256"],
            "locale": "en",
        }
        assert client.post("/api/v1/certificates/mine", json=consent, headers=dave).status_code == 201
    contract = api_env.sent("bob", "dave")
    path = f"/api/v1/contracts/{contract['id']}/parties/{contract['parties'][0]['id']}"
    assert client.post(f"{path}/code", headers=dave).status_code == 200
    code = api_env.codes_mailed_to("dave@example.org")[-1]
    key = {**dave, "Idempotency-Key": f"sign-{contract['id']}"}

    signed = client.post(f"{path}/sign", json={"code": code}, headers=key)
    retried = client.post(f"{path}/sign", json={"code": code}, headers=key)
    other = client.post(
        f"{path}/sign", json={"code": "000000" if code != "000000" else "111111"}, headers=key
    )

    assert signed.status_code == 200, signed.get_data(as_text=True)
    assert signed.get_json()["state"] == "completed"
    assert (retried.status_code, retried.get_json()) == (200, signed.get_json())
    assert_problem(other, 422, "idempotency_key_reused")
    versions = client.get(f"/api/v1/contracts/{contract['id']}", headers=dave).get_json()["versions"]
    assert len(versions) == 2  # signed once
