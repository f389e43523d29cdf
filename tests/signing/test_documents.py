"""The two signing steps the CLI and the workflow call: `resolve_signer` inside the caller's
transaction, `sign_stream` from stream to stream, with the one `SigningKit` of the services."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

import pytest

import appliance.signing
from appliance.db import transaction
from appliance.errors import Unavailable
from appliance.models.pki import Certificate
from appliance.signing import PadesLevel, SigningKit, Verdict, validate_pdf
from appliance.signing.documents import load_timestamper, resolve_signer, sign_stream
from tests.fixtures.pdfs import make_pdf
from tests.signing.conftest import SigningEnv

pytestmark = pytest.mark.hsm


def test_resolve_and_sign_inside_one_transaction_with_the_internal_tsa(signing_env: SigningEnv) -> None:
    # on SQLite the caller's transaction holds the write lock: a timestamp that needed a second
    # connection would wait for it (30 s) and fail
    kit = signing_env.services.signing
    out = io.BytesIO()
    with transaction(signing_env.services.sessions) as session:
        signer = resolve_signer(session, kit, signing_env.person.key.label)
        signed = sign_stream(kit, signer, io.BytesIO(make_pdf(seed=31)), out)
        row = session.get(Certificate, signer.certificate_id)
        assert row is not None and row.der == signing_env.person.certificate.dump()

    assert signed.level is PadesLevel.B_LT
    report = validate_pdf(out, signing_env.trust(), kit.clock)
    assert report.verdict is Verdict.VALID
    assert report.signatures[0].timestamp is not None and report.signatures[0].timestamp.trusted


def test_a_resolved_signer_outlives_its_transaction_and_may_sign_without_timestamps(
    signing_env: SigningEnv,
) -> None:
    kit = signing_env.services.signing
    with transaction(signing_env.services.sessions) as session:
        signer = resolve_signer(session, kit, signing_env.person.key.label, timestamp=False)
    out = io.BytesIO()

    signed = sign_stream(kit, signer, io.BytesIO(make_pdf(seed=32)), out)

    assert signer.timestamper is None and signed.level is PadesLevel.B_B
    assert validate_pdf(out, signing_env.trust(), kit.clock).verdict is Verdict.VALID


def test_the_kit_keeps_one_timestamper_per_tsa_and_every_signature_gets_its_own_token(
    signing_env: SigningEnv,
) -> None:
    kit = signing_env.services.signing
    with transaction(signing_env.services.sessions) as session:
        first = resolve_signer(session, kit, signing_env.person.key.label)
        second = resolve_signer(session, kit, signing_env.person.key.label)
    assert first.timestamper is not None and second.timestamper is first.timestamper

    tokens = []
    for seed in (33, 34):
        out = io.BytesIO()
        sign_stream(kit, first, io.BytesIO(make_pdf(seed=seed)), out)
        report = validate_pdf(out, signing_env.trust(), kit.clock)
        assert report.verdict is Verdict.VALID
        timestamp = report.signatures[0].timestamp
        assert timestamp is not None and timestamp.intact and timestamp.trusted
        tokens.append(out.getvalue())
    assert tokens[0] != tokens[1]

    # another kit (another services object: its own HSM sessions and clock) keeps its own
    other = SigningKit(config=kit.config, custody=kit.custody, clock=kit.clock)
    with signing_env.services.sessions() as session:
        assert load_timestamper(session, other) is not first.timestamper


def test_without_an_hsm_nothing_is_signed(signing_env: SigningEnv) -> None:
    kit = SigningKit(config=signing_env.config, custody=None, clock=signing_env.services.clock)
    with (
        signing_env.services.sessions() as session,
        pytest.raises(Unavailable, match="no HSM is configured"),
    ):
        resolve_signer(session, kit, signing_env.person.key.label)


def test_signing_logs_no_notice_that_fetching_is_off(
    signing_env: SigningEnv, caplog: pytest.LogCaptureFixture
) -> None:
    kit = signing_env.services.signing
    caplog.set_level(logging.DEBUG)
    with transaction(signing_env.services.sessions) as session:
        signer = resolve_signer(session, kit, signing_env.person.key.label, timestamp=False)

    sign_stream(kit, signer, io.BytesIO(make_pdf(seed=33)), io.BytesIO())

    assert not [r for r in caplog.records if "fetching is not allowed" in r.getMessage()]


def test_the_package_loads_pyhanko_only_when_signing_is_used() -> None:
    # every command builds a SigningKit; only signing and validation pay for pyHanko
    probe = (
        "import sys, appliance.signing, appliance.signing.kit;"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('pyhanko', 'pyhanko_certvalidator'));"
        "print(loaded)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]"
    for name in appliance.signing.__all__:
        assert getattr(appliance.signing, name) is not None, name
