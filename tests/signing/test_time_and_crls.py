"""Signing and validation follow the appliance's clock, and signing never waits for the CRL job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from appliance.clock import SystemClock
from appliance.db import transaction
from appliance.models.pki import Crl
from appliance.signing import SigningKit, Verdict, sign_pdf_file, validate_pdf
from appliance.signing.documents import resolve_signer, sign_stream
from tests.fakes.clock import FakeClock
from tests.fixtures.hsm import SoftHsm
from tests.signing.conftest import SigningEnv, build_signing_env

pytestmark = pytest.mark.hsm


def test_signing_publishes_a_fresh_crl_when_the_newest_is_past_its_next_update(
    softhsm: SoftHsm, custody: Any, pdf_factory: Any, tmp_path: Path
) -> None:
    # the PKI and its CRLs were made two days ago and the CRL job has not run since:
    # the newest CRLs expired a day ago (crl_validity_hours is 24)
    two_days_ago = FakeClock(datetime.now(UTC) - timedelta(days=2))
    env = build_signing_env(tmp_path / "env", softhsm, two_days_ago)
    with env.services.sessions() as session:
        stale = session.scalars(select(Crl)).all()
        assert stale and all(crl.next_update < datetime.now(UTC) for crl in stale)
    clock = SystemClock()
    kit = SigningKit(config=env.config, custody=env.services.custody, clock=clock)
    out = tmp_path / "signed.pdf"

    # the step publishes fresh CRLs in the caller's session and leaves the commit to it
    with env.services.sessions() as session:
        resolve_signer(session, kit, env.person.key.label)
        assert len(session.scalars(select(Crl)).all()) == len(stale) + 2
        session.rollback()
    with env.services.sessions() as session:
        assert len(session.scalars(select(Crl)).all()) == len(stale)

    with transaction(env.services.sessions) as session:
        signer = resolve_signer(session, kit, env.person.key.label)
    with pdf_factory().open("rb") as source, out.open("w+b") as output:
        signed = sign_stream(kit, signer, source, output)

    with env.services.sessions() as session:
        crls = session.scalars(select(Crl)).all()
    issuers = {crl.issuer_id for crl in stale}
    fresh = [crl for crl in crls if crl.next_update > signed.signing_time]
    assert {crl.issuer_id for crl in fresh} == issuers  # root and issuing CA both republished
    with out.open("rb") as stream:
        report = validate_pdf(stream, env.trust(), clock)
    assert report.verdict is Verdict.VALID, report.signatures[0].problems
    # the trust material holds the newest CRL of each issuer, not the stale ones beside it
    assert {crl.dump() for crl in env.trust().crls} == {crl.der for crl in fresh}
    env.services.engine.dispose()


def test_validation_judges_certificates_at_the_clocks_time(
    signing_env: SigningEnv, pdf_factory: Any, tmp_path: Path, fixed_clock: FakeClock
) -> None:
    out = tmp_path / "signed.pdf"
    with signing_env.signer() as signer:
        sign_pdf_file(
            pdf_factory(),
            out,
            signer=signer,
            trust=signing_env.trust(),
            clock=fixed_clock,
            timestamper=signing_env.timestamper(),
        )
    # two days on, the CRLs in the database and in the file are past their nextUpdate; at the
    # wall-clock time they are not
    two_days_on = FakeClock(fixed_clock.now() + timedelta(days=2))

    with out.open("rb") as stream:
        now_report = validate_pdf(stream, signing_env.trust(), fixed_clock)
    with out.open("rb") as stream:
        later_report = validate_pdf(stream, signing_env.trust(), two_days_on)

    assert now_report.verdict is Verdict.VALID
    assert later_report.verdict is Verdict.INVALID
    assert later_report.validated_at == two_days_on.now()
    (sig,) = later_report.signatures
    assert not sig.trusted and "untrusted" in sig.problems
    assert sig.trust_problem == "try_later"  # revocation status unknown at that time
