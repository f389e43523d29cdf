"""The internal CA, CRLs and TSA against a real SoftHSM2 token, checked with cryptography and openssl."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import func, select

from appliance.db import transaction
from appliance.errors import Conflict, InvalidInput
from appliance.models.enums import CertificateKind, CertificateStatus, RevocationReason
from appliance.models.pki import Certificate, Crl, HsmKey
from appliance.pki.bootstrap import export_pem, init_pki
from appliance.pki.certs import SubjectInfo
from appliance.pki.crl import current_crl, refresh_crl
from appliance.pki.errors import CertificateNotUsable, PkiNotInitialised
from appliance.pki.issue import appliance_key_label, issue_certificate
from appliance.pki.revoke import check_certificate_usable, revoke_certificate
from appliance.pki.tsa import InternalTimeStamper, RejectionResponse, load_tsa
from appliance.web import create_app
from tests.fakes.clock import FakeClock
from tests.fixtures.hsm import PkiEnv

pytestmark = pytest.mark.hsm


@pytest.fixture(scope="module")
def pem_dir(pki_env: PkiEnv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pem")
    with transaction(pki_env.services.sessions) as session:
        export_pem(session, directory)
    return directory


@pytest.fixture
def client(pki_env: PkiEnv) -> Any:
    app = create_app(pki_env.config, services=pki_env.services)
    app.config["TESTING"] = True
    return app.test_client()


def der_file(tmp_path: Path, name: str, der: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(der)
    return path


def test_pki_init_is_idempotent(pki_env: PkiEnv) -> None:
    sessions = pki_env.services.sessions
    with transaction(sessions) as session:
        counts = (
            session.scalar(select(func.count(Certificate.id))),
            session.scalar(select(func.count(HsmKey.id))),
        )
        appliance_before = session.scalars(
            select(Certificate.id).where(Certificate.kind == CertificateKind.APPLIANCE)
        ).all()
        summary = init_pki(session, pki_env.context())
    assert summary.created == ()
    assert [summary.appliance.id] == appliance_before
    with transaction(sessions) as session:
        assert (
            session.scalar(select(func.count(Certificate.id))),
            session.scalar(select(func.count(HsmKey.id))),
        ) == counts
        assert summary.root.der == pki_env.root.dump()


def test_ca_keys_are_in_the_hsm_and_recorded(pki_env: PkiEnv) -> None:
    custody = pki_env.services.custody
    in_token = {key.key_id_hex for key in custody.list_keys()}
    with transaction(pki_env.services.sessions) as session:
        recorded = session.scalars(select(HsmKey)).all()
    assert {row.purpose.value for row in recorded} >= {"root_ca", "issuing_ca", "tsa", "appliance", "person"}
    assert all(row.key_id in in_token for row in recorded)


def test_person_certificate_fields(pki_env: PkiEnv) -> None:
    cert = x509.load_der_x509_certificate(pki_env.person.certificate.dump())
    subject = cert.subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Zhang San"
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Example Corp"
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "Legal"
    assert subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)[0].value == "zhang.san@example.com"
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.content_commitment
    assert not (ku.value.key_cert_sign or ku.value.crl_sign or ku.value.key_encipherment)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36") in eku and ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    crl_dp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert crl_dp[0].full_name[0].value == "http://127.0.0.1:9/pki/crl"
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert aia[0].access_location.value == "http://127.0.0.1:9/pki/ca"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == ["zhang.san@example.com"]
    issuing = x509.load_der_x509_certificate(pki_env.issuing.dump())
    cert.verify_directly_issued_by(issuing)
    assert cert.public_key() == x509.load_der_x509_certificate(pki_env.person.certificate.dump()).public_key()
    spki = pki_env.services.custody.public_key_info(pki_env.person.key)
    assert (
        cert.public_key().public_bytes(
            encoding=__import__(
                "cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]
            ).Encoding.DER,
            format=__import__(
                "cryptography.hazmat.primitives.serialization", fromlist=["PublicFormat"]
            ).PublicFormat.SubjectPublicKeyInfo,
        )
        == spki
    )


def test_openssl_verifies_the_chain(pki_env: PkiEnv, pem_dir: Path, tmp_path: Path) -> None:
    leaf = tmp_path / "leaf.pem"
    subprocess.run(
        ["openssl", "x509", "-inform", "der", "-out", str(leaf)],
        input=pki_env.person.certificate.dump(),
        check=True,
        capture_output=True,
    )
    for target in (leaf, pem_dir / "tsa.pem"):
        result = subprocess.run(
            [
                "openssl",
                "verify",
                "-CAfile",
                str(pem_dir / "root.pem"),
                "-untrusted",
                str(pem_dir / "issuing.pem"),
                str(target),
            ],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result.stderr


def test_tsa_certificate_has_only_critical_time_stamping(pki_env: PkiEnv) -> None:
    cert = x509.load_der_x509_certificate(pki_env.tsa.dump())
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]


def test_appliance_certificate_signs_documents_with_its_key_in_the_hsm(pki_env: PkiEnv) -> None:
    with transaction(pki_env.services.sessions) as session:
        row = session.scalars(select(Certificate).where(Certificate.kind == CertificateKind.APPLIANCE)).one()
        key_row = session.get(HsmKey, row.key_id)
        label = appliance_key_label(session)
    assert key_row is not None and key_row.purpose.value == "appliance" and label == key_row.label
    assert key_row.key_id in {key.key_id_hex for key in pki_env.services.custody.list_keys()}
    cert = x509.load_der_x509_certificate(row.der)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "Example Corp E-Signature Appliance"
    )
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.content_commitment
    assert not (ku.value.key_cert_sign or ku.value.crl_sign or ku.value.key_encipherment)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert not eku.critical and list(eku.value) == [
        x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36"),
        ExtendedKeyUsageOID.EMAIL_PROTECTION,
    ]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    cert.verify_directly_issued_by(x509.load_der_x509_certificate(pki_env.issuing.dump()))


def test_pki_init_replaces_a_revoked_appliance_certificate(pki_env: PkiEnv) -> None:
    ctx = pki_env.context()
    with pki_env.services.sessions() as session:
        old = session.scalars(select(Certificate).where(Certificate.kind == CertificateKind.APPLIANCE)).one()
        revoke_certificate(session, ctx, old.id, RevocationReason.KEY_COMPROMISE)
        with pytest.raises(PkiNotInitialised, match="pki init"):
            appliance_key_label(session)

        summary = init_pki(session, ctx)

        assert summary.created == ("appliance",)
        assert summary.appliance.id != old.id and summary.appliance.issuer_id == summary.issuing.id
        new_key = session.get(HsmKey, summary.appliance.key_id)
        assert new_key is not None and appliance_key_label(session) == new_key.label
        assert new_key.id != old.key_id
        # the session-wide environment keeps its first appliance certificate
        session.rollback()


def test_subject_data_is_checked(pki_env: PkiEnv) -> None:
    with transaction(pki_env.services.sessions) as session:
        for subject in (
            SubjectInfo(""),
            SubjectInfo("x" * 65),
            SubjectInfo("ok", email="not-an-address"),
            SubjectInfo("ok", organisation="line\nbreak"),
        ):
            with pytest.raises(InvalidInput):
                issue_certificate(session, pki_env.context(), kind=CertificateKind.PERSON, subject=subject)
        with pytest.raises(InvalidInput):
            issue_certificate(
                session, pki_env.context(), kind=CertificateKind.ROOT_CA, subject=SubjectInfo("x")
            )


def test_revoke_publishes_crl_with_reason_and_refuses_signing(
    pki_env: PkiEnv, pem_dir: Path, tmp_path: Path
) -> None:
    victim = pki_env.issue_person("Wang Wu", "wang.wu@example.com")
    ctx = pki_env.context()
    with transaction(pki_env.services.sessions) as session:
        check_certificate_usable(session, victim.certificate_id, ctx.clock.now())
        revoke_certificate(session, ctx, victim.certificate_id, RevocationReason.KEY_COMPROMISE)
        with pytest.raises(Conflict):
            revoke_certificate(session, ctx, victim.certificate_id, RevocationReason.KEY_COMPROMISE)
    with transaction(pki_env.services.sessions) as session:
        with pytest.raises(CertificateNotUsable, match="revoked"):
            check_certificate_usable(session, victim.certificate_id, ctx.clock.now())
        crl_der = current_crl(session, ctx).der
    crl = x509.load_der_x509_crl(crl_der)
    entry = crl.get_revoked_certificate_by_serial_number(victim.certificate.serial_number)
    assert entry is not None
    assert (
        entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        == x509.ReasonFlags.key_compromise
    )
    assert crl.is_signature_valid(x509.load_der_x509_certificate(pki_env.issuing.dump()).public_key())
    crl_file = der_file(tmp_path, "crl.der", crl_der)
    result = subprocess.run(
        [
            "openssl",
            "crl",
            "-inform",
            "der",
            "-in",
            str(crl_file),
            "-noout",
            "-text",
            "-CAfile",
            str(pem_dir / "chain.pem"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "verify OK" in result.stdout + result.stderr
    assert format(victim.certificate.serial_number, "X") in result.stdout.replace(":", "")
    assert "Key Compromise" in result.stdout


def test_expired_certificate_cannot_sign(pki_env: PkiEnv) -> None:
    with transaction(pki_env.services.sessions) as session:
        row = session.get(Certificate, pki_env.person.certificate_id)
        assert row is not None and row.status is CertificateStatus.ACTIVE
        with pytest.raises(CertificateNotUsable, match="expired"):
            check_certificate_usable(session, row.id, row.not_after + timedelta(seconds=1))
        with pytest.raises(CertificateNotUsable, match="not valid yet"):
            check_certificate_usable(session, row.id, row.not_before - timedelta(seconds=1))


def test_crl_is_regenerated_near_next_update(pki_env: PkiEnv) -> None:
    with transaction(pki_env.services.sessions) as session:
        first = refresh_crl(session, pki_env.context())
        again = refresh_crl(session, pki_env.context())
        assert again.number == first.number
        later = replace(pki_env.context(), clock=FakeClock(first.next_update - timedelta(minutes=1)))
        fresh = refresh_crl(session, later)
        assert fresh.number == first.number + 1 and fresh.next_update > first.next_update
        assert session.scalar(select(func.count(Crl.id)).where(Crl.issuer_id == first.issuer_id)) >= 2


def test_http_ca_and_crl(client: Any, pki_env: PkiEnv) -> None:
    issuing = client.get("/pki/ca")
    assert issuing.status_code == 200 and issuing.mimetype == "application/pkix-cert"
    assert issuing.data == pki_env.issuing.dump()
    root = client.get("/pki/ca/root")
    assert root.data == pki_env.root.dump()
    bundle = client.get("/pki/ca.pem")
    assert bundle.status_code == 200 and bundle.data.count(b"BEGIN CERTIFICATE") == 3
    crl = client.get("/pki/crl")
    assert crl.status_code == 200 and crl.mimetype == "application/pkix-crl"
    parsed = x509.load_der_x509_crl(crl.data)
    assert parsed.is_signature_valid(x509.load_der_x509_certificate(pki_env.issuing.dump()).public_key())
    root_crl = x509.load_der_x509_crl(client.get("/pki/crl/root").data)
    assert root_crl.is_signature_valid(x509.load_der_x509_certificate(pki_env.root.dump()).public_key())


def test_tsa_over_http_answers_openssl(client: Any, pki_env: PkiEnv, pem_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_bytes(b"the contract text")
    query = tmp_path / "q.tsq"
    subprocess.run(
        ["openssl", "ts", "-query", "-data", str(data), "-sha256", "-cert", "-out", str(query)],
        check=True,
        capture_output=True,
    )
    response = client.post("/pki/tsa", data=query.read_bytes(), content_type="application/timestamp-query")
    assert response.status_code == 200 and response.mimetype == "application/timestamp-reply"
    reply = der_file(tmp_path, "r.tsr", response.data)
    result = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-data",
            str(data),
            "-in",
            str(reply),
            "-CAfile",
            str(pem_dir / "root.pem"),
            "-untrusted",
            str(pem_dir / "issuing.pem"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "Verification: OK" in result.stdout, result.stdout + result.stderr


def test_tsa_rejects_bad_queries(client: Any) -> None:
    assert client.post("/pki/tsa", data=b"x", content_type="text/plain").status_code == 400
    garbage = client.post("/pki/tsa", data=b"\x30\x03\x02\x01", content_type="application/timestamp-query")
    assert garbage.status_code == 200
    assert RejectionResponse.load(garbage.data)["status"]["status"].native == "rejection"
    md5 = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {"hash_algorithm": {"algorithm": "md5"}, "hashed_message": b"0" * 16},
        }
    )
    refused = client.post("/pki/tsa", data=md5.dump(), content_type="application/timestamp-query")
    assert RejectionResponse.load(refused.data)["status"]["fail_info"].native == {"bad_alg"}


def test_in_process_timestamper(pki_env: PkiEnv) -> None:
    ctx = pki_env.context()
    stamper = InternalTimeStamper(ctx, lambda: _load_tsa(pki_env))
    digest = hashlib.sha256(b"document").digest()
    token = asyncio.run(stamper.async_timestamp(digest, "sha256"))
    assert isinstance(token, cms.ContentInfo)
    tst = token["content"]["encap_content_info"]["content"].parsed
    assert tst["message_imprint"]["hashed_message"].native == digest
    assert abs(tst["gen_time"].native - datetime.now(UTC)) < timedelta(minutes=1)


def _load_tsa(pki_env: PkiEnv) -> Any:
    with transaction(pki_env.services.sessions) as session:
        return load_tsa(session)


def test_readyz_reports_the_hsm(client: Any, write_config: Any, softhsm: Any) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"]["hsm"]["status"] == "ok"


def test_readyz_without_token(write_config: Any, softhsm: Any, caplog: Any) -> None:
    from appliance.db import create_db_engine, migrate_database
    from tests.fixtures.hsm import hsm_section

    _path, cfg = write_config(hsm=hsm_section(softhsm, token_label="absent-token"))
    migrate_database(create_db_engine(cfg.database))
    app = create_app(cfg)
    with caplog.at_level("WARNING", logger="appliance.web.health"):
        response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["hsm"] == {"status": "unavailable"}
    # the token's label and the module's path are for the log, not for whoever asks
    body = response.get_data(as_text=True)
    assert "absent-token" not in body and str(softhsm.module) not in body
    assert "absent-token" in caplog.text and "not present" in caplog.text
    assert softhsm.pin not in body and softhsm.pin not in caplog.text
