"""What the API refuses, on every endpoint: no token, malformed requests, ids that name
nothing, and other people's contracts (which must look exactly like ids that name nothing).
Every refusal is an application/problem+json with a stable code, never a server error."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from werkzeug.test import TestResponse

from appliance.web.api.transport import JSON_BODY_LIMIT
from tests.api.conftest import FIELD, ApiEnv, assert_problem
from tests.fixtures.pdfs import encrypted_pdf, make_pdf

REASON = {"reason": "The terms changed."}
# method, path, a valid JSON body (None: the endpoint takes none)
ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/contracts", None),
    ("GET", "/contracts/{c}", None),
    ("POST", "/contracts/{c}/parties", {"kind": "person", "username": "alice", "fields": [FIELD]}),
    ("DELETE", "/contracts/{c}/parties/{p}", None),
    ("POST", "/contracts/{c}/send", None),
    ("POST", "/contracts/{c}/parties/{p}/code", None),
    ("POST", "/contracts/{c}/parties/{p}/sign", {"code": "123456"}),
    ("POST", "/contracts/{c}/parties/{p}/reject", REASON),
    ("POST", "/contracts/{c}/withdraw", REASON),
    ("POST", "/contracts/{c}/remind", None),
    ("POST", "/contracts/{c}/void", REASON),
    ("POST", "/contracts/{c}/end", REASON),
    ("GET", "/contracts/{c}/documents/original", None),
    ("GET", "/contracts/{c}/documents/current", None),
    ("GET", "/contracts/{c}/documents/completion", None),
    ("GET", "/contracts/{c}/evidence", None),
    ("GET", "/certificates/agreement", None),
    ("GET", "/certificates/mine", None),
    ("POST", "/certificates/mine", {"agreement_version": "v", "agreement_sha256": "0" * 64, "locale": "en"}),
    ("POST", "/seals", {"name": "Finance seal"}),
    (
        "POST",
        "/seals/{s}/certificate",
        {"agreement_version": "v", "agreement_sha256": "0" * 64, "locale": "en"},
    ),
]
CONTRACT_ROUTES = [r for r in ROUTES if "{c}" in r[1]]
JSON_ROUTES = [r for r in ROUTES if r[2] is not None]
ID_ROUTES = [r for r in ROUTES if "{" in r[1]]
BAD_IDS = ["0", "-1", str(2**31), str(10**30), "abc", "1.5", "%F0%9F%98%80"]


def call(
    api: ApiEnv,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    *,
    who: str | None = None,
    ids: dict[str, object] | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> TestResponse:
    values = {"c": 1, "p": 1, "s": 1, **(ids or {})}
    url = "/api/v1" + path.format(**values)
    sent = {**(api.auth(who) if who else {}), **(headers or {})}
    if body is not None and "data" not in kwargs:
        kwargs["json"] = body
    return api.client().open(url, method=method, headers=sent, **kwargs)


@pytest.mark.parametrize(("method", "path", "body"), [*ROUTES, ("POST", "/contracts", None)])
@pytest.mark.parametrize(
    "authorization", [None, "Bearer esk_not-a-token", "Bearer ", "Basic Ym9iOmJvYi1TZWNyZXQtMQ=="]
)
def test_every_endpoint_needs_a_token(
    api_env: ApiEnv, method: str, path: str, body: dict[str, Any] | None, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    # a malformed body too: a caller without a token learns nothing, not even what is wrong with it
    response = call(api_env, method, path, None, headers=headers, data="{not json", content_type="text/plain")

    assert_problem(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="appliance"'


def test_a_revoked_token_is_refused(api_env: ApiEnv) -> None:
    issued = api_env.client().post(
        "/api/v1/auth/tokens", json={"username": "dave", "password": "dave-Secret-1", "name": "short-lived"}
    )
    token = {"Authorization": f"Bearer {issued.get_json()['token']}"}
    assert api_env.client().get("/api/v1/certificates/mine", headers=token).status_code == 200
    assert api_env.client().delete("/api/v1/auth/tokens/current", headers=token).status_code == 204

    assert_problem(api_env.client().get("/api/v1/certificates/mine", headers=token), 401, "unauthenticated")


@pytest.mark.parametrize(("method", "path", "body"), ID_ROUTES)
@pytest.mark.parametrize("bad", BAD_IDS)
def test_ids_that_are_not_positive_32_bit_integers_name_nothing(
    api_env: ApiEnv, method: str, path: str, body: dict[str, Any] | None, bad: str
) -> None:
    for name in ("c", "p", "s"):
        if "{" + name + "}" in path:
            assert_problem(call(api_env, method, path, body, who="bob", ids={name: bad}), 404, "http_404")


@pytest.mark.parametrize(("method", "path", "body"), JSON_ROUTES)
@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        ('{"reason": ', "application/json", 400),  # cut short
        ("", "application/json", 400),
        ("null", "application/json", 400),
        ('["reason"]', "application/json", 400),
        ("[" * 100_000 + "]" * 100_000, "application/json", 400),  # deeper than the parser goes
        ('{"reason": NaN, "code": Infinity}', "application/json", 400),
        ('{"unexpected": true}', "application/json", 400),
        (json.dumps(REASON), "text/plain", 415),
        ("reason=x", "application/x-www-form-urlencoded", 415),
    ],
)
def test_malformed_json_bodies_are_refused(
    api_env: ApiEnv,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    data: str,
    content_type: str,
    status: int,
) -> None:
    response = call(api_env, method, path, None, who="bob", data=data, content_type=content_type)
    code = "invalid_input" if status == 400 else f"http_{status}"
    assert_problem(response, status, code)


@pytest.mark.parametrize(
    ("path", "body", "member"),
    [
        ("/contracts/{c}/parties", {"kind": "person", "username": 7, "fields": [FIELD]}, "username"),
        ("/contracts/{c}/parties", {"kind": "person", "username": "alice", "fields": "all"}, "fields"),
        ("/contracts/{c}/parties", {"kind": "person", "username": "alice", "fields": []}, "fields"),
        ("/contracts/{c}/parties", {"kind": "robot", "username": "alice", "fields": [FIELD]}, "kind"),
        (
            "/contracts/{c}/parties",
            {"kind": "person", "username": "alice", "fields": [{**FIELD, "page": "1"}]},
            "fields.0.page",
        ),
        (
            "/contracts/{c}/parties",
            {"kind": "person", "username": "alice", "fields": [{**FIELD, "width": True}]},
            "fields.0.width",
        ),
        (
            "/contracts/{c}/parties",
            {"kind": "seal", "seal_id": 2**40, "fields": [FIELD]},
            "seal_id",
        ),
        (
            "/contracts/{c}/parties",
            {"kind": "person", "username": "al\x00ice", "fields": [FIELD]},
            "username",
        ),
        ("/contracts/{c}/parties/{p}/sign", {"code": 123456}, "code"),
        ("/contracts/{c}/parties/{p}/sign", {"code": "12345"}, "code"),
        ("/contracts/{c}/parties/{p}/sign", {"code": "١٢٣٤٥٦"}, "code"),  # Arabic-Indic digits
        ("/contracts/{c}/withdraw", {"reason": ""}, "reason"),
        ("/contracts/{c}/withdraw", {"reason": "x" * 1001}, "reason"),
        ("/contracts/{c}/withdraw", {"reason": "\ud800"}, "reason"),
        ("/contracts/{c}/end", {"reason": ["x"]}, "reason"),
        (
            "/certificates/mine",
            {"agreement_version": "v", "agreement_sha256": "AB", "locale": "en"},
            "agreement_sha256",
        ),
        ("/seals", {"name": 64}, "name"),
        ("/seals", {}, "name"),
    ],
)
def test_bodies_of_the_wrong_shape_say_what_is_wrong(
    api_env: ApiEnv, path: str, body: dict[str, Any], member: str
) -> None:
    problem = assert_problem(call(api_env, "POST", path, body, who="bob"), 400, "invalid_input")
    assert f"{member}:" in problem["detail"]


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "ten"},
        {"state": "lost"},
        {"role": "everyone"},
        {"created_from": "yesterday"},
        {"created_from": "2026-01-01T00:00:00"},  # no time zone
        {"title": "x" * 301},
        {"colour": "blue"},
        {"cursor": "not a cursor"},
        {"cursor": "YzA"},  # c0
    ],
)
def test_list_filters_that_make_no_sense_are_refused(api_env: ApiEnv, query: dict[str, str]) -> None:
    response = api_env.client().get("/api/v1/contracts", query_string=query, headers=api_env.auth("bob"))
    assert_problem(response, 400, "invalid_input")


def test_a_cursor_past_the_largest_id_is_refused(api_env: ApiEnv) -> None:
    cursor = base64.urlsafe_b64encode(f"c{10**30}".encode()).decode().rstrip("=")
    response = api_env.client().get(
        "/api/v1/contracts", query_string={"cursor": cursor}, headers=api_env.auth("bob")
    )
    assert_problem(response, 400, "invalid_input")


def _upload(api: ApiEnv, form: dict[str, Any]) -> TestResponse:
    return api.client().post(
        "/api/v1/contracts", data=form, headers=api.auth("bob"), content_type="multipart/form-data"
    )


def _pdf(data: bytes | None = None, name: str = "contract.pdf") -> tuple[io.BytesIO, str, str]:
    return io.BytesIO(make_pdf() if data is None else data), name, "application/pdf"


@pytest.mark.parametrize(
    ("form", "status", "code"),
    [
        ({"title": "No file"}, 400, "invalid_input"),
        ({"title": "File as text", "file": "%PDF-1.7"}, 400, "invalid_input"),
        ({"file": "pdf"}, 400, "invalid_input"),  # no title
        ({"title": "", "file": "pdf"}, 400, "invalid_input"),
        ({"title": "Routing", "routing": "random", "file": "pdf"}, 400, "invalid_input"),
        ({"title": "Naive deadline", "deadline": "2030-01-01T00:00:00", "file": "pdf"}, 400, "invalid_input"),
        ({"title": "Past deadline", "deadline": "2001-01-01T00:00:00Z", "file": "pdf"}, 400, "invalid_input"),
        ({"title": "Extra", "colour": "blue", "file": "pdf"}, 400, "invalid_input"),
        ({"title": "Not a PDF", "file": b"GIF89a\x01\x00"}, 422, "upload_not_pdf"),
        ({"title": "Empty", "file": b""}, 422, "upload_not_pdf"),
        ({"title": "Encrypted", "file": "encrypted"}, 422, "upload_encrypted"),
        # the initiator's confirmation that the law allows signing it electronically
        ({"title": "Not confirmed", "not_excluded": None, "file": "pdf"}, 400, "invalid_input"),
        ({"title": "Excluded kind", "not_excluded": "false", "file": "pdf"}, 400, "invalid_input"),
    ],
)
def test_uploads_that_cannot_become_a_contract_are_refused(
    api_env: ApiEnv, form: dict[str, Any], status: int, code: str
) -> None:
    form = {k: v for k, v in {"not_excluded": "true", **form}.items() if v is not None}
    if form.get("file") == "pdf":
        form = {**form, "file": _pdf()}
    elif form.get("file") == "encrypted":
        form = {**form, "file": _pdf(encrypted_pdf())}
    elif isinstance(form.get("file"), bytes):
        form = {**form, "file": _pdf(form["file"], "picture.pdf")}
    assert_problem(_upload(api_env, form), status, code)


def test_an_upload_as_json_is_refused(api_env: ApiEnv) -> None:
    response = api_env.client().post(
        "/api/v1/contracts", json={"title": "JSON", "file": "JVBERi0="}, headers=api_env.auth("bob")
    )
    assert_problem(response, 415, "http_415")


def test_a_bad_idempotency_key_is_refused(api_env: ApiEnv) -> None:
    for key in ("x" * 201, " leading-space"):
        response = call(
            api_env,
            "POST",
            "/contracts/{c}/parties/{p}/sign",
            {"code": "123456"},
            who="bob",
            headers={"Idempotency-Key": key},
        )
        assert "Idempotency-Key" in assert_problem(response, 400, "invalid_input")["detail"]


@pytest.mark.parametrize(("method", "path", "body"), CONTRACT_ROUTES)
def test_someone_elses_contract_looks_like_no_contract(
    api_env: ApiEnv, method: str, path: str, body: dict[str, Any] | None
) -> None:
    """dave (Finance) is no party to bob's (Sales) contract and reads no Sales contracts."""
    contract = api_env.sent("bob", "alice")
    party_id = contract["parties"][0]["id"]
    evidence_before = _evidence(api_env, contract["id"])

    theirs = call(api_env, method, path, body, who="dave", ids={"c": contract["id"], "p": party_id})
    missing = call(api_env, method, path, body, who="dave", ids={"c": 2**31 - 1, "p": 2**31 - 1})

    assert_problem(missing, 404, "not_found")
    assert (theirs.status_code, theirs.get_json()) == (missing.status_code, missing.get_json())
    assert _evidence(api_env, contract["id"]) == evidence_before  # and the attempt changed nothing


def test_someone_elses_contracts_are_not_listed(api_env: ApiEnv) -> None:
    contract = api_env.sent("bob", "alice")
    for who, sees in (("bob", True), ("alice", True), ("dave", False)):
        listed = (
            api_env.client()
            .get("/api/v1/contracts", query_string={"limit": 100}, headers=api_env.auth(who))
            .get_json()
        )
        assert (contract["id"] in [i["id"] for i in listed["items"]]) is sees, who


def test_someone_elses_seal_looks_like_no_seal(api_env: ApiEnv) -> None:
    created = api_env.client().post(
        "/api/v1/seals", json={"name": "Finance seal"}, headers=api_env.auth("alice")
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    agreement = api_env.client().get("/api/v1/certificates/agreement", headers=api_env.auth("bob")).get_json()
    # a consent that would be accepted: what is refused is the seal
    consent = {
        "agreement_version": agreement["version"],
        "agreement_sha256": agreement["sha256"],
        "locale": "en",
    }

    theirs = call(
        api_env, "POST", "/seals/{s}/certificate", consent, who="bob", ids={"s": created.get_json()["id"]}
    )
    missing = call(api_env, "POST", "/seals/{s}/certificate", consent, who="bob", ids={"s": 2**31 - 1})

    assert_problem(missing, 404, "not_found")
    assert (theirs.status_code, theirs.get_json()) == (missing.status_code, missing.get_json())


def _evidence(api: ApiEnv, contract_id: int) -> list[str]:
    items = api.client().get(f"/api/v1/contracts/{contract_id}/evidence", headers=api.auth("bob")).get_json()
    return [e["hash"] for e in items["items"]]


def test_a_json_body_over_the_limit_is_refused_with_413(api_env: ApiEnv) -> None:
    big = json.dumps({"reason": "x" * (JSON_BODY_LIMIT + 1)})
    response = call(
        api_env, "POST", "/contracts/{c}/withdraw", None, who="bob", data=big, content_type="application/json"
    )
    assert_problem(response, 413, "http_413")
