"""Certificates through /api/v1: the agreement, a personal certificate made in the HSM on
consent, and an organisation's seal with its certificate (org admins only)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from tests.api.conftest import ApiEnv, assert_problem


def consent_to(api: ApiEnv, who: str, locale: str | None = None) -> dict[str, str]:
    query = {"locale": locale} if locale else {}
    response = api.client().get("/api/v1/certificates/agreement", query_string=query, headers=api.auth(who))
    assert response.status_code == 200, response.get_data(as_text=True)
    agreement: dict[str, Any] = response.get_json()
    assert agreement["sha256"] == hashlib.sha256(agreement["text"].encode()).hexdigest()
    return {
        "agreement_version": agreement["version"],
        "agreement_sha256": agreement["sha256"],
        "locale": agreement["locale"],
    }


def test_the_agreement_comes_in_english_and_chinese(api_env: ApiEnv) -> None:
    english, chinese = consent_to(api_env, "bob"), consent_to(api_env, "bob", "zh_Hans_CN")

    assert (english["locale"], chinese["locale"]) == ("en", "zh_Hans_CN")
    assert english["agreement_version"] == chinese["agreement_version"]
    assert english["agreement_sha256"] != chinese["agreement_sha256"]


def test_a_person_gets_a_certificate_once_they_consent(api_env: ApiEnv) -> None:
    client, dave = api_env.client(), api_env.auth("dave")
    assert client.get("/api/v1/certificates/mine", headers=dave).get_json() == {
        "certificate": None,
        "renewable_from": None,
        "outdated": False,
    }
    stale = {**consent_to(api_env, "dave"), "agreement_version": "2000-01-01"}
    assert_problem(client.post("/api/v1/certificates/mine", json=stale, headers=dave), 409, "conflict")

    issued = client.post(
        "/api/v1/certificates/mine", json=consent_to(api_env, "dave", "zh_Hans_CN"), headers=dave
    )

    assert issued.status_code == 201, issued.get_data(as_text=True)
    certificate = issued.get_json()
    assert (certificate["kind"], certificate["status"]) == ("person", "active")
    assert "Dave Zhou" in certificate["subject"]
    mine = client.get("/api/v1/certificates/mine", headers=dave).get_json()
    assert mine["certificate"] == certificate and mine["outdated"] is False
    # renewal opens 30 days before expiry
    expires = datetime.fromisoformat(certificate["not_after"])
    assert datetime.fromisoformat(mine["renewable_from"]) == expires - timedelta(days=30)
    again = client.post("/api/v1/certificates/mine", json=consent_to(api_env, "dave"), headers=dave)
    assert_problem(again, 409, "conflict")


def test_an_org_admin_makes_a_seal_and_its_certificate(api_env: ApiEnv) -> None:
    client, alice, bob = api_env.client(), api_env.auth("alice"), api_env.auth("bob")
    assert_problem(client.post("/api/v1/seals", json={"name": "Sales seal"}, headers=bob), 403, "forbidden")

    created = client.post("/api/v1/seals", json={"name": "Finance contracts seal"}, headers=alice)
    assert created.status_code == 201, created.get_data(as_text=True)
    path = f"/api/v1/seals/{created.get_json()['id']}/certificate"
    issued = client.post(path, json=consent_to(api_env, "alice"), headers=alice)

    assert issued.status_code == 201, issued.get_data(as_text=True)
    certificate = issued.get_json()
    assert (certificate["kind"], certificate["status"]) == ("organisation", "active")
    assert "Finance contracts seal" in certificate["subject"]
    assert_problem(client.post(path, json=consent_to(api_env, "alice"), headers=alice), 409, "conflict")
