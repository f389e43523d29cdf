"""Review findings on the PKI (issue 4): CRL publication under concurrency, CRL entry reasons,
certificate profiles, CA validity checks, /pki/tsa robustness and rate limit, GET /pki/crl
without writes. Real SoftHSM2, SQLite and (for the race) PostgreSQL."""

from __future__ import annotations

import ast
import hashlib
import io
import random
import secrets
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import tsp
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from sqlalchemy import func, select

import appliance.pki
from appliance.config import load_config
from appliance.db import create_db_engine, migrate_database, transaction
from appliance.models.enums import CertificateKind, CertificateStatus, RevocationReason
from appliance.models.pki import Certificate, Crl, HsmKey
from appliance.pki.bootstrap import init_pki
from appliance.pki.ca import load_material, make_context
from appliance.pki.certs import SubjectInfo
from appliance.pki.crl import current_crl, latest_crl, refresh_crl, refresh_margin
from appliance.pki.errors import CaNotUsable
from appliance.pki.issue import issue_certificate
from appliance.pki.publish import MAX_TIMESTAMP_QUERY_BYTES
from appliance.pki.revoke import revoke_certificate
from appliance.pki.tsa import RejectionResponse, build_response, load_tsa, respond_timestamp
from appliance.services import build_services
from appliance.web import create_app
from appliance.web.pki import TSA_RATE_LIMIT
from tests.fakes.clock import FakeClock
from tests.fixtures.hsm import PkiEnv, SoftHsm, hsm_section, write_pki_config

pytestmark = pytest.mark.hsm


def at(pki_env: PkiEnv, moment: datetime) -> Any:
    return replace(pki_env.context(), clock=FakeClock(moment))


@pytest.fixture
def client(pki_env: PkiEnv) -> Any:
    app = create_app(pki_env.config, services=pki_env.services)
    app.config["TESTING"] = True
    return app.test_client()


def valid_query(*, cert_req: bool = True) -> bytes:
    return tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": hashlib.sha256(b"contract").digest(),
            },
            "nonce": 0x1234567890,
            "cert_req": cert_req,
        }
    ).dump()


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not out:
            break
        pos = rng.randrange(len(out))
        choice = rng.random()
        if choice < 0.6:
            out[pos] = rng.randrange(256)
        elif choice < 0.8:
            del out[pos]
        else:
            out.insert(pos, rng.randrange(256))
    return bytes(out)


def reply_status(der: bytes) -> str:
    # RejectionResponse also reads granted replies: it only makes the token optional
    return RejectionResponse.load(der)["status"]["status"].native


def unique_address() -> str:
    """A client address of its own: the pki_env database (and its TSA counters) lives all session."""
    return f"127.{secrets.randbelow(200) + 50}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


# -- 2. concurrent CRL publication ------------------------------------------------------------


@pytest.mark.slow
def test_concurrent_revocations_both_land_in_the_final_crl(
    softhsm: SoftHsm, any_db_url: str, tmp_path: Path
) -> None:
    path = write_pki_config(
        tmp_path,
        softhsm,
        database={"url": any_db_url},
        # EC keys: the test issues several certificates and only the database race matters
        hsm=hsm_section(softhsm, key_algorithm="ecdsa-p256"),
    )
    cfg = load_config(path, environ={})
    migrate_database(create_db_engine(cfg.database))
    services = build_services(cfg)
    try:
        ctx = make_context(services.custody, cfg, services.clock)
        with transaction(services.sessions) as session:
            init_pki(session, ctx)
        rounds = 3
        victims: list[tuple[int, int]] = []
        for i in range(rounds):
            pair = []
            for j in range(2):
                with transaction(services.sessions) as session:
                    issued = issue_certificate(
                        session, ctx, kind=CertificateKind.PERSON, subject=SubjectInfo(f"Victim {i}-{j}")
                    )
                    pair.append(issued.row.id)
            victims.append((pair[0], pair[1]))

        errors: list[BaseException] = []

        def revoke(certificate_id: int, barrier: threading.Barrier) -> None:
            try:
                with transaction(services.sessions) as session:
                    barrier.wait(timeout=30)
                    revoke_certificate(session, ctx, certificate_id, RevocationReason.KEY_COMPROMISE)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        for first, second in victims:
            barrier = threading.Barrier(2)
            threads = [threading.Thread(target=revoke, args=(cid, barrier)) for cid in (first, second)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            assert not errors, errors
            with services.sessions() as session:
                rows = [session.get(Certificate, cid) for cid in (first, second)]
                assert all(row is not None and row.status is CertificateStatus.REVOKED for row in rows)
                issuer_id = rows[0].issuer_id  # type: ignore[union-attr]
                assert issuer_id is not None
                newest = latest_crl(session, issuer_id)
                assert newest is not None
                serials = {entry.serial_number for entry in x509.load_der_x509_crl(newest.der)}
                assert {int(row.serial, 16) for row in rows if row is not None} <= serials
                numbers = session.scalars(select(Crl.number).where(Crl.issuer_id == issuer_id)).all()
                assert len(numbers) == len(set(numbers))
    finally:
        services.engine.dispose()


# -- 3. CRL entry without reasonCode for "unspecified" ------------------------------------------


def test_unspecified_revocation_has_no_reason_code(pki_env: PkiEnv) -> None:
    victim = pki_env.issue_person("Zheng Shier", None)
    ctx = pki_env.context()
    with transaction(pki_env.services.sessions) as session:
        revoke_certificate(session, ctx, victim.certificate_id, RevocationReason.UNSPECIFIED)
        der = current_crl(session, ctx).der
    crl = x509.load_der_x509_crl(der)
    entry = crl.get_revoked_certificate_by_serial_number(victim.certificate.serial_number)
    assert entry is not None
    with pytest.raises(x509.ExtensionNotFound):
        entry.extensions.get_extension_for_class(x509.CRLReason)


# -- 4. certificate profiles -------------------------------------------------------------------


def test_tsa_certificate_has_digital_signature_only(pki_env: PkiEnv) -> None:
    cert = x509.load_der_x509_certificate(pki_env.tsa.dump())
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert not (usage.value.content_commitment or usage.value.key_encipherment or usage.value.key_cert_sign)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]


def test_person_certificate_has_document_signing_eku_not_critical(pki_env: PkiEnv) -> None:
    cert = x509.load_der_x509_certificate(pki_env.person.certificate.dump())
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert not eku.critical
    assert set(eku.value) == {
        x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36"),
        ExtendedKeyUsageOID.EMAIL_PROTECTION,
    }


# -- 5. CA validity -----------------------------------------------------------------------------


def test_expired_issuing_ca_refuses_to_issue(pki_env: PkiEnv) -> None:
    issuing = x509.load_der_x509_certificate(pki_env.issuing.dump())
    later = at(pki_env, issuing.not_valid_after_utc + timedelta(days=1))
    with pki_env.services.sessions() as session:
        keys_before = session.scalar(select(func.count(HsmKey.id)))
        with pytest.raises(CaNotUsable, match=r"issuing CA certificate .* expired .*appliance pki init"):
            issue_certificate(session, later, kind=CertificateKind.PERSON, subject=SubjectInfo("Late Comer"))
        # refused before a key was generated
        assert session.scalar(select(func.count(HsmKey.id))) == keys_before
        with pytest.raises(CaNotUsable, match="expired"):
            load_material(session, CertificateKind.ISSUING_CA, later.now())
        session.rollback()


def test_revoked_issuing_ca_refuses_to_issue_and_to_timestamp(pki_env: PkiEnv) -> None:
    with pki_env.services.sessions() as session:
        issuing = session.scalars(
            select(Certificate).where(
                Certificate.kind == CertificateKind.ISSUING_CA, Certificate.status == CertificateStatus.ACTIVE
            )
        ).one()
        issuing.status = CertificateStatus.REVOKED
        session.flush()
        with pytest.raises(CaNotUsable, match=r"issuing CA certificate .* is revoked"):
            issue_certificate(
                session, pki_env.context(), kind=CertificateKind.PERSON, subject=SubjectInfo("Nobody")
            )
        with pytest.raises(CaNotUsable, match="revoked"):
            load_tsa(session)
        session.rollback()


def test_leaf_validity_is_capped_at_the_issuing_ca(pki_env: PkiEnv) -> None:
    issuing = x509.load_der_x509_certificate(pki_env.issuing.dump())
    late = at(pki_env, issuing.not_valid_after_utc - timedelta(days=20))
    with pki_env.services.sessions() as session:
        issued = issue_certificate(
            session, late, kind=CertificateKind.PERSON, subject=SubjectInfo("Short Lived")
        )
        cert = x509.load_der_x509_certificate(issued.row.der)
        assert cert.not_valid_after_utc == issuing.not_valid_after_utc
        session.rollback()


def test_expired_tsa_certificate_refuses_timestamps(pki_env: PkiEnv) -> None:
    tsa = x509.load_der_x509_certificate(pki_env.tsa.dump())
    with pki_env.services.sessions() as session:
        material = load_tsa(session)
    later = at(pki_env, tsa.not_valid_after_utc + timedelta(seconds=1))
    with pytest.raises(CaNotUsable, match="expired"):
        build_response(later, material, tsp.TimeStampReq.load(valid_query()))
    # still fine today
    assert reply_status(respond_timestamp(pki_env.context(), material, valid_query())) == "granted"


def test_pki_init_renews_an_expired_issuing_ca(pki_env: PkiEnv) -> None:
    issuing = x509.load_der_x509_certificate(pki_env.issuing.dump())
    later = at(pki_env, issuing.not_valid_after_utc + timedelta(days=1))
    with pki_env.services.sessions() as session:
        summary = init_pki(session, later)
        assert summary.created == ("issuing", "tsa", "appliance")
        assert summary.issuing.not_after > later.now() and summary.tsa.issuer_id == summary.issuing.id
        # the renewed CA issues again, the old one stays for validating what it signed
        issue_certificate(session, later, kind=CertificateKind.PERSON, subject=SubjectInfo("After Renewal"))
        session.rollback()


# -- 6. /pki/tsa robustness ---------------------------------------------------------------------


@pytest.mark.slow
def test_tsa_fuzz_never_raises(pki_env: PkiEnv) -> None:
    """Two thousand seeded mutations of a valid query: always a TimeStampResp, never an exception.

    About one in six mutations is still a valid query and gets signed in the HSM, which is
    where the time goes."""
    ctx = pki_env.context()
    with pki_env.services.sessions() as session:
        material = load_tsa(session)
    base = valid_query()
    rng = random.Random(20240604)  # noqa: S311 - a reproducible fuzz, not a secret
    deadline = time.monotonic() + 20
    seen = {"granted": 0, "rejection": 0}
    done = 0
    for done in range(1, 2001):  # noqa: B007 - reported below
        reply = respond_timestamp(ctx, material, mutate(base, rng))
        seen[reply_status(reply)] += 1
        if time.monotonic() > deadline:
            break
    assert done >= 800, f"only {done} mutations in the time budget"
    assert seen["rejection"] > 0 and seen["granted"] > 0


def test_tsa_http_fuzz_never_500(client: Any) -> None:
    base = valid_query(cert_req=False)
    rng = random.Random(7)  # noqa: S311 - a reproducible fuzz, not a secret
    addresses = [unique_address() for _ in range(10)]
    statuses: dict[int, int] = {}
    for i in range(400):
        response = client.post(
            "/pki/tsa",
            data=mutate(base, rng),
            content_type="application/timestamp-query",
            # spread over addresses so the per-address rate limit does not answer instead
            environ_base={"REMOTE_ADDR": addresses[i // 40]},
        )
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    assert set(statuses) <= {200, 400}, statuses


class CountingStream(io.BytesIO):
    """A request body that records how many bytes the app read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.read_bytes += len(chunk)
        return chunk

    def readinto(self, buffer: Any) -> int:
        n = super().readinto(buffer)
        self.read_bytes += n
        return n


def test_tsa_reads_at_most_the_limit_of_a_chunked_upload(client: Any) -> None:
    body = CountingStream(b"\x30" * (5 * 1024 * 1024))
    response = client.post(
        "/pki/tsa",
        input_stream=body,
        content_type="application/timestamp-query",
        headers={"Transfer-Encoding": "chunked"},
        # what gunicorn sets for a chunked request it de-chunks itself
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 400
    assert "too large" in response.get_data(as_text=True)
    assert body.read_bytes <= MAX_TIMESTAMP_QUERY_BYTES + 1


def test_tsa_limit_is_shared_by_two_apps_over_one_database(pki_env: PkiEnv) -> None:
    """Two apps with their own services and engines, as two gunicorn workers or two nodes."""
    other_services = build_services(pki_env.config)
    try:
        apps = [
            create_app(pki_env.config, services=pki_env.services),
            create_app(pki_env.config, services=other_services),
        ]
        clients = [app.test_client() for app in apps]
        address = unique_address()
        garbage = b"\x30\x03\x02\x01"  # answered with a rejection, no HSM time

        def post(client: Any, peer: str) -> Any:
            return client.post(
                "/pki/tsa",
                data=garbage,
                content_type="application/timestamp-query",
                environ_base={"REMOTE_ADDR": peer},
            )

        for i in range(TSA_RATE_LIMIT.limit):
            assert post(clients[i % 2], address).status_code == 200, i
        for client in clients:
            refused = post(client, address)
            assert refused.status_code == 429
            assert 1 <= int(refused.headers["Retry-After"]) <= TSA_RATE_LIMIT.window.total_seconds()
            assert "Too many timestamp requests" in refused.get_data(as_text=True)
        # another address has its own count
        assert post(clients[1], unique_address()).status_code == 200
        # the CA certificate and CRL are not limited
        assert clients[0].get("/pki/ca", environ_base={"REMOTE_ADDR": address}).status_code == 200
    finally:
        other_services.engine.dispose()


# -- 7. no assert for runtime checks ------------------------------------------------------------


def test_pki_has_no_assert_statements() -> None:
    """`python -O` strips asserts; runtime checks in the PKI must be explicit errors."""
    package = Path(appliance.pki.__file__).parent
    found = [
        f"{path.name}:{node.lineno}"
        for path in sorted(package.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Assert)
    ]
    assert found == []


# -- 8. GET /pki/crl reads; the job refreshes ---------------------------------------------------


def test_serving_a_crl_writes_only_when_it_is_past_next_update(pki_env: PkiEnv, client: Any) -> None:
    ctx = pki_env.context()
    with transaction(pki_env.services.sessions) as session:
        first = refresh_crl(session, ctx)
    # within the refresh margin of nextUpdate: serving does not regenerate
    near = at(pki_env, first.next_update - refresh_margin(ctx) / 2)
    with pki_env.services.sessions() as session:
        count_before = session.scalar(select(func.count(Crl.id)))
        served = current_crl(session, near)
        assert served.number == first.number
        assert session.scalar(select(func.count(Crl.id))) == count_before
        session.rollback()
    # past nextUpdate: it must, or relying parties get an expired CRL
    past = at(pki_env, first.next_update + timedelta(seconds=1))
    with pki_env.services.sessions() as session:
        fresh = current_crl(session, past)
        assert fresh.number == first.number + 1 and fresh.next_update > past.now()
        session.rollback()
    # over HTTP with the real clock: nothing written
    with pki_env.services.sessions() as session:
        before = session.scalar(select(func.count(Crl.id)))
    assert client.get("/pki/crl").status_code == 200
    with pki_env.services.sessions() as session:
        assert session.scalar(select(func.count(Crl.id))) == before
