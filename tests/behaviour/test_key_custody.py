"""`KeyCustody`: the same test bodies against a SoftHSM2 token and the tests' FakeKeyCustody.

What only a token has (key attributes, sessions, PIN handling, timeouts, fork) is tested
against SoftHSM2 alone in tests/hsm/test_custody.py.
"""

from __future__ import annotations

import asyncio
import io
import secrets
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key
from cryptography.x509.oid import NameOID
from pydantic import SecretStr
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from appliance.config import HsmConfig, KeyAlgorithm
from appliance.errors import Conflict, InvalidInput
from appliance.hsm import (
    DIGEST_ALGORITHMS,
    HsmUnavailable,
    KeyCustody,
    KeyDeleter,
    KeyNotFound,
    KeyRef,
    KeySpec,
    check_hsm,
    create_custody,
    default_digest_algorithm,
)
from appliance.hsm.errors import HSM_UNAVAILABLE_MESSAGE
from tests.fakes.custody import FakeKeyCustody
from tests.fixtures.hsm import SoftHsm
from tests.fixtures.pdfs import make_pdf


class Custody(KeyCustody, KeyDeleter, Protocol):
    """Both implementations can also delete a pair (failed issuance, key retirement)."""


BACKENDS = ["fake", pytest.param("softhsm", marks=pytest.mark.hsm)]
RSA = (KeyAlgorithm.RSA2048, KeyAlgorithm.RSA3072)
PYCA_HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


def new_label(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture(scope="module", params=BACKENDS)
def any_custody(request: pytest.FixtureRequest) -> Custody:
    if request.param == "fake":
        return FakeKeyCustody()
    custody: Custody = request.getfixturevalue("custody")  # the worker's SoftHSM2 token
    return custody


@pytest.fixture(scope="module")
def keys(any_custody: Custody) -> dict[KeyAlgorithm, KeyRef]:
    """One pair of each algorithm; generation is slow on a token (RSA-3072 ~1.5 s), so shared."""
    return {
        algorithm: any_custody.generate(KeySpec(new_label(f"suite-{algorithm.value}"), algorithm))
        for algorithm in KeyAlgorithm
    }


@pytest.fixture(params=BACKENDS)
def unreachable_custody(request: pytest.FixtureRequest) -> KeyCustody:
    """A custody whose token is not there."""
    if request.param == "fake":
        fake = FakeKeyCustody()
        fake.outage = "token 'no-such-token' not present"
        return fake
    softhsm: SoftHsm = request.getfixturevalue("softhsm")
    return create_custody(HsmConfig(module=softhsm.module, token_label="no-such-token"), SecretStr("1234"))


def verify(public_der: bytes, algorithm: KeyAlgorithm, signature: bytes, data: bytes, digest: str) -> None:
    """Raises InvalidSignature unless `signature` is the port's form of a signature over `data`."""
    public = load_der_public_key(public_der)
    if algorithm in RSA:
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(signature, data, padding.PKCS1v15(), PYCA_HASHES[digest])
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, data, ec.ECDSA(PYCA_HASHES[digest]))  # DER Ecdsa-Sig-Value only


# -- the port as a whole ----------------------------------------------------------------


def test_implements_the_whole_port(any_custody: Custody) -> None:
    assert isinstance(any_custody, KeyCustody)
    assert any_custody.token_label


def test_health_reports_a_ready_token(any_custody: Custody) -> None:
    health = any_custody.health()
    assert health.ok and health.detail == "token ready"
    assert health.token_label == any_custody.token_label
    assert health.manufacturer and health.model and health.library
    assert health.latency_ms is not None and health.latency_ms >= 0
    check_hsm(any_custody)  # the readiness check passes


# -- generation and lookup --------------------------------------------------------------


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_generated_key_is_found_by_label_id_uri_and_listed(
    any_custody: Custody, keys: dict[KeyAlgorithm, KeyRef], algorithm: KeyAlgorithm
) -> None:
    key = keys[algorithm]
    assert key.algorithm is algorithm and key.label.startswith("suite-") and len(key.key_id) == 16
    assert any_custody.find_key(label=key.label) == key
    assert any_custody.find_key(key_id=key.key_id) == key
    assert any_custody.find_key(label=key.label, key_id=key.key_id) == key
    assert any_custody.find_key_by_uri(key.to_uri(any_custody.token_label)) == key
    assert any_custody.find_key_by_uri(key.to_uri()) == key
    assert any_custody.find_key_by_uri(f"pkcs11:object={key.label}") == key
    listed = any_custody.list_keys()
    assert key in listed
    assert listed == sorted(listed, key=lambda ref: (ref.label, ref.key_id))


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_public_key_is_of_the_generated_algorithm(
    any_custody: Custody, keys: dict[KeyAlgorithm, KeyRef], algorithm: KeyAlgorithm
) -> None:
    public = load_der_public_key(any_custody.public_key_info(keys[algorithm]))
    if algorithm in RSA:
        assert isinstance(public, rsa.RSAPublicKey)
        assert public.key_size == {KeyAlgorithm.RSA2048: 2048, KeyAlgorithm.RSA3072: 3072}[algorithm]
        assert public.public_numbers().e == 65537
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        expected = {KeyAlgorithm.ECDSA_P256: "secp256r1", KeyAlgorithm.ECDSA_P384: "secp384r1"}
        assert public.curve.name == expected[algorithm]


def test_keys_are_distinct(any_custody: Custody, keys: dict[KeyAlgorithm, KeyRef]) -> None:
    assert len({key.key_id for key in keys.values()}) == len(keys)
    assert len({any_custody.public_key_info(key) for key in keys.values()}) == len(keys)


def test_generate_refuses_a_taken_label_and_bad_labels(
    any_custody: Custody, keys: dict[KeyAlgorithm, KeyRef]
) -> None:
    taken = keys[KeyAlgorithm.ECDSA_P256].label
    before = any_custody.list_keys()
    with pytest.raises(Conflict):
        any_custody.generate(KeySpec(taken, KeyAlgorithm.ECDSA_P384))
    for label in ("", "x" * 201, "bad\nlabel", "tab\tlabel"):
        with pytest.raises(InvalidInput):
            any_custody.generate(KeySpec(label, KeyAlgorithm.ECDSA_P256))
    assert any_custody.list_keys() == before


def test_longest_label_is_accepted(any_custody: Custody) -> None:
    label = new_label("long").ljust(200, "x")
    key = any_custody.generate(KeySpec(label, KeyAlgorithm.ECDSA_P256))
    try:
        assert any_custody.find_key(label=label) == key
    finally:
        any_custody.delete(key)


def test_lookups_without_a_match_are_key_not_found(
    any_custody: Custody, keys: dict[KeyAlgorithm, KeyRef]
) -> None:
    key = keys[KeyAlgorithm.ECDSA_P256]
    with pytest.raises(KeyNotFound):
        any_custody.find_key(label=new_label("no-such-key"))
    with pytest.raises(KeyNotFound):
        any_custody.find_key(key_id=secrets.token_bytes(16))
    with pytest.raises(KeyNotFound):  # both given: both must match
        any_custody.find_key(label=key.label, key_id=keys[KeyAlgorithm.ECDSA_P384].key_id)
    with pytest.raises(KeyNotFound):
        any_custody.find_key_by_uri(f"pkcs11:object={new_label('no-such-key')};type=private")


def test_lookup_needs_a_label_or_an_id(any_custody: Custody) -> None:
    with pytest.raises(InvalidInput):
        any_custody.find_key()
    with pytest.raises(InvalidInput):
        any_custody.find_key_by_uri(f"pkcs11:token={any_custody.token_label}")


def test_uris_of_other_tokens_objects_or_schemes_are_refused(
    any_custody: Custody, keys: dict[KeyAlgorithm, KeyRef]
) -> None:
    label = keys[KeyAlgorithm.ECDSA_P256].label
    for uri in (
        f"pkcs11:token=another-token;object={label}",
        f"pkcs11:object={label};type=public",
        f"pkcs11:object={label};type=cert",
        f"pkcs11:object={label}?pin-value=1234",
        f"file:{label}",
    ):
        with pytest.raises(InvalidInput):
            any_custody.find_key_by_uri(uri)


# -- signing ------------------------------------------------------------------------------


@pytest.mark.parametrize("digest", sorted(DIGEST_ALGORITHMS))
@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_signature_verifies_with_the_exported_public_key(
    any_custody: Custody, keys: dict[KeyAlgorithm, KeyRef], algorithm: KeyAlgorithm, digest: str
) -> None:
    key = keys[algorithm]
    data = b"contract version 3 " + secrets.token_bytes(8)
    signature = any_custody.sign(key, data, digest_algorithm=digest)
    public_der = any_custody.public_key_info(key)
    verify(public_der, algorithm, signature, data, digest)
    with pytest.raises(InvalidSignature):
        verify(public_der, algorithm, signature, data + b"!", digest)


def test_digest_names_are_not_case_sensitive(any_custody: Custody, keys: dict[KeyAlgorithm, KeyRef]) -> None:
    key = keys[KeyAlgorithm.ECDSA_P256]
    signature = any_custody.sign(key, b"data", digest_algorithm="SHA384")
    verify(any_custody.public_key_info(key), key.algorithm, signature, b"data", "sha384")


@pytest.mark.parametrize("digest", ["sha1", "sha224", "md5", "sha3_256", "", "sha256 "])
def test_unsupported_digests_are_refused_before_the_key_is_looked_up(
    any_custody: Custody, keys: dict[KeyAlgorithm, KeyRef], digest: str
) -> None:
    with pytest.raises(InvalidInput, match="unsupported digest"):
        any_custody.sign(keys[KeyAlgorithm.RSA2048], b"data", digest_algorithm=digest)
    unknown = KeyRef(new_label("gone"), secrets.token_bytes(16), KeyAlgorithm.ECDSA_P256)
    with pytest.raises(InvalidInput, match="unsupported digest"):
        any_custody.sign(unknown, b"data", digest_algorithm=digest)


def test_unknown_keys_cannot_sign_or_be_read_or_deleted(any_custody: Custody) -> None:
    unknown = KeyRef(new_label("gone"), secrets.token_bytes(16), KeyAlgorithm.ECDSA_P256)
    with pytest.raises(KeyNotFound):
        any_custody.sign(unknown, b"data", digest_algorithm="sha256")
    with pytest.raises(KeyNotFound):
        any_custody.public_key_info(unknown)
    with pytest.raises(KeyNotFound):
        any_custody.delete(unknown)


def test_deleted_key_is_gone_and_its_label_free_again(any_custody: Custody) -> None:
    label = new_label("deleted")
    key = any_custody.generate(KeySpec(label, KeyAlgorithm.ECDSA_P256))
    assert any_custody.sign(key, b"before", digest_algorithm="sha256")
    any_custody.delete(key)
    assert key not in any_custody.list_keys()
    with pytest.raises(KeyNotFound):
        any_custody.find_key(label=label)
    with pytest.raises(KeyNotFound):
        any_custody.sign(key, b"after", digest_algorithm="sha256")
    again = any_custody.generate(KeySpec(label, KeyAlgorithm.ECDSA_P256))
    try:
        assert again.key_id != key.key_id and any_custody.find_key(label=label) == again
    finally:
        any_custody.delete(again)


# -- the pyHanko signer ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def test_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A throwaway CA outside any custody, to certify the custody's public keys."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Behaviour suite CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def certify(
    custody: KeyCustody, key: KeyRef, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
) -> asn1_x509.Certificate:
    ca_key, ca_cert = ca
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, key.label)]))
        .issuer_name(ca_cert.subject)
        .public_key(load_der_public_key(custody.public_key_info(key)))  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def as_asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_pdf_signer_makes_a_valid_pades_signature(
    any_custody: Custody,
    keys: dict[KeyAlgorithm, KeyRef],
    test_ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
    algorithm: KeyAlgorithm,
) -> None:
    key = keys[algorithm]
    certificate = certify(any_custody, key, test_ca)
    root = as_asn1(test_ca[1])
    digest = default_digest_algorithm(algorithm)
    signed = io.BytesIO()
    with any_custody.pdf_signer(key, certificate, [root]) as signer:
        assert isinstance(signer, signers.Signer)
        assert signer.signing_cert == certificate
        meta = signers.PdfSignatureMetadata(field_name="Signature1", md_algorithm=digest)
        signers.PdfSigner(meta, signer=signer).sign_pdf(
            IncrementalPdfFileWriter(io.BytesIO(make_pdf())), output=signed
        )
    (embedded,) = PdfFileReader(signed).embedded_signatures
    status = validate_pdf_signature(embedded, ValidationContext(trust_roots=[root]))
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert status.md_algorithm == digest
    assert embedded.signer_cert.dump() == certificate.dump()


def test_pdf_signer_signs_raw_through_the_custody(
    any_custody: Custody,
    keys: dict[KeyAlgorithm, KeyRef],
    test_ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    key = keys[KeyAlgorithm.ECDSA_P384]
    certificate = certify(any_custody, key, test_ca)
    with any_custody.pdf_signer(key, certificate) as signer:
        signature = asyncio.run(signer.async_sign_raw(b"to be signed", "sha384"))
    verify(any_custody.public_key_info(key), key.algorithm, signature, b"to be signed", "sha384")


def test_pdf_signer_of_an_unknown_key_fails_when_it_signs(
    any_custody: Custody,
    keys: dict[KeyAlgorithm, KeyRef],
    test_ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    certificate = certify(any_custody, keys[KeyAlgorithm.ECDSA_P256], test_ca)
    unknown = KeyRef(new_label("gone"), secrets.token_bytes(16), KeyAlgorithm.ECDSA_P256)
    with any_custody.pdf_signer(unknown, certificate) as signer, pytest.raises(KeyNotFound):
        asyncio.run(signer.async_sign_raw(b"to be signed", "sha256"))


# -- an unreachable token -------------------------------------------------------------------


def test_unreachable_token_is_reported_by_health_never_raised(unreachable_custody: KeyCustody) -> None:
    health = unreachable_custody.health()
    assert not health.ok and health.detail and health.detail != "token ready"
    assert health.latency_ms is None
    with pytest.raises(HsmUnavailable) as caught:
        check_hsm(unreachable_custody)
    assert caught.value.public == HSM_UNAVAILABLE_MESSAGE


def test_every_call_to_an_unreachable_token_is_unavailable(
    unreachable_custody: KeyCustody, test_ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
) -> None:
    somekey = KeyRef("somekey", b"\x01" * 16, KeyAlgorithm.ECDSA_P256)
    calls = {
        "generate": lambda: unreachable_custody.generate(KeySpec("new", KeyAlgorithm.ECDSA_P256)),
        "find_key": lambda: unreachable_custody.find_key(label="somekey"),
        "find_key_by_uri": lambda: unreachable_custody.find_key_by_uri("pkcs11:object=somekey"),
        "list_keys": unreachable_custody.list_keys,
        "public_key_info": lambda: unreachable_custody.public_key_info(somekey),
        "sign": lambda: unreachable_custody.sign(somekey, b"data", digest_algorithm="sha256"),
        "pdf_signer": lambda: unreachable_custody.pdf_signer(somekey, as_asn1(test_ca[1])).__enter__(),
    }
    for name, call in calls.items():
        with pytest.raises(HsmUnavailable) as caught:
            call()
        # a client learns that the key store is down, not which token or why
        assert caught.value.public == HSM_UNAVAILABLE_MESSAGE, name
        assert "no-such-token" not in caught.value.public, name
