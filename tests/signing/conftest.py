"""A signing environment on the real SoftHSM2 token: the appliance PKI (root, issuing CA, TSA,
keys in the HSM), a person's key and certificate, and an NSS database for pdfsig that trusts
the test root and knows the current CRLs."""

from __future__ import annotations

import io
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.signers import Signer
from pyhanko.sign.timestamps import TimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore
from sqlalchemy import select

from appliance.clock import Clock, SystemClock
from appliance.config import AppConfig, load_config
from appliance.db import create_db_engine, migrate_database
from appliance.models.enums import CertificateKind, CertificateStatus, RevocationReason
from appliance.models.pki import Certificate, Crl
from appliance.pki import certs
from appliance.pki.bootstrap import init_pki
from appliance.pki.ca import make_context
from appliance.pki.issue import IssuedCertificate, issue_certificate
from appliance.pki.revoke import revoke_certificate
from appliance.services import Services, build_services
from appliance.signing.documents import load_timestamper
from appliance.signing.trust import TrustMaterial, load_chain, load_trust_material
from tests.conftest import require_backend
from tests.fakes.clock import FakeClock
from tests.fixtures.hsm import SoftHsm, hsm_section

NOW = datetime.now(UTC)


def self_signed(
    common_name: str = "Foreign Signer",
) -> tuple[asn1_x509.Certificate, asn1_keys.PrivateKeyInfo]:
    """A software key and self-signed certificate: a signer from elsewhere, input to the validator."""
    key = rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), True)
        .sign(key, hashes.SHA256())
    )
    der_key = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return (
        asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
        asn1_keys.PrivateKeyInfo.load(der_key),
    )


def software_signed(
    pdf: bytes,
    cert: asn1_x509.Certificate,
    key: asn1_keys.PrivateKeyInfo,
    chain: tuple[asn1_x509.Certificate, ...] = (),
    *,
    certify: bool = False,
) -> bytes:
    """`pdf` signed by pyHanko alone with a software key: a document signed elsewhere."""
    signer = signers.SimpleSigner(
        signing_cert=cert, signing_key=key, cert_registry=SimpleCertificateStore.from_certs(chain)
    )
    meta = signers.PdfSignatureMetadata(field_name="Sig1", subfilter=SigSeedSubFilter.PADES, certify=certify)
    return signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), meta, signer=signer).getvalue()


def impostor_chain(
    root_der: bytes, issuing_der: bytes, signer_der: bytes
) -> tuple[asn1_x509.Certificate, asn1_keys.PrivateKeyInfo, tuple[asn1_x509.Certificate, ...]]:
    """Software root, issuing CA and signer whose names copy the given certificates' names.

    Returns the signer's certificate and key and its chain (issuing CA, root), every link
    properly signed: only the keys differ from the originals.
    """
    names = [x509.load_der_x509_certificate(der).subject for der in (root_der, issuing_der, signer_der)]
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in names]
    certs: list[x509.Certificate] = []
    for position, (name, key) in enumerate(zip(names, keys, strict=True)):
        issuer = max(position - 1, 0)
        is_ca = position < 2
        usage = (True, True, False, False, False, is_ca, is_ca, False, False)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(names[issuer])
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(*usage), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(keys[issuer].public_key()), critical=False
            )
        )
        certs.append(builder.sign(keys[issuer], hashes.SHA256()))
    as_asn1 = [asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in certs]
    signer_key = keys[2].private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return as_asn1[2], asn1_keys.PrivateKeyInfo.load(signer_key), (as_asn1[1], as_asn1[0])


@dataclass
class SigningEnv:
    config: AppConfig
    config_path: Path
    services: Services
    root_der: bytes
    person: IssuedCertificate
    workdir: Path

    def trust(self) -> TrustMaterial:
        with self.services.sessions() as session:
            return load_trust_material(session)

    def issuing_ca_der(self) -> bytes:
        with self.services.sessions() as session:
            der = session.scalars(
                select(Certificate.der).where(
                    Certificate.kind == CertificateKind.ISSUING_CA,
                    Certificate.status == CertificateStatus.ACTIVE,
                )
            ).first()
        assert der is not None
        return der

    def timestamper(self) -> TimeStamper:
        with self.services.sessions() as session:
            stamper = load_timestamper(session, self.services.signing)
        assert stamper is not None
        return stamper

    def issue_person(self, name: str, clock: Clock | None = None) -> IssuedCertificate:
        ctx = make_context(self.services.custody, self.config, clock or SystemClock())
        with self.services.sessions.begin() as session:
            issued = issue_certificate(
                session,
                ctx,
                kind=CertificateKind.PERSON,
                subject=certs.SubjectInfo(common_name=name, organisation="Example Corp"),
            )
            session.expunge(issued.row)
        return issued

    def revoke(self, issued: IssuedCertificate) -> None:
        ctx = make_context(self.services.custody, self.config, SystemClock())
        with self.services.sessions.begin() as session:
            revoke_certificate(session, ctx, issued.row.id, RevocationReason.KEY_COMPROMISE)

    @contextmanager
    def signer(self, issued: IssuedCertificate | None = None) -> Iterator[Signer]:
        issued = issued or self.person
        assert self.services.custody is not None
        with self.services.sessions() as session:
            row = session.get(Certificate, issued.row.id)
            assert row is not None
            chain = load_chain(session, row)
        with self.services.custody.pdf_signer(issued.key, issued.certificate, chain) as signer:
            yield signer

    def nss_dir(self) -> Path:
        """A fresh NSS database trusting the root ("CT,C,C") with every current CRL imported."""
        require_backend("certutil", shutil.which("certutil") is not None, "apt-get install libnss3-tools")
        nss = self.workdir / f"nss-{secrets.token_hex(4)}"
        nss.mkdir()
        subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True, timeout=60)
        (nss / "root.der").write_bytes(self.root_der)
        subprocess.run(
            [
                "certutil",
                "-A",
                "-d",
                f"sql:{nss}",
                "-n",
                "appliance-root",
                "-t",
                "CT,C,C",
                "-i",
                nss / "root.der",
            ],
            check=True,
            timeout=60,
        )
        with self.services.sessions() as session:
            # only the newest CRL of each issuer: NSS refuses a second CRL of an issuer whose
            # thisUpdate is not later (same second) than the one it already holds
            newest: dict[int, Crl] = {}
            for row in session.scalars(select(Crl).order_by(Crl.number)).all():
                newest[row.issuer_id] = row
            crls = [row.der for row in newest.values()]
        for index, der in enumerate(crls):
            path = nss / f"crl-{index}.der"
            path.write_bytes(der)
            # NSS's path validation (pdfsig) wants a CRL for a certificate that names a CRL DP
            subprocess.run(
                ["crlutil", "-I", "-d", f"sql:{nss}", "-i", path, "-B"],
                check=True,
                timeout=60,
                capture_output=True,
            )
        return nss


def run_pdfsig(nss: Path, pdf: Path) -> str:
    require_backend("pdfsig", shutil.which("pdfsig") is not None, "apt-get install poppler-utils")
    result = subprocess.run(
        ["pdfsig", "-nssdir", f"sql:{nss}", "-no-ocsp", str(pdf)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.stdout + result.stderr


def pdfsig_blocks(output: str) -> list[str]:
    """One text block per signature, in file order."""
    parts = output.split("Signature #")[1:]
    return parts


def build_signing_env(base: Path, softhsm: SoftHsm, clock: Clock) -> SigningEnv:
    """A fresh database with the appliance PKI and a person's certificate, made at `clock`'s time."""
    (base / "blobs").mkdir(parents=True)
    secret = base / "session-secret"
    secret.write_text(secrets.token_urlsafe(48))
    raw: dict[str, Any] = {
        "private_cloud_address": "http://127.0.0.1:9",
        "network": {"allowed_networks": ["127.0.0.0/8"]},
        "database": {"url": f"sqlite:///{base}/appliance.db"},
        "storage": {"path": str(base / "blobs")},
        "auth": {"session_secret_file": str(secret)},
        "hsm": hsm_section(softhsm),
    }
    config_path = base / "config.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    config = load_config(config_path, environ={})
    migrate_database(create_db_engine(config.database))
    services = build_services(config)
    with services.sessions.begin() as session:
        summary = init_pki(session, make_context(services.custody, config, clock))
        root_der = summary.root.der
    env = SigningEnv(
        config=config,
        config_path=config_path,
        services=services,
        root_der=root_der,
        person=None,  # type: ignore[arg-type]
        workdir=base,
    )
    env.person = env.issue_person("Zhang San", clock)
    return env


@pytest.fixture(scope="session")
def signing_env(tmp_path_factory: pytest.TempPathFactory, softhsm: SoftHsm, custody: Any) -> SigningEnv:
    return build_signing_env(tmp_path_factory.mktemp("signing"), softhsm, SystemClock())


@pytest.fixture
def fixed_clock() -> FakeClock:
    return FakeClock(datetime.now(UTC))


def load_cert(der: bytes) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(der)
