"""Verification codes before every signature (security test plan O01-O07), on SQLite and
PostgreSQL, with e-mail delivery through a real SMTP server.

Each try goes the way the workflow runs it: `consume_code` in the signing transaction, and
after a refusal (which rolls that transaction back) `record_failed_attempt` in a new one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from threading import Barrier

import pyotp
import pytest
from pydantic import SecretStr
from sqlalchemy import String, select
from sqlalchemy.orm import Session, sessionmaker

from appliance.config import CodeChannel, CodesConfig, DatabaseConfig, MailConfig
from appliance.db import create_db_engine, create_session_factory, migrate_database, transaction
from appliance.errors import ConfigError, Conflict, InvalidInput, RateLimited
from appliance.models import (
    Base,
    Contract,
    ContractState,
    Party,
    PartyKind,
    PartyStatus,
    Routing,
    TotpEnrolment,
    User,
    UserSource,
    VerificationCode,
)
from appliance.notify import CodeContext, EmailCodeSender, SmtpMailer
from appliance.workflow.codes import (
    CodeBinding,
    CodeProblem,
    CodeRejected,
    CodeToSend,
    code_key,
    confirm_totp,
    consume_code,
    enrol_totp,
    issue_code,
    record_failed_attempt,
    remove_totp,
)
from tests.fakes.clock import FakeClock
from tests.fixtures.smtp import SmtpServer

T0 = datetime(2026, 12, 1, 8, 30, 10, tzinfo=UTC)  # 10 s into a 30-second authenticator step
KEY = code_key(SecretStr("a-session-secret-of-at-least-32-characters"))
D1 = sha256(b"document version 1").hexdigest()
D2 = sha256(b"document version 2, signed by another party").hexdigest()
OFFICE = "10.8.0.7"
CODES = CodesConfig()
FROM = "esign@corp.example"


@dataclass(frozen=True)
class World:
    alice: int
    bob: int
    wang: int
    c1: int
    c2: int
    alice_c1: int
    bob_c1: int
    alice_c2: int
    wang_c2: int

    def binding(self, user: int, party: int, contract: int | None = None, document: str = D1) -> CodeBinding:
        if contract is None:
            contract = self.c2 if party in (self.alice_c2, self.wang_c2) else self.c1
        return CodeBinding(user, contract, party, document)


@pytest.fixture
def sessions(any_db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = create_db_engine(DatabaseConfig(url=any_db_url))
    migrate_database(engine)
    yield create_session_factory(engine)
    engine.dispose()


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> World:
    with transaction(sessions) as session:
        users = {}
        for name, locale in (("alice", "en"), ("bob", None), ("wang", "zh_Hans_CN")):
            user = User(
                username=name,
                source=UserSource.DIRECTORY,
                display_name=name.title(),
                email=f"{name}@corp.example",
                locale=locale,
                created_at=T0,
                updated_at=T0,
            )
            session.add(user)
            session.flush()
            users[name] = user.id
        contracts = []
        for title in ("Supply agreement", "采购合同"):
            contract = Contract(
                title=title,
                initiator_id=users["alice"],
                state=ContractState.SIGNING,
                routing=Routing.PARALLEL,
                created_at=T0,
                updated_at=T0,
                state_changed_at=T0,
            )
            session.add(contract)
            session.flush()
            contracts.append(contract.id)
        parties = []
        for contract_id, name in (
            (contracts[0], "alice"),
            (contracts[0], "bob"),
            (contracts[1], "alice"),
            (contracts[1], "wang"),
        ):
            party = Party(
                contract_id=contract_id,
                kind=PartyKind.PERSON,
                user_id=users[name],
                status=PartyStatus.PENDING,
                display_name=name.title(),
            )
            session.add(party)
            session.flush()
            parties.append(party.id)
    return World(users["alice"], users["bob"], users["wang"], *contracts, *parties)


def issue(
    sessions: sessionmaker[Session],
    binding: CodeBinding,
    *,
    now: datetime = T0,
    config: CodesConfig = CODES,
    address: str | None = OFFICE,
    email: str | None = "alice@corp.example",
) -> CodeToSend:
    with transaction(sessions) as session:
        return issue_code(
            session, binding, config=config, key=KEY, now=now, client_address=address, email=email
        )


def attempt(
    sessions: sessionmaker[Session],
    binding: CodeBinding,
    code: str,
    *,
    now: datetime = T0,
    seen: set[str] | None = None,
) -> CodeRejected | None:
    """One signing step's code check, with the failure counted after the rollback."""
    try:
        with transaction(sessions) as session:
            consume_code(
                session,
                binding,
                code,
                accepted_document_sha256s=seen or {binding.document_sha256},
                key=KEY,
                now=now,
            )
    except CodeRejected as failure:
        with transaction(sessions) as session:
            record_failed_attempt(session, failure, now)
        return failure
    return None


def stored(sessions: sessionmaker[Session], code_id: int) -> VerificationCode:
    with sessions() as session:
        row = session.get(VerificationCode, code_id)
        assert row is not None
        return row


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


def plain(sent: CodeToSend) -> str:
    assert sent.code is not None
    return sent.code


def test_the_key_comes_from_the_session_secret_and_there_is_none_without_one() -> None:
    assert len(KEY) == 32
    assert code_key(SecretStr("a-session-secret-of-at-least-32-characters")) == KEY
    assert code_key(SecretStr("another-session-secret-of-32-characters!")) != KEY
    with pytest.raises(ConfigError, match=r"auth\.session_secret_file"):
        code_key(None)


def test_an_emailed_code_signs_once_and_a_replay_is_refused(
    sessions: sessionmaker[Session], world: World
) -> None:
    binding = world.binding(world.alice, world.alice_c1)
    sent = issue(sessions, binding)
    assert sent.channel is CodeChannel.EMAIL and sent.destination == "a***@corp.example"
    assert sent.code is not None and len(sent.code) == 6 and sent.code.isdigit()
    assert sent.expires_at == T0 + timedelta(seconds=300)
    assert attempt(sessions, binding, f" {sent.code[:3]} {sent.code[3:]} ") is None  # spaces are for reading
    assert stored(sessions, sent.code_id).used_at == T0
    replay = attempt(sessions, binding, sent.code)  # O02, sequential
    assert replay is not None and replay.problem is CodeProblem.USED


def test_full_width_digits_from_a_chinese_input_method_are_the_same_code(
    sessions: sessionmaker[Session], world: World
) -> None:
    binding = world.binding(world.wang, world.wang_c2)
    code = plain(issue(sessions, binding, email="wang@corp.example"))
    full_width = "".join(chr(ord(digit) - ord("0") + ord("０")) for digit in code)
    assert attempt(sessions, binding, full_width) is None


def test_two_requests_racing_with_one_code_give_exactly_one_signature(
    sessions: sessionmaker[Session], world: World
) -> None:
    binding = world.binding(world.bob, world.bob_c1)
    for round_ in range(5):
        now = T0 + timedelta(minutes=round_)
        code = plain(issue(sessions, binding, now=now, email="bob@corp.example"))
        barrier = Barrier(2)
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(race_with, barrier, sessions, binding, code, now) for _ in range(2)]
            outcomes = [future.result() for future in futures]
        assert outcomes.count(None) == 1
        [loser] = [outcome for outcome in outcomes if outcome is not None]
        assert loser.problem is CodeProblem.USED


def race_with(
    barrier: Barrier, sessions: sessionmaker[Session], binding: CodeBinding, code: str, now: datetime
) -> CodeRejected | None:
    barrier.wait()  # both requests start together, each with its own session and connection
    return attempt(sessions, binding, code, now=now)


@pytest.mark.parametrize("other", ["document", "party", "contract", "user"])
def test_a_code_for_another_signature_is_refused_and_the_try_counted(
    sessions: sessionmaker[Session], world: World, other: str
) -> None:
    binding = world.binding(world.alice, world.alice_c1)
    sent = issue(sessions, binding)
    elsewhere = {
        "document": world.binding(world.alice, world.alice_c1, document=D2),
        "party": world.binding(world.alice, world.alice_c2),
        "contract": world.binding(world.alice, world.alice_c1, contract=world.c2),
        "user": world.binding(world.bob, world.alice_c1),
    }[other]
    failure = attempt(sessions, elsewhere, plain(sent))
    assert failure is not None and failure.problem is CodeProblem.BINDING_MISMATCH
    assert failure.code_id == sent.code_id
    assert stored(sessions, sent.code_id).attempts_left == CODES.attempts - 1
    # nothing was used up: the code still signs what it was issued for
    assert attempt(sessions, binding, plain(sent)) is None


def test_a_code_stays_good_across_other_parties_signatures_the_signer_was_shown(
    sessions: sessionmaker[Session], world: World
) -> None:
    sent = issue(sessions, world.binding(world.alice, world.alice_c1, document=D1))
    # bob signed meanwhile (D1 -> D2); the workflow lists D1 as seen since only his signature differs
    now_current = world.binding(world.alice, world.alice_c1, document=D2)
    failure = attempt(sessions, now_current, plain(sent))
    assert failure is not None and failure.problem is CodeProblem.BINDING_MISMATCH
    assert attempt(sessions, now_current, plain(sent), seen={D2, D1}) is None


def test_no_code_requested_or_none_entered_is_otp_required_and_counts_nothing(
    sessions: sessionmaker[Session], world: World
) -> None:
    binding = world.binding(world.bob, world.bob_c1)
    failure = attempt(sessions, binding, "123456")
    assert failure is not None and failure.problem is CodeProblem.REQUIRED and failure.code_id is None
    sent = issue(sessions, binding, email="bob@corp.example")
    failure = attempt(sessions, binding, "   ")
    assert failure is not None and failure.problem is CodeProblem.REQUIRED and failure.code_id is None
    assert stored(sessions, sent.code_id).attempts_left == CODES.attempts


def test_after_the_allowed_wrong_tries_even_the_right_code_is_refused(
    sessions: sessionmaker[Session], world: World
) -> None:
    binding = world.binding(world.alice, world.alice_c1)
    code = plain(issue(sessions, binding))
    left = []
    for _ in range(CODES.attempts):
        failure = attempt(sessions, binding, wrong(code))
        assert failure is not None and failure.problem is CodeProblem.WRONG
        assert wrong(code) not in str(failure) and code not in str(failure) and code not in failure.public
        left.append(failure.attempts_left)
    assert left == [4, 3, 2, 1, 0]
    failure = attempt(sessions, binding, code)
    assert failure is not None and failure.problem is CodeProblem.EXHAUSTED

    # one wrong try fewer and the right code still signs
    code = plain(issue(sessions, binding, now=T0 + timedelta(minutes=1)))
    for _ in range(CODES.attempts - 1):
        attempt(sessions, binding, wrong(code), now=T0 + timedelta(minutes=1))
    assert attempt(sessions, binding, code, now=T0 + timedelta(minutes=1)) is None


def test_a_code_works_until_one_second_before_its_expiry_and_not_after(
    sessions: sessionmaker[Session], world: World
) -> None:
    binding = world.binding(world.alice, world.alice_c1)
    lifetime = timedelta(seconds=CODES.lifetime_seconds)
    clock = FakeClock(T0)
    code = plain(issue(sessions, binding, now=clock.now()))
    clock.advance(lifetime - timedelta(seconds=1))
    assert attempt(sessions, binding, code, now=clock.now()) is None

    clock.advance(timedelta(minutes=10))
    code = plain(issue(sessions, binding, now=clock.now()))
    clock.advance(lifetime + timedelta(seconds=1))
    failure = attempt(sessions, binding, code, now=clock.now())
    assert failure is not None and failure.problem is CodeProblem.EXPIRED


def test_a_new_code_replaces_the_earlier_one(sessions: sessionmaker[Session], world: World) -> None:
    binding = world.binding(world.alice, world.alice_c1)
    first = issue(sessions, binding)
    second = issue(sessions, binding, now=T0 + timedelta(seconds=30))
    assert stored(sessions, first.code_id).superseded_at == T0 + timedelta(seconds=30)
    failure = attempt(sessions, binding, plain(first), now=T0 + timedelta(seconds=40))
    assert failure is not None and failure.problem is CodeProblem.SUPERSEDED
    assert attempt(sessions, binding, plain(second), now=T0 + timedelta(seconds=50)) is None
    # another party's code is not replaced by it
    other = issue(sessions, world.binding(world.alice, world.alice_c2), now=T0 + timedelta(seconds=60))
    issue(sessions, binding, now=T0 + timedelta(seconds=70))
    assert (
        attempt(
            sessions, world.binding(world.alice, world.alice_c2), plain(other), now=T0 + timedelta(seconds=80)
        )
        is None
    )


def test_only_a_keyed_hash_of_the_code_is_stored_and_no_log_line_holds_it(
    sessions: sessionmaker[Session], world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    binding = world.binding(world.alice, world.alice_c1)
    # eight digits, so a chance run of them inside a hash or a timestamp cannot pass for a leak
    code = plain(issue(sessions, binding, config=CodesConfig(digits=8)))
    attempt(sessions, binding, wrong(code))
    assert attempt(sessions, binding, code) is None
    unkeyed = sha256(code.encode()).hexdigest()
    with sessions() as session:
        for table in Base.metadata.sorted_tables:
            columns = [column for column in table.columns if isinstance(column.type, String)]
            if not columns:
                continue
            for row in session.execute(select(*columns)):
                for value in row:
                    assert code not in str(value) and unkeyed not in str(value), table.name
        [code_hmac] = session.execute(select(VerificationCode.code_hmac)).scalars()
        assert code_hmac is not None and len(code_hmac) == 64
    assert caplog.records, "the issue and the tries are logged"
    assert code not in caplog.text and wrong(code) not in caplog.text


def test_code_requests_are_limited_per_signer_with_the_time_to_retry(
    sessions: sessionmaker[Session], world: World
) -> None:
    config = CodesConfig(per_signer_per_hour=3)
    parties = [world.alice_c1, world.alice_c2, world.alice_c1]
    for minute, party in enumerate(parties):
        last = issue(
            sessions, world.binding(world.alice, party), now=T0 + timedelta(minutes=minute), config=config
        )
    with pytest.raises(RateLimited) as limited:
        issue(
            sessions,
            world.binding(world.alice, world.alice_c1),
            now=T0 + timedelta(minutes=3),
            config=config,
            address="10.9.9.9",
        )
    assert limited.value.retry_at == T0 + timedelta(hours=1)
    # the refused request replaced nothing: the last code still signs
    assert (
        attempt(
            sessions, world.binding(world.alice, world.alice_c1), plain(last), now=T0 + timedelta(minutes=3)
        )
        is None
    )
    # another signer is not held back by it
    issue(
        sessions,
        world.binding(world.bob, world.bob_c1),
        now=T0 + timedelta(minutes=3),
        config=config,
        email="bob@corp.example",
    )
    issue(sessions, world.binding(world.alice, world.alice_c1), now=T0 + timedelta(hours=1), config=config)


def test_code_requests_are_limited_per_client_address_across_signers(
    sessions: sessionmaker[Session], world: World
) -> None:
    config = CodesConfig(per_address_per_hour=2)
    issue(sessions, world.binding(world.alice, world.alice_c1), config=config)
    issue(
        sessions,
        world.binding(world.bob, world.bob_c1),
        now=T0 + timedelta(minutes=5),
        config=config,
        email="bob@corp.example",
    )
    with pytest.raises(RateLimited) as limited:
        issue(
            sessions,
            world.binding(world.wang, world.wang_c2),
            now=T0 + timedelta(minutes=6),
            config=config,
            email="wang@corp.example",
        )
    assert limited.value.retry_at == T0 + timedelta(hours=1)
    issue(
        sessions,
        world.binding(world.wang, world.wang_c2),
        now=T0 + timedelta(minutes=6),
        config=config,
        address="10.8.0.8",
        email="wang@corp.example",
    )


def test_without_an_email_address_the_person_is_told_what_to_do(
    sessions: sessionmaker[Session], world: World
) -> None:
    binding = world.binding(world.alice, world.alice_c1)
    earlier = issue(sessions, binding)
    with pytest.raises(InvalidInput, match=r"no e-mail address in the directory.*administrator"):
        issue(sessions, binding, email=None, now=T0 + timedelta(seconds=10))
    with pytest.raises(InvalidInput, match="authenticator app"):
        issue(sessions, binding, email=None, config=CodesConfig(channel=CodeChannel.TOTP))
    assert stored(sessions, earlier.code_id).superseded_at is None
    assert attempt(sessions, binding, plain(earlier), now=T0 + timedelta(seconds=20)) is None


def enrol_alice(sessions: sessionmaker[Session], world: World, at: datetime) -> pyotp.TOTP:
    with transaction(sessions) as session:
        setup = enrol_totp(
            session, world.alice, account_name="alice@corp.example", issuer="Corp e-sign", now=at
        )
    assert setup.provisioning_uri.startswith("otpauth://totp/") and setup.secret in setup.provisioning_uri
    totp = pyotp.TOTP(setup.secret)
    with transaction(sessions) as session:
        confirm_totp(session, world.alice, totp.at(at), now=at)
    return totp


def test_authenticator_codes_accept_the_previous_step_never_two_back_and_never_a_step_twice(
    sessions: sessionmaker[Session], world: World
) -> None:
    config = CodesConfig(channel=CodeChannel.TOTP)
    totp = enrol_alice(sessions, world, T0 - timedelta(hours=1))
    binding = world.binding(world.alice, world.alice_c1)
    step = totp.timecode(T0)

    def code_at(offset: int) -> str:
        return totp.generate_otp(step + offset)

    challenge = issue(sessions, binding, config=config)
    assert (challenge.channel, challenge.code, challenge.destination) == (
        CodeChannel.TOTP,
        None,
        "authenticator app",
    )
    assert stored(sessions, challenge.code_id).code_hmac is None
    failure = attempt(sessions, binding, code_at(-2))
    assert failure is not None and failure.problem is CodeProblem.WRONG and failure.attempts_left == 4
    assert attempt(sessions, binding, code_at(-1)) is None
    failure = attempt(sessions, binding, code_at(-1))
    assert failure is not None and failure.problem is CodeProblem.USED  # the challenge is used

    issue(sessions, binding, config=config)
    failure = attempt(sessions, binding, code_at(-1))
    assert failure is not None and failure.problem is CodeProblem.USED and "next code" in failure.public
    # the refused reuse rolled back: the same challenge takes the next step's code
    assert attempt(sessions, binding, code_at(0)) is None

    issue(sessions, binding, config=config)
    failure = attempt(sessions, binding, code_at(0))
    assert failure is not None and failure.problem is CodeProblem.USED
    assert attempt(sessions, binding, code_at(1)) is None  # a phone a little ahead
    issue(sessions, binding, config=config)
    failure = attempt(sessions, binding, code_at(0))
    assert failure is not None and failure.problem is CodeProblem.USED  # older than the last one used


def test_an_authenticator_app_is_the_channel_only_once_confirmed(
    sessions: sessionmaker[Session], world: World
) -> None:
    config = CodesConfig(channel=CodeChannel.TOTP)
    binding = world.binding(world.alice, world.alice_c1)
    with transaction(sessions) as session:
        setup = enrol_totp(session, world.alice, account_name="alice", issuer="Corp e-sign", now=T0)
    assert issue(sessions, binding, config=config).channel is CodeChannel.EMAIL
    totp = pyotp.TOTP(setup.secret)
    with pytest.raises(CodeRejected) as refused, transaction(sessions) as session:
        confirm_totp(session, world.alice, totp.generate_otp(totp.timecode(T0) - 2), now=T0)
    assert refused.value.problem is CodeProblem.WRONG
    with transaction(sessions) as session:
        confirm_totp(session, world.alice, totp.at(T0), now=T0)
    with pytest.raises(Conflict), transaction(sessions) as session:
        enrol_totp(session, world.alice, account_name="alice", issuer="Corp e-sign", now=T0)
    assert issue(sessions, binding, config=config, now=T0 + timedelta(seconds=30)).channel is CodeChannel.TOTP
    # with the e-mail channel configured, the app is not used
    assert issue(sessions, binding, now=T0 + timedelta(seconds=40)).channel is CodeChannel.EMAIL

    challenge = issue(sessions, binding, config=config, now=T0 + timedelta(seconds=60))
    with transaction(sessions) as session:
        assert remove_totp(session, world.alice)
        assert session.get(TotpEnrolment, world.alice) is None
    failure = attempt(sessions, binding, totp.at(T0 + timedelta(seconds=60)), now=T0 + timedelta(seconds=60))
    assert failure is not None and failure.problem is CodeProblem.REQUIRED
    assert stored(sessions, challenge.code_id).used_at is None
    assert (
        issue(sessions, binding, config=config, now=T0 + timedelta(seconds=70)).channel is CodeChannel.EMAIL
    )


@pytest.mark.parametrize(
    ("locale", "subject", "words"),
    [
        ("zh_Hans_CN", "签署《采购合同 第二版》的验证码", "验证码在 2026-12-01 08:35 UTC 之前有效"),
        ("en", "Verification code to sign “采购合同 第二版”", "valid until 2026-12-01 08:35 UTC"),
    ],
)
def test_the_code_is_mailed_in_the_persons_language_in_the_body_never_the_subject(
    sessions: sessionmaker[Session],
    world: World,
    smtp_server: SmtpServer,
    locale: str,
    subject: str,
    words: str,
) -> None:
    sent = issue(sessions, world.binding(world.wang, world.wang_c2), email="wang@corp.example")
    mailer = SmtpMailer(
        MailConfig(enabled=True, host="127.0.0.1", port=smtp_server.port, starttls=False), None
    )
    context = CodeContext("采购合同\n第二版", "Wang Fang", sent.expires_at, locale)
    EmailCodeSender(mailer, FROM).send("wang@corp.example", plain(sent), context)
    [mail] = smtp_server.received
    assert (mail["To"], mail["From"], mail["Subject"]) == ("wang@corp.example", FROM, subject)
    assert plain(sent) not in mail["Subject"]
    body = mail.get_content()
    assert plain(sent) in body and words in body and "Wang Fang" in body


def test_a_long_title_is_shortened_in_the_subject_only(smtp_server: SmtpServer) -> None:
    mailer = SmtpMailer(
        MailConfig(enabled=True, host="127.0.0.1", port=smtp_server.port, starttls=False), None
    )
    title = "Framework agreement " * 10
    clock = FakeClock(T0)
    EmailCodeSender(mailer, FROM).send(
        "li@corp.example", "12345678", CodeContext(title, "Li", clock.now(), None)
    )
    [mail] = smtp_server.received
    assert len(mail["Subject"]) < 110 and mail["Subject"].endswith("…”")
    assert title.strip() in mail.get_content()
