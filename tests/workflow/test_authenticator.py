"""Adding an authenticator app as a person's own action: only with the code e-mailed to them
(through a real SMTP server) and the app's first code; then, with `codes.channel: totp`, the
signing codes come from the app; removing it sends them by e-mail again. SQLite and PostgreSQL.

The workflow's clock is a FakeClock starting at the real time (certificates and timestamps
are checked against it), so which authenticator time step a code belongs to is the test's
choice, not the scheduler's.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import String, select

from appliance.config import CodeChannel, CodesConfig
from appliance.errors import Conflict, Forbidden, InvalidInput, NotFound, RateLimited
from appliance.models import AuditEvent, Base, ContractState, User
from appliance.workflow import signatures
from appliance.workflow.authenticator import (
    ENROLLED,
    ENROLMENT_LIFETIME,
    REFUSED,
    REMOVED,
    STARTED,
    EnrolmentStarted,
    confirm_enrolment,
    enrolment_status,
    remove_enrolment,
    start_enrolment,
)
from appliance.workflow.codes import CodeProblem, CodeRejected
from appliance.workflow.context import WorkflowContext
from appliance.workflow.views import ContractView
from tests.fakes.clock import FakeClock
from tests.workflow.conftest import CLIENT, WorkflowEnv

STEP = timedelta(seconds=30)
TOTP = {"codes": {"channel": "totp", "digits": 8}}
"""Eight-digit e-mailed codes, so a chance run of digits elsewhere cannot pass for a leak."""


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


def with_clock(env: WorkflowEnv, clock: FakeClock, codes: CodesConfig | None = None) -> WorkflowContext:
    """The env's workflow on `clock`, with other `codes` settings when given."""
    config = env.ctx.config if codes is None else env.ctx.config.model_copy(update={"codes": codes})
    return replace(env.ctx, clock=clock, config=config)


def start(env: WorkflowEnv, ctx: WorkflowContext, who: str = "alice") -> tuple[EnrolmentStarted, str]:
    """Start an enrolment; what came back and the code mailed for it."""
    before = len(env.smtp.received)
    started = start_enrolment(ctx, env.people[who], CLIENT)
    assert len(env.smtp.received) == before + 1
    mail = env.smtp.received[-1]
    assert mail["To"] == f"{who}@example.com"
    found = re.search(r"^\s+(\d{6,8})\s*$", mail.get_content(), re.M)
    assert found, mail.get_content()
    assert found.group(1) not in mail["Subject"]
    assert mail["Subject"] == "Verification code: adding an authenticator app"  # not "to sign"
    return started, found.group(1)


def refused(ctx: WorkflowContext, env: WorkflowEnv, email_code: str, app_code: str) -> CodeRejected:
    with pytest.raises(CodeRejected) as failure:
        confirm_enrolment(ctx, env.people["alice"], CLIENT, email_code, app_code)
    return failure.value


def alices_party(view: ContractView) -> int:
    return next(p.id for p in view.parties if p.name == "张伟")


def test_an_app_is_added_only_with_the_emailed_code_then_it_signs_instead_of_mail(
    workflow_factory: Callable[..., WorkflowEnv], any_db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # the appliance's own log lines (the test's SMTP server logs what it receives)
    caplog.set_level(logging.DEBUG, logger="appliance")
    env = workflow_factory(any_db_url, **TOTP)
    clock = FakeClock()
    ctx = with_clock(env, clock)
    alice = env.people["alice"]
    first, second = env.start([("alice", 1)]), env.start([("alice", 1)])
    assert enrolment_status(ctx, alice).enrolled is False

    started, email_code = start(env, ctx)
    assert started.destination == "a***@example.com"
    assert started.expires_at == clock.now() + ENROLMENT_LIFETIME
    assert started.provisioning_uri.startswith("otpauth://totp/")
    assert f"secret={started.secret}" in started.provisioning_uri
    totp = pyotp.TOTP(started.secret)
    app_code = totp.at(clock.now())

    # a session (or token) alone, knowing the secret it was just given, cannot finish it
    failure = refused(ctx, env, wrong(email_code), app_code)
    assert failure.problem is CodeProblem.WRONG and "e-mail" in failure.public
    assert failure.attempts_left == 4
    assert refused(ctx, env, "", app_code).problem is CodeProblem.REQUIRED
    failure = refused(ctx, env, email_code, wrong(app_code))
    assert failure.problem is CodeProblem.WRONG and "authenticator app" in failure.public
    assert failure.attempts_left == 3  # the missing code was no try
    assert enrolment_status(ctx, alice).enrolled is False
    pending = signatures.request_code(ctx, alice, CLIENT, first.id, alices_party(first))
    assert (pending.channel, pending.destination) == ("email", "a***@example.com")

    confirmed = confirm_enrolment(ctx, alice, CLIENT, email_code, app_code)
    assert (confirmed.enrolled, confirmed.confirmed_at) == (True, clock.now())
    assert enrolment_status(ctx, alice) == confirmed
    with pytest.raises(Conflict):
        confirm_enrolment(ctx, alice, CLIENT, email_code, app_code)
    with pytest.raises(Conflict):
        start_enrolment(ctx, alice, CLIENT)

    # the next time step: the confirming code's step is used up
    clock.advance(STEP)
    mails = len(env.smtp.received)
    sent = signatures.request_code(ctx, alice, CLIENT, first.id, alices_party(first))
    assert (sent.channel, sent.destination) == ("totp", "authenticator app")
    assert len(env.smtp.received) == mails
    code = totp.at(clock.now())
    signed = signatures.sign_party(ctx, alice, CLIENT, first.id, alices_party(first), code)
    assert signed.state is ContractState.COMPLETED
    signatures.request_code(ctx, alice, CLIENT, second.id, alices_party(second))
    with pytest.raises(CodeRejected) as again:
        signatures.sign_party(ctx, alice, CLIENT, second.id, alices_party(second), code)
    assert again.value.problem is CodeProblem.USED
    assert len(env.smtp.received) == mails

    # lost phone: removed, codes go by e-mail again, and the app's codes sign nothing
    assert remove_enrolment(ctx, alice, CLIENT).enrolled is False
    assert enrolment_status(ctx, alice).enrolled is False
    with pytest.raises(NotFound):
        remove_enrolment(ctx, alice, CLIENT)
    clock.advance(STEP)
    mailed = signatures.request_code(ctx, alice, CLIENT, second.id, alices_party(second))
    assert mailed.channel == "email" and len(env.smtp.received) == mails + 1
    with pytest.raises(CodeRejected):
        signatures.sign_party(ctx, alice, CLIENT, second.id, alices_party(second), totp.at(clock.now()))

    with env.services.sessions() as session:
        actions = session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.action.startswith("authenticator."))
            .order_by(AuditEvent.seq)
        ).all()
        assert actions == [STARTED, REFUSED, REFUSED, ENROLLED, REMOVED]
        # neither the secret (its enrolment is gone) nor an e-mailed code is in the database or a log
        secrets = {started.secret, email_code, wrong(email_code)}
        for table in Base.metadata.sorted_tables:
            columns = [column for column in table.columns if isinstance(column.type, String)]
            for row in session.execute(select(*columns)) if columns else ():
                for value in row:
                    assert not any(s in str(value) for s in secrets), table.name
    assert caplog.records
    assert not any(s in caplog.text for s in secrets)


def test_wrong_codes_end_the_enrolment_and_starting_again_replaces_the_codes(
    workflow_factory: Callable[..., WorkflowEnv], any_db_url: str
) -> None:
    env = workflow_factory(any_db_url, **TOTP)
    clock = FakeClock()
    ctx = with_clock(env, clock)
    alice = env.people["alice"]
    started, email_code = start(env, ctx)
    app_code = pyotp.TOTP(started.secret).at(clock.now())
    left = [
        refused(ctx, env, wrong(email_code), app_code).attempts_left for _ in range(CodesConfig().attempts)
    ]
    assert left == [4, 3, 2, 1, 0]
    failure = refused(ctx, env, email_code, app_code)
    assert failure.problem is CodeProblem.EXHAUSTED and "Start adding" in failure.public

    clock.advance(timedelta(minutes=1))
    restarted, new_email_code = start(env, ctx)
    assert restarted.secret != started.secret
    new_app_code = pyotp.TOTP(restarted.secret).at(clock.now())
    # the first enrolment's codes belong to a secret that is gone
    assert refused(ctx, env, email_code, new_app_code).problem is CodeProblem.WRONG
    assert refused(ctx, env, new_email_code, app_code).problem is CodeProblem.WRONG
    assert confirm_enrolment(ctx, alice, CLIENT, new_email_code, new_app_code).enrolled


def test_the_emailed_code_expires(workflow_factory: Callable[..., WorkflowEnv]) -> None:
    env = workflow_factory(**TOTP)
    clock = FakeClock()
    ctx = with_clock(env, clock)
    started, email_code = start(env, ctx)
    clock.advance(ENROLMENT_LIFETIME)
    failure = refused(ctx, env, email_code, pyotp.TOTP(started.secret).at(clock.now()))
    assert failure.problem is CodeProblem.EXPIRED
    assert enrolment_status(ctx, env.people["alice"]).enrolled is False


def test_starting_is_limited_per_person_and_per_address(workflow_factory: Callable[..., WorkflowEnv]) -> None:
    env = workflow_factory(**TOTP)
    clock = FakeClock()
    codes = CodesConfig(channel=CodeChannel.TOTP, digits=8, per_signer_per_hour=2, per_address_per_hour=3)
    ctx = with_clock(env, clock, codes)
    first = clock.now()
    start(env, ctx)
    clock.advance(timedelta(minutes=5))
    start(env, ctx)
    mails = len(env.smtp.received)
    with pytest.raises(RateLimited) as limited:
        start_enrolment(ctx, env.people["alice"], CLIENT)
    assert limited.value.retry_at == first + timedelta(hours=1)
    start(env, ctx, "bob")  # the third from this address
    with pytest.raises(RateLimited):
        start_enrolment(ctx, env.people["initiator"], CLIENT)
    assert len(env.smtp.received) == mails + 1
    clock.advance(timedelta(hours=1))
    start(env, ctx)


def test_who_cannot_start_and_why(workflow_factory: Callable[..., WorkflowEnv]) -> None:
    env = workflow_factory(**TOTP)
    clock = FakeClock()
    with pytest.raises(Forbidden, match="by e-mail"):
        start_enrolment(with_clock(env, clock, CodesConfig()), env.people["alice"], CLIENT)
    with env.services.sessions.begin() as session:
        bob = session.get(User, env.people["bob"].user_id)
        assert bob is not None
        bob.email = None
    with pytest.raises(InvalidInput, match="no e-mail address"):
        start_enrolment(with_clock(env, clock), env.people["bob"], CLIENT)
    with pytest.raises(InvalidInput, match="Start adding"):
        confirm_enrolment(with_clock(env, clock), env.people["alice"], CLIENT, "123456", "123456")
    assert env.smtp.received == []
