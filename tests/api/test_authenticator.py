"""/api/v1/authenticator: adding an authenticator app takes the code e-mailed to you (a token
alone cannot), and then, on an appliance with `codes.channel: totp`, signing codes come from
the app until it is removed.

The shared API environment mails codes; the tests that need authenticator apps run its
workflow with `codes.channel: totp` and on a FakeClock (starting at the real time), so which
time step an app's code belongs to is the test's choice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pyotp
import pytest

from appliance.config import CodeChannel, CodesConfig
from tests.api.conftest import ApiEnv, assert_problem
from tests.fakes.clock import FakeClock

PATH = "/api/v1/authenticator"
ALICE_MAIL = "alice@example.org"
STEP = timedelta(seconds=30)


@pytest.fixture
def totp_clock(api_env: ApiEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    """The API's workflow with authenticator apps on, for this test; alice has none afterwards."""
    clock = FakeClock()
    workflow = api_env.services.workflow
    codes = CodesConfig(channel=CodeChannel.TOTP)
    config = workflow.config.model_copy(update={"codes": codes})
    monkeypatch.setattr(api_env.services, "workflow", replace(workflow, config=config, clock=clock))
    yield clock
    api_env.client().delete(PATH, headers=api_env.auth("alice"))


def give_certificate(api: ApiEnv, who: str) -> None:
    client, headers = api.client(), api.auth(who)
    if client.get("/api/v1/certificates/mine", headers=headers).get_json()["certificate"] is not None:
        return
    agreement = client.get("/api/v1/certificates/agreement", headers=headers).get_json()
    consent = {
        "agreement_version": agreement["version"],
        "agreement_sha256": agreement["sha256"],
        "locale": "en",
    }
    assert client.post("/api/v1/certificates/mine", json=consent, headers=headers).status_code == 201


def mails_to_alice(api: ApiEnv) -> int:
    return sum(1 for message in api.smtp.received if message["To"] == ALICE_MAIL)


def test_the_app_is_added_only_with_the_emailed_code_and_then_signs(
    api_env: ApiEnv, totp_clock: FakeClock
) -> None:
    client, alice = api_env.client(), api_env.auth("alice")
    give_certificate(api_env, "alice")
    first, second = api_env.sent("bob", "alice"), api_env.sent("bob", "alice")
    assert client.get(PATH, headers=alice).get_json() == {"enrolled": False, "confirmed_at": None}

    started = client.post(PATH, headers=alice)
    assert started.status_code == 201, started.get_data(as_text=True)
    assert started.headers["Cache-Control"] == "no-store"  # it carries the app's secret
    enrolment: dict[str, Any] = started.get_json()
    assert enrolment["destination"] == "a***@example.org"
    assert enrolment["provisioning_uri"].startswith("otpauth://totp/")
    assert f"secret={enrolment['secret']}" in enrolment["provisioning_uri"]
    email_code = api_env.codes_mailed_to(ALICE_MAIL)[-1]
    totp = pyotp.TOTP(enrolment["secret"])
    app_code = totp.at(totp_clock.now())
    other_code = f"{(int(email_code) + 1) % 10 ** len(email_code):0{len(email_code)}d}"

    # the token and the secret it was given are not enough
    only_app = client.post(f"{PATH}/confirm", json={"authenticator_code": app_code}, headers=alice)
    assert "email_code" in assert_problem(only_app, 400, "invalid_input")["detail"]
    wrong = client.post(
        f"{PATH}/confirm", json={"email_code": other_code, "authenticator_code": app_code}, headers=alice
    )
    assert "e-mail" in assert_problem(wrong, 400, "otp_wrong")["detail"]
    assert client.get(PATH, headers=alice).get_json()["enrolled"] is False

    confirmed = client.post(
        f"{PATH}/confirm", json={"email_code": email_code, "authenticator_code": app_code}, headers=alice
    )
    assert confirmed.status_code == 200, confirmed.get_data(as_text=True)
    assert confirmed.get_json()["enrolled"] is True and confirmed.get_json()["confirmed_at"]
    assert client.get(PATH, headers=alice).get_json() == confirmed.get_json()
    assert_problem(client.post(PATH, headers=alice), 409, "conflict")

    totp_clock.advance(STEP)  # the confirming code's time step is used up
    mails = mails_to_alice(api_env)
    party = f"/api/v1/contracts/{first['id']}/parties/{first['parties'][0]['id']}"
    sent = client.post(f"{party}/code", headers=alice)
    assert sent.status_code == 200, sent.get_data(as_text=True)
    assert (sent.get_json()["channel"], sent.get_json()["destination"]) == ("totp", "authenticator app")
    code = totp.at(totp_clock.now())
    signed = client.post(f"{party}/sign", json={"code": code}, headers=alice)
    assert signed.status_code == 200, signed.get_data(as_text=True)
    assert signed.get_json()["state"] == "completed"
    other_party = f"/api/v1/contracts/{second['id']}/parties/{second['parties'][0]['id']}"
    assert client.post(f"{other_party}/code", headers=alice).status_code == 200
    replayed = client.post(f"{other_party}/sign", json={"code": code}, headers=alice)
    assert "already used" in assert_problem(replayed, 400)["detail"]
    assert mails_to_alice(api_env) == mails

    removed = client.delete(PATH, headers=alice)
    assert (removed.status_code, removed.get_json()) == (200, {"enrolled": False, "confirmed_at": None})
    assert_problem(client.delete(PATH, headers=alice), 404, "not_found")
    mailed = client.post(f"{other_party}/code", headers=alice)
    assert mailed.get_json()["channel"] == "email" and mails_to_alice(api_env) == mails + 1


def test_confirming_without_starting_says_to_start(api_env: ApiEnv, totp_clock: FakeClock) -> None:
    response = api_env.client().post(
        f"{PATH}/confirm",
        json={"email_code": "123456", "authenticator_code": "123456"},
        headers=api_env.auth("alice"),
    )
    assert "Start adding" in assert_problem(response, 400, "invalid_input")["detail"]


def test_an_appliance_that_mails_codes_takes_no_app(api_env: ApiEnv) -> None:
    mails = mails_to_alice(api_env)
    assert_problem(api_env.client().post(PATH, headers=api_env.auth("alice")), 403, "forbidden")
    assert mails_to_alice(api_env) == mails


@pytest.mark.parametrize(
    ("method", "path"), [("GET", PATH), ("POST", PATH), ("DELETE", PATH), ("POST", f"{PATH}/confirm")]
)
def test_every_authenticator_endpoint_needs_a_token(api_env: ApiEnv, method: str, path: str) -> None:
    response = api_env.client().open(
        path, method=method, json={"email_code": "123456", "authenticator_code": "1"}
    )
    assert_problem(response, 401, "unauthenticated")
