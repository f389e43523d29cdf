"""External CA flow: CSR for an HSM key, an enterprise CA (cryptography, in the test) issues, import.

An import never adds a trust anchor: the chain must end at a root an administrator trusted
first (`add_trust_root`, `appliance pki trust-root add`, logged), intermediates are stored as
EXTERNAL_CA, and the imported certificate must be a valid signing certificate. A certificate
naming a CRL distribution point signs only while a current CRL of its CA is stored
(`import_crl`, `appliance pki import-crl`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from appliance.audit import verify_chain
from appliance.cli import main
from appliance.db import transaction
from appliance.errors import Conflict, InvalidInput
from appliance.models import AuditEvent
from appliance.models.enums import CertificateKind, CertificateStatus
from appliance.models.pki import Certificate, Crl
from appliance.pki.certs import SubjectInfo
from appliance.pki.crl import current_crl
from appliance.pki.errors import CertificateMismatch, CertificateNotFound, CertificateNotUsable
from appliance.pki.external import (
    add_trust_root,
    create_csr,
    import_certificate,
    import_crl,
    retire_trust_root,
)
from appliance.signing.documents import resolve_signer, sign_stream
from appliance.signing.trust import load_trust_material
from appliance.storage import atomic_output
from tests.fixtures.hsm import PkiEnv
from tests.fixtures.pdfs import make_pdf

pytestmark = pytest.mark.hsm

SIGNING_USAGE = {"digital_signature": True, "content_commitment": True}


def _key_usage(**flags: bool) -> x509.KeyUsage:
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
    )
    return x509.KeyUsage(
        **{name: flags.get(name, False) for name in names}, encipher_only=False, decipher_only=False
    )


@dataclass
class Ca:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    def issue(
        self,
        subject: x509.Name,
        public_key: Any,
        *,
        ca: bool = False,
        usage: dict[str, bool] | None = None,
        start: timedelta = timedelta(minutes=-1),
        end: timedelta = timedelta(days=10),
        crl_url: str | None = None,
    ) -> x509.Certificate:
        now = datetime.now(UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + start)
            .not_valid_after(now + end)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if usage is not None:
            builder = builder.add_extension(_key_usage(**usage), critical=True)
        if crl_url is not None:
            # a declared CRL makes hard-fail revocation checking apply to the certificate
            point = x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)
            builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def crl(
        self,
        number: int | None,
        *,
        revoked: Sequence[int] = (),
        this_update: timedelta = timedelta(minutes=-1),
        next_update: timedelta = timedelta(days=1),
        signer: ec.EllipticCurvePrivateKey | None = None,
        delta_of: int | None = None,
        pem: bool = False,
    ) -> bytes:
        """This CA's CRL (signed by `signer` instead, to forge one)."""
        now = datetime.now(UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now + this_update)
            .next_update(now + next_update)
        )
        if number is not None:
            builder = builder.add_extension(x509.CRLNumber(number), critical=False)
        if delta_of is not None:
            builder = builder.add_extension(x509.DeltaCRLIndicator(delta_of), critical=True)
        for serial in revoked:
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(now - timedelta(minutes=1))
            )
            builder = builder.add_revoked_certificate(entry.build())
        crl = builder.sign(signer or self.key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.PEM if pem else serialization.Encoding.DER)

    def intermediate(self, name: str, **kwargs: Any) -> Ca:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        usage = kwargs.pop("usage", {"key_cert_sign": True, "crl_sign": True})
        return Ca(key, self.issue(subject, key.public_key(), ca=True, usage=usage, **kwargs))


def enterprise_root(name: str = "Enterprise Root", *, ca: bool = True) -> Ca:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Ca(key, cert)


def issue_leaf(issuer: Ca, csr_der: bytes, **kwargs: Any) -> bytes:
    csr = x509.load_der_x509_csr(csr_der)
    kwargs.setdefault("usage", SIGNING_USAGE)
    return issuer.issue(csr.subject, csr.public_key(), **kwargs).public_bytes(serialization.Encoding.DER)


def count(session: Any, kind: CertificateKind) -> int:
    return session.scalar(select(func.count(Certificate.id)).where(Certificate.kind == kind)) or 0


def test_csr_for_hsm_key_and_import(pki_env: PkiEnv) -> None:
    ca = enterprise_root()
    ctx = pki_env.context()
    with transaction(pki_env.services.sessions) as session:
        key_row, csr_der = create_csr(
            session, ctx, SubjectInfo("Zhao Liu", "Example Corp", email="zhao@example.com")
        )
        other_row, other_csr_der = create_csr(session, ctx, SubjectInfo("Someone Else"))
        add_trust_root(session, ctx, ca.der)
    csr = x509.load_der_x509_csr(csr_der)
    assert csr.is_signature_valid  # proof of possession made by the HSM key
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Zhao Liu"
    assert (
        csr.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == key_row.public_key_der
    )
    issued = issue_leaf(ca, csr_der)
    with transaction(pki_env.services.sessions) as session:
        # a certificate for another key is refused
        other = issue_leaf(ca, other_csr_der)
        with pytest.raises(CertificateMismatch, match="another key"):
            import_certificate(session, ctx, key_row.label, other, [ca.der])
        # a chain that does not link up is refused
        stranger = enterprise_root("Stranger Root")
        with pytest.raises(CertificateMismatch, match="not issued"):
            import_certificate(session, ctx, key_row.label, issued, [stranger.der])
        with pytest.raises(CertificateMismatch):
            import_certificate(session, ctx, key_row.label, b"garbage", [ca.der])
        row = import_certificate(session, ctx, key_row.label, issued, [ca.der])
        assert row.kind is CertificateKind.PERSON and row.key_id == key_row.id and row.der == issued
        assert other_row.id != key_row.id
        # the root may be left out of the chain: it is found among the trusted roots
        with pytest.raises(Conflict, match="imported before"):
            import_certificate(session, ctx, key_row.label, issued, [])


def test_import_never_trusts_a_root_sent_with_it(pki_env: PkiEnv) -> None:
    ca = enterprise_root("Unvetted Root")
    ctx = pki_env.context()
    with transaction(pki_env.services.sessions) as session:
        key_row, csr_der = create_csr(session, ctx, SubjectInfo("Qian Ba"))
        roots_before = count(session, CertificateKind.TRUST_ROOT)
        issued = issue_leaf(ca, csr_der)
        with pytest.raises(CertificateMismatch, match="root an administrator trusts"):
            import_certificate(session, ctx, key_row.label, issued, [ca.der])
        with pytest.raises(CertificateMismatch, match="root an administrator trusts"):
            import_certificate(session, ctx, key_row.label, issued, [])
        assert count(session, CertificateKind.TRUST_ROOT) == roots_before
        assert ca.der not in [c.dump() for c in load_trust_material(session).roots]


def test_intermediates_are_stored_as_external_ca(pki_env: PkiEnv) -> None:
    root = enterprise_root("Group Root")
    intermediate = root.intermediate("Group Issuing CA")
    ctx = pki_env.context()
    with transaction(pki_env.services.sessions) as session:
        trusted = add_trust_root(session, ctx, root.der)
        key_row, csr_der = create_csr(session, ctx, SubjectInfo("Sun Jiu"))
        leaf = import_certificate(
            session, ctx, key_row.label, issue_leaf(intermediate, csr_der), [intermediate.der, root.der]
        )
        middle = session.get(Certificate, leaf.issuer_id)
        assert middle is not None and middle.der == intermediate.der
        assert middle.kind is CertificateKind.EXTERNAL_CA and middle.issuer_id == trusted.id
        trust = load_trust_material(session)
        roots = [c.dump() for c in trust.roots]
        assert root.der in roots and intermediate.der not in roots
        assert intermediate.der in [c.dump() for c in trust.other_certs]


def test_imported_certificate_must_be_a_valid_signing_certificate(pki_env: PkiEnv) -> None:
    ca = enterprise_root("Checking Root")
    ctx = pki_env.context()
    with transaction(pki_env.services.sessions) as session:
        add_trust_root(session, ctx, ca.der)
        key_row, csr_der = create_csr(session, ctx, SubjectInfo("Zhou Shi"))
        for bad, message in (
            (issue_leaf(ca, csr_der, usage=None), "nonRepudiation"),
            (issue_leaf(ca, csr_der, usage={"digital_signature": True}), "nonRepudiation"),
            (issue_leaf(ca, csr_der, usage={"key_encipherment": True}), "nonRepudiation"),
            (issue_leaf(ca, csr_der, start=timedelta(days=-10), end=timedelta(days=-1)), "expired"),
            (issue_leaf(ca, csr_der, start=timedelta(days=1)), "not valid before"),
            (issue_leaf(ca, csr_der, ca=True), "CA certificate"),
        ):
            with pytest.raises(CertificateMismatch, match=message):
                import_certificate(session, ctx, key_row.label, bad, [ca.der])
        # an expired intermediate is refused too
        old = ca.intermediate("Old Issuing CA", start=timedelta(days=-10), end=timedelta(days=-1))
        with pytest.raises(CertificateMismatch, match="expired"):
            import_certificate(session, ctx, key_row.label, issue_leaf(old, csr_der), [old.der])
        not_ca = ca.intermediate("Not A CA", usage={"digital_signature": True})
        with pytest.raises(CertificateMismatch, match="keyCertSign"):
            import_certificate(session, ctx, key_row.label, issue_leaf(not_ca, csr_der), [not_ca.der])


def test_add_trust_root_accepts_only_self_signed_ca_certificates(pki_env: PkiEnv) -> None:
    root = enterprise_root("Picky Root")
    ctx = pki_env.context()
    with transaction(pki_env.services.sessions) as session:
        with pytest.raises(CertificateMismatch, match="self-signed"):
            add_trust_root(session, ctx, root.intermediate("Some Intermediate").der)
        with pytest.raises(CertificateMismatch, match="not a CA"):
            add_trust_root(session, ctx, enterprise_root("Leafy", ca=False).der)
        with pytest.raises(CertificateMismatch):
            add_trust_root(session, ctx, b"not a certificate")
        with pytest.raises(Conflict, match="stored as root_ca"):
            add_trust_root(session, ctx, pki_env.root.dump())
        add_trust_root(session, ctx, root.cert.public_bytes(serialization.Encoding.PEM))
        with pytest.raises(Conflict, match="already trusted"):
            add_trust_root(session, ctx, root.der)


def test_retired_trust_root_is_no_anchor(pki_env: PkiEnv) -> None:
    root = enterprise_root("Retired Root")
    ctx = pki_env.context()
    with transaction(pki_env.services.sessions) as session:
        row = add_trust_root(session, ctx, root.der)
        key_row, csr_der = create_csr(session, ctx, SubjectInfo("Wu Shiyi"))
        assert root.der in [c.dump() for c in load_trust_material(session).roots]
        retired = retire_trust_root(session, row.sha256_fingerprint.upper())
        assert retired.status is CertificateStatus.SUPERSEDED
        assert root.der not in [c.dump() for c in load_trust_material(session).roots]
        with pytest.raises(CertificateMismatch, match="root an administrator trusts"):
            import_certificate(session, ctx, key_row.label, issue_leaf(root, csr_der), [root.der])
        # trusting it again is the same explicit action
        assert add_trust_root(session, ctx, root.der).status is CertificateStatus.ACTIVE


def test_cli_trust_root_add_and_retire_are_logged(pki_env: PkiEnv, tmp_path: Path) -> None:
    root = enterprise_root("CLI Root")
    pem = tmp_path / "root.pem"
    pem.write_bytes(root.cert.public_bytes(serialization.Encoding.PEM))
    config = str(pki_env.config_path)
    runner = CliRunner()
    added = runner.invoke(main, ["--config", config, "pki", "trust-root", "add", str(pem)])
    assert added.exit_code == 0, added.output
    fingerprint = added.output.split("sha256 ")[1].split()[0]
    again = runner.invoke(main, ["--config", config, "pki", "trust-root", "add", str(pem)])
    assert again.exit_code == 1 and "already trusted" in again.output
    retired = runner.invoke(main, ["--config", config, "pki", "trust-root", "retire", fingerprint])
    assert retired.exit_code == 0, retired.output
    with pki_env.services.sessions() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("pki.trust_root_%")).order_by(AuditEvent.seq)
        ).all()
        mine = [e for e in events if fingerprint in (e.details or "")]
        assert [e.action for e in mine] == ["pki.trust_root_added", "pki.trust_root_retired"]
        assert all(e.actor_name and e.actor_name.startswith("cli") for e in mine)
        assert verify_chain(session) == []


# -- CRLs of external CAs -------------------------------------------------------------------------

CRL_URL = "http://ca.corp.example/root.crl"


def external_signer(pki_env: PkiEnv, root_name: str) -> tuple[Ca, str, int]:
    """A trusted enterprise root, and an HSM key with a certificate it issued naming its CRL.

    Returns the root, the key label and the certificate's serial number.
    """
    root = enterprise_root(root_name)
    ctx = pki_env.context()
    with transaction(pki_env.services.sessions) as session:
        add_trust_root(session, ctx, root.der)
        key_row, csr_der = create_csr(session, ctx, SubjectInfo("Zheng Shisan", "Example Corp"))
        leaf = issue_leaf(root, csr_der, crl_url=CRL_URL)
        import_certificate(session, ctx, key_row.label, leaf, [])
    return root, key_row.label, x509.load_der_x509_certificate(leaf).serial_number


def signs(pki_env: PkiEnv, key_label: str, tmp_path: Path) -> Callable[[], Any]:
    source = tmp_path / "contract.pdf"
    source.write_bytes(make_pdf())
    services = pki_env.services

    def sign() -> Any:
        with source.open("rb") as src, atomic_output(tmp_path / "signed.pdf") as out:
            with transaction(services.sessions) as session:
                signer = resolve_signer(session, services.signing, key_label, timestamp=False)
            return sign_stream(services.signing, signer, src, out)

    return sign


def imported(pki_env: PkiEnv, crl: bytes) -> Crl:
    with transaction(pki_env.services.sessions) as session:
        return import_crl(session, pki_env.context(), crl)


def test_external_certificate_signs_only_with_a_current_crl_of_its_ca(
    pki_env: PkiEnv, tmp_path: Path
) -> None:
    root, key_label, serial = external_signer(pki_env, "CRL Root")
    sign = signs(pki_env, key_label, tmp_path)
    with pytest.raises(CertificateNotUsable, match="revocation status is unknown"):
        sign()
    assert not (tmp_path / "signed.pdf").exists()

    first = imported(pki_env, root.crl(1))
    assert first.number == 1 and first.next_update > datetime.now(UTC)
    assert sign().sha256 == hashlib.sha256((tmp_path / "signed.pdf").read_bytes()).hexdigest()

    imported(pki_env, root.crl(2, revoked=[serial], pem=True))
    with pytest.raises(CertificateNotUsable, match="revoked"):
        sign()


def test_import_crl_refusals(pki_env: PkiEnv) -> None:
    root, _label, _serial = external_signer(pki_env, "Refusing Root")
    stranger = enterprise_root("Stranger CRL Root")
    with transaction(pki_env.services.sessions) as session:
        own_crl = current_crl(session, pki_env.context()).der
    forger = ec.generate_private_key(ec.SECP256R1())
    imported(pki_env, root.crl(5))
    for crl, error, message in (
        (b"not a CRL", InvalidInput, "not an X.509 CRL"),
        (root.cert.public_bytes(serialization.Encoding.PEM), InvalidInput, "not an X.509 CRL"),
        (root.crl(6, signer=forger), InvalidInput, "signature does not verify"),
        (stranger.crl(1), CertificateNotFound, "no external CA named"),
        (root.crl(6, this_update=timedelta(days=-2), next_update=timedelta(days=-1)), InvalidInput, "stale"),
        (root.crl(6, this_update=timedelta(hours=1)), InvalidInput, "in the future"),
        (root.crl(5), Conflict, "number 5 is stored already"),
        (root.crl(4), Conflict, "number 5 is stored already"),
        (root.crl(None), InvalidInput, "no CRL number"),
        (root.crl(7, delta_of=5), InvalidInput, "delta CRL"),
        (own_crl, InvalidInput, "appliance's own CA"),
        (root.crl(2**64), InvalidInput, "larger than this appliance can store"),
    ):
        with transaction(pki_env.services.sessions) as session:
            before = session.scalar(select(func.count(Crl.id)))
            with pytest.raises(error, match=message):
                import_crl(session, pki_env.context(), crl)
            assert session.scalar(select(func.count(Crl.id))) == before
    assert imported(pki_env, root.crl(6)).number == 6
    # CAs that number CRLs by time need 64 bits
    assert imported(pki_env, root.crl(20_261_123_120_000)).number == 20_261_123_120_000
    # a CA whose certificate forbids CRL signing: validation would ignore its CRL anyway
    no_crl_sign = root.intermediate("No cRLSign CA", usage={"key_cert_sign": True})
    ctx = pki_env.context()
    with transaction(pki_env.services.sessions) as session:
        key_row, csr_der = create_csr(session, ctx, SubjectInfo("Feng Shisi"))
        import_certificate(session, ctx, key_row.label, issue_leaf(no_crl_sign, csr_der), [no_crl_sign.der])
        with pytest.raises(InvalidInput, match="cRLSign"):
            import_crl(session, ctx, no_crl_sign.crl(1))


def test_cli_import_crl_is_logged(pki_env: PkiEnv, tmp_path: Path) -> None:
    root, _label, _serial = external_signer(pki_env, "CLI CRL Root")
    crl_file = tmp_path / "root.crl"
    crl_file.write_bytes(root.crl(3))
    config = str(pki_env.config_path)
    runner = CliRunner()
    result = runner.invoke(main, ["--config", config, "pki", "import-crl", str(crl_file)])
    assert result.exit_code == 0, result.output
    assert "CRL number 3 of" in result.output and "CLI CRL Root" in result.output
    again = runner.invoke(main, ["--config", config, "pki", "import-crl", str(crl_file)])
    assert again.exit_code == 1
    (line,) = again.output.strip().splitlines()
    assert line.startswith("error: the CRL of") and "number 3 is stored already" in line
    crl_file.write_bytes(b"garbage")
    bad = runner.invoke(main, ["--config", config, "pki", "import-crl", str(crl_file)])
    assert bad.exit_code == 1 and bad.output.startswith("error: the file is not an X.509 CRL")
    with pki_env.services.sessions() as session:
        (event,) = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "pki.crl_imported", AuditEvent.details.contains("CLI CRL Root")
            )
        ).all()
        assert event.actor_name and event.actor_name.startswith("cli") and event.object_type == "crl"
        assert '"number":3' in (event.details or "")
        assert verify_chain(session) == []
