"""KeyCustody against a real SoftHSM2 token: key policy, export refusal, signing, faults, fork."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pkcs11 import KDF, Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import _pkcs11 as p11impl
from pkcs11 import exceptions as p11e
from pydantic import SecretStr

from appliance.config import HsmConfig, KeyAlgorithm
from appliance.errors import Conflict, InvalidInput
from appliance.hsm import (
    HsmUnavailable,
    KeyNotFound,
    KeyPolicyViolation,
    KeyRef,
    KeySpec,
    PinRejected,
    create_custody,
)
from appliance.hsm import _pkcs11 as pkcs11_impl
from appliance.hsm._pkcs11 import Pkcs11Custody, read_key_policy
from appliance.hsm.errors import HSM_UNAVAILABLE_MESSAGE
from appliance.hsm.pool import SessionPool
from appliance.hsm.uri import Pkcs11Uri, parse_uri
from tests.fixtures.hsm import SoftHsm

pytestmark = pytest.mark.hsm


def new_label(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def ec_key(custody: Pkcs11Custody) -> KeyRef:
    return custody.generate(KeySpec(new_label("test-ec"), KeyAlgorithm.ECDSA_P256))


def private_and_public(custody: Pkcs11Custody, key: KeyRef) -> tuple[Any, Any]:
    def read(session: Any) -> tuple[Any, Any]:
        (private,) = list(
            session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: key.key_id})
        )
        (public,) = list(
            session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: key.key_id})
        )
        return private, public

    return custody.pool.run(read, what="test read")


@pytest.mark.parametrize(
    ("algorithm", "digest"),
    [
        (KeyAlgorithm.RSA2048, "sha256"),
        pytest.param(KeyAlgorithm.RSA3072, "sha384", marks=pytest.mark.slow),
        (KeyAlgorithm.ECDSA_P256, "sha256"),
        (KeyAlgorithm.ECDSA_P384, "sha384"),
    ],
)
def test_each_algorithm_generates_and_signs_verifiably(
    custody: Pkcs11Custody, algorithm: KeyAlgorithm, digest: str
) -> None:
    key = custody.generate(KeySpec(new_label(f"alg-{algorithm.value}"), algorithm))
    public = load_der_public_key(custody.public_key_info(key))
    data = b"contract version 3"
    signature = custody.sign(key, data, digest_algorithm=digest)
    hash_algorithm = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384()}[digest]
    if algorithm in (KeyAlgorithm.RSA2048, KeyAlgorithm.RSA3072):
        assert isinstance(public, rsa.RSAPublicKey)
        assert public.key_size == {KeyAlgorithm.RSA2048: 2048, KeyAlgorithm.RSA3072: 3072}[algorithm]
        public.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert (
            public.curve.name
            == {KeyAlgorithm.ECDSA_P256: "secp256r1", KeyAlgorithm.ECDSA_P384: "secp384r1"}[algorithm]
        )
        # DER Ecdsa-Sig-Value, as X.509 and CMS want it (cryptography only accepts that form)
        public.verify(signature, data, ec.ECDSA(hash_algorithm))
    assert custody.find_key(key_id=key.key_id) == key
    assert key in custody.list_keys()


def test_key_attributes_read_back_with_python_pkcs11(custody: Pkcs11Custody, ec_key: KeyRef) -> None:
    private, public = private_and_public(custody, ec_key)
    policy = custody.pool.run(lambda _s: read_key_policy(private, public), what="test")
    assert policy["private.TOKEN"] and policy["private.PRIVATE"] and policy["private.SENSITIVE"]
    assert policy["private.EXTRACTABLE"] is False
    assert policy["private.ALWAYS_SENSITIVE"] and policy["private.NEVER_EXTRACTABLE"]
    assert policy["private.SIGN"]
    for capability in ("DECRYPT", "UNWRAP", "DERIVE", "SIGN_RECOVER"):
        assert policy[f"private.{capability}"] is False, capability
    assert policy["private.MODIFIABLE"] is False
    assert policy["public.VERIFY"] and policy["public.TOKEN"]
    for capability in ("ENCRYPT", "WRAP", "DERIVE"):
        assert policy[f"public.{capability}"] is False, capability


def test_key_attributes_read_back_with_pkcs11_tool(
    softhsm: SoftHsm, custody: Pkcs11Custody, ec_key: KeyRef
) -> None:
    out = subprocess.run(
        [
            "pkcs11-tool",
            "--module",
            str(softhsm.module),
            "--token-label",
            softhsm.token_label,
            "--login",
            "--pin",
            softhsm.pin,
            "--list-objects",
            "--type",
            "privkey",
            "--id",
            ec_key.key_id_hex,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert ec_key.label in out
    usage = next(line for line in out.splitlines() if line.strip().startswith("Usage:"))
    assert usage.split(":", 1)[1].strip() == "sign"
    access = next(line for line in out.splitlines() if line.strip().startswith("Access:"))
    assert "sensitive" in access and "never extractable" in access and "always sensitive" in access
    assert " extractable" not in access.replace("never extractable", "")


def test_pkcs11_tool_cannot_modify_a_private_key(softhsm: SoftHsm, custody: Pkcs11Custody) -> None:
    # pkcs11-tool (OpenSC 0.23) prints CKA_MODIFIABLE for data objects only; for a key the
    # independent check is that its C_SetAttributeValue is refused. A key of its own, since
    # on a modifiable key this would succeed and change the CKA_ID.
    key = custody.generate(KeySpec(new_label("tool-ro"), KeyAlgorithm.ECDSA_P256))
    tool = ["pkcs11-tool", "--module", str(softhsm.module), "--token-label", softhsm.token_label]
    tool += ["--login", "--pin", softhsm.pin, "--type", "privkey"]
    changed = subprocess.run(
        [*tool, "--id", key.key_id_hex, "--set-id", "01"], capture_output=True, text=True, timeout=60
    )
    assert changed.returncode != 0
    assert "C_SetAttributeValue failed" in changed.stderr and "0x1b" in changed.stderr  # ACTION_PROHIBITED
    assert custody.find_key(key_id=key.key_id) == key


def test_private_key_cannot_be_exported(custody: Pkcs11Custody) -> None:
    rsa_key = custody.generate(KeySpec(new_label("export"), KeyAlgorithm.RSA2048))
    private, _public = private_and_public(custody, rsa_key)

    def attempts(session: Any) -> dict[str, type[Exception] | None]:
        results: dict[str, type[Exception] | None] = {}
        for attribute in (Attribute.PRIVATE_EXPONENT, Attribute.PRIME_1, Attribute.VALUE):
            try:
                private[attribute]
                results[attribute.name] = None
            except p11e.PKCS11Error as exc:
                results[attribute.name] = type(exc)
        wrapping = session.generate_key(
            KeyType.AES,
            256,
            label=new_label("wrap"),
            store=False,
            template={Attribute.WRAP: True, Attribute.EXTRACTABLE: True},
        )
        try:
            wrapping.wrap_key(private)
            results["wrap"] = None
        except p11e.PKCS11Error as exc:
            results["wrap"] = type(exc)
        try:
            private[Attribute.EXTRACTABLE] = True
            results["set_extractable"] = None
        except p11e.PKCS11Error as exc:
            results["set_extractable"] = type(exc)
        results["still_not_extractable"] = None if not private[Attribute.EXTRACTABLE] else AssertionError
        return results

    results = custody.pool.run(attempts, what="export attempts")
    assert results["PRIVATE_EXPONENT"] is p11e.AttributeSensitive
    assert results["PRIME_1"] is p11e.AttributeSensitive
    assert results["VALUE"] in (p11e.AttributeSensitive, p11e.AttributeTypeInvalid)
    assert results["wrap"] is not None and issubclass(results["wrap"], p11e.PKCS11Error)
    assert results["set_extractable"] is not None
    assert results["still_not_extractable"] is None


CKR_ACTION_PROHIBITED = 0x1B
CKR_KEY_FUNCTION_NOT_PERMITTED = 0x68


def ckr(exc: p11e.PKCS11Error) -> int | None:
    """The CKR_ value of an error python-pkcs11 0.10 has no class for ("Unmapped error code 0x68")."""
    match = re.fullmatch(r"Unmapped error code (0x[0-9a-f]+)", str(exc))
    return int(match.group(1), 16) if match else None


def with_method(obj: Any, mixin: type) -> Any:
    """`obj` with the python-pkcs11 method its flags leave out, so the call reaches the token.

    python-pkcs11 offers decrypt()/derive_key() only on keys whose flags allow them; the
    point here is that the token itself refuses, whatever a client library offers.
    """
    return obj if isinstance(obj, mixin) else type(type(obj).__name__, (type(obj), mixin), {})(obj.wrapper)


def test_private_key_label_cannot_be_changed(custody: Pkcs11Custody) -> None:
    key = custody.generate(KeySpec(new_label("read-only"), KeyAlgorithm.ECDSA_P256))
    private, _public = private_and_public(custody, key)

    def relabel(_session: Any) -> int | None:
        try:
            private[Attribute.LABEL] = "renamed"
        except p11e.PKCS11Error as exc:  # caught here: the pool would map it to HsmUnavailable
            return ckr(exc)
        return None

    assert custody.pool.run(relabel, what="test relabel") == CKR_ACTION_PROHIBITED
    assert custody.find_key(key_id=key.key_id).label == key.label


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.RSA2048, KeyAlgorithm.ECDSA_P256])
def test_token_refuses_every_function_but_signing(custody: Pkcs11Custody, algorithm: KeyAlgorithm) -> None:
    """H03: a document key cannot be turned into a decryption or key-agreement key, even with the PIN."""
    key = custody.generate(KeySpec(new_label("purpose"), algorithm))
    private, public = private_and_public(custody, key)
    spki = load_der_public_key(custody.public_key_info(key))
    if isinstance(spki, rsa.RSAPublicKey):
        ciphertext = spki.encrypt(b"session key", padding.PKCS1v15())
        flag = Attribute.DECRYPT
        attempts = {
            "C_Decrypt": lambda: with_method(private, p11impl.DecryptMixin).decrypt(
                ciphertext, mechanism=Mechanism.RSA_PKCS
            ),
            "C_Encrypt": lambda: with_method(private, p11impl.EncryptMixin).encrypt(
                b"x", mechanism=Mechanism.RSA_PKCS
            ),
        }
    else:
        flag = Attribute.DERIVE
        attempts = {
            "C_DeriveKey": lambda: with_method(private, p11impl.DeriveMixin).derive_key(
                KeyType.GENERIC_SECRET, 256, mechanism_param=(KDF.NULL, None, public[Attribute.EC_POINT])
            )
        }

    def misuse(_session: Any) -> dict[str, int | None]:
        results: dict[str, int | None] = {}
        # first the attack a PIN holder would try: switch the function on (refused: read-only)
        for name, attempt in {"enable": lambda: private.__setitem__(flag, True), **attempts}.items():
            try:
                attempt()
                results[name] = None
            except p11e.PKCS11Error as exc:
                results[name] = ckr(exc)
        return results

    results = custody.pool.run(misuse, what="test misuse")
    assert results.pop("enable") == CKR_ACTION_PROHIBITED
    assert results == dict.fromkeys(attempts, CKR_KEY_FUNCTION_NOT_PERMITTED)
    assert custody.sign(key, b"still signs", digest_algorithm="sha256")


def test_generate_refuses_duplicate_label_and_bad_labels(custody: Pkcs11Custody, ec_key: KeyRef) -> None:
    with pytest.raises(Conflict):
        custody.generate(KeySpec(ec_key.label, KeyAlgorithm.ECDSA_P256))
    for label in ("", "x" * 201, "bad\nlabel"):
        with pytest.raises(InvalidInput):
            custody.generate(KeySpec(label, KeyAlgorithm.ECDSA_P256))


def test_unverifiable_key_policy_aborts_and_deletes_the_pair(
    custody: Pkcs11Custody, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_read = pkcs11_impl.read_key_policy

    def token_withholds_extractable(private: Any, public: Any) -> dict[str, bool | None]:
        report = real_read(private, public)  # the real attributes of the real new pair ...
        report["private.EXTRACTABLE"] = None  # ... but as if the token would not report this one
        return report

    monkeypatch.setattr(pkcs11_impl, "read_key_policy", token_withholds_extractable)
    label = "policy-check-" + secrets.token_hex(4)
    with pytest.raises(KeyPolicyViolation) as caught:
        custody.generate(KeySpec(label, KeyAlgorithm.ECDSA_P256))
    assert "private.EXTRACTABLE" in caught.value.detail
    assert "the new key pair was deleted" in caught.value.detail
    assert caught.value.public == HSM_UNAVAILABLE_MESSAGE  # a client learns nothing of the token
    assert all(key.label != label for key in custody.list_keys())


def test_lookup_by_uri_and_errors(custody: Pkcs11Custody, ec_key: KeyRef) -> None:
    uri = ec_key.to_uri(custody.token_label)
    assert custody.find_key_by_uri(uri) == ec_key
    assert custody.find_key_by_uri(f"pkcs11:object={ec_key.label}") == ec_key
    with pytest.raises(KeyNotFound):
        custody.find_key(key_id=b"\x00" * 16)
    with pytest.raises(InvalidInput):
        custody.find_key_by_uri(f"pkcs11:token=other;object={ec_key.label}")
    with pytest.raises(InvalidInput):
        custody.sign(ec_key, b"x", digest_algorithm="sha1")


def test_uri_round_trip_and_refusals() -> None:
    uri = Pkcs11Uri(token="app liance", object="ca;1", id=b"\x01\xff", type="private")
    assert uri.format() == "pkcs11:token=app%20liance;object=ca%3B1;id=%01%ff;type=private"
    assert parse_uri(uri.format()) == uri
    for bad in ("file:x", "pkcs11:object=a?pin-value=1234", "pkcs11:colour=red", "pkcs11:object=a;object=b"):
        with pytest.raises(InvalidInput):
            parse_uri(bad)


class FaultySession:
    """Wraps the real session; its searches raise `error` while `faults` remain (shared counter)."""

    def __init__(self, real: Any, faults: list[type[Exception]]) -> None:
        self._real = real
        self._faults = faults

    def get_objects(self, *args: Any, **kwargs: Any) -> Any:
        if self._faults:
            raise self._faults.pop(0)()
        return self._real.get_objects(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def faulty_pool(softhsm: SoftHsm, faults: list[type[Exception]], *, timeout: float = 10.0) -> SessionPool:
    cfg = HsmConfig(module=softhsm.module, token_label=softhsm.token_label, timeout_seconds=timeout)
    pool = SessionPool(cfg, SecretStr(softhsm.pin))
    open_real = pool._ensure_session

    def ensure() -> Any:
        session = open_real()
        return session if isinstance(session, FaultySession) else FaultySession(session, faults)

    pool._ensure_session = ensure  # type: ignore[method-assign]
    return pool


def test_session_handle_invalid_once_is_recovered(softhsm: SoftHsm, ec_key: KeyRef) -> None:
    faults: list[type[Exception]] = [p11e.SessionHandleInvalid]
    pool = faulty_pool(softhsm, faults)
    custody = Pkcs11Custody(pool._cfg, SecretStr(softhsm.pin), pool=pool)
    signature = custody.sign(ec_key, b"data", digest_algorithm="sha256")
    assert signature and not faults
    assert pool.reopen_count == 1


def test_device_error_twice_is_unavailable_not_a_hang(softhsm: SoftHsm, ec_key: KeyRef) -> None:
    faults: list[type[Exception]] = [p11e.DeviceError, p11e.DeviceError]
    pool = faulty_pool(softhsm, faults)
    custody = Pkcs11Custody(pool._cfg, SecretStr(softhsm.pin), pool=pool)
    custody.pool.mechanisms()  # reads mechanisms without a search, so the faults hit the sign
    with pytest.raises(HsmUnavailable, match="failed twice"):
        custody.sign(ec_key, b"data", digest_algorithm="sha256")
    assert not faults
    # the next call opens a fresh session and works
    assert custody.sign(ec_key, b"data", digest_algorithm="sha256")


def test_hung_call_times_out(softhsm: SoftHsm, ec_key: KeyRef) -> None:
    pool = faulty_pool(softhsm, [], timeout=0.5)
    custody = Pkcs11Custody(pool._cfg, SecretStr(softhsm.pin), pool=pool)
    custody.pool.mechanisms()

    def hang(session: Any) -> None:
        time.sleep(3)

    started = time.monotonic()
    with pytest.raises(HsmUnavailable, match=r"did not answer within 0\.5 s"):
        pool.run(hang, what="sign")
    assert time.monotonic() - started < 2
    assert custody.sign(ec_key, b"after", digest_algorithm="sha256")


def test_wrong_pin_is_rejected_once_and_never_shown(softhsm: SoftHsm) -> None:
    wrong_pin = "wrong-" + secrets.token_hex(4)
    cfg = HsmConfig(module=softhsm.module, token_label=softhsm.spare_token_label)
    pool = SessionPool(cfg, SecretStr(wrong_pin))
    calls = []
    open_real = pool._ensure_session

    def counting() -> Any:
        calls.append(1)
        return open_real()

    pool._ensure_session = counting  # type: ignore[method-assign]
    custody = Pkcs11Custody(cfg, SecretStr(wrong_pin), pool=pool)
    with pytest.raises(PinRejected) as caught:
        custody.list_keys()
    assert len(calls) == 1, "a PIN error must not be retried"
    assert wrong_pin not in str(caught.value) and wrong_pin not in caught.value.public
    # later requests and readiness probes must not try the PIN again either: a real HSM
    # counts every attempt and locks the token for all nodes
    for _ in range(3):
        health = custody.health()
        assert not health.ok and wrong_pin not in health.detail and "pin_file" in health.detail
        with pytest.raises(PinRejected):
            custody.list_keys()
    assert len(calls) == 1, "the refused PIN was tried again"
    # the spare token still accepts the right PIN: the failures did not lock it
    good = create_custody(cfg, SecretStr(softhsm.spare_pin))
    assert good.health().ok


def test_missing_token_is_unavailable(softhsm: SoftHsm) -> None:
    custody = create_custody(HsmConfig(module=softhsm.module, token_label="no-such-token"), SecretStr("1234"))
    health = custody.health()
    assert not health.ok and "not present" in health.detail
    with pytest.raises(HsmUnavailable):
        custody.list_keys()


def test_forked_child_refuses_the_parents_pool(custody: Pkcs11Custody) -> None:
    assert custody.health().ok  # the parent has loaded the module and logged in
    pid = os.fork()
    if pid == 0:  # child: must refuse without calling into the module
        code = 3
        try:
            custody.list_keys()
        except HsmUnavailable as exc:
            code = 0 if "inherited from another process" in exc.detail else 4
        except BaseException:
            code = 5
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert custody.health().ok  # the parent is unaffected


def test_pdf_signer_signs_through_the_pool(custody: Pkcs11Custody, pki_env: Any) -> None:
    from pyhanko.sign.signers import Signer

    person = pki_env.person
    with custody.pdf_signer(person.key, person.certificate, [pki_env.issuing, pki_env.root]) as signer:
        assert isinstance(signer, Signer)
        signature = asyncio.run(signer.async_sign_raw(b"to be signed", "sha256"))
    public = load_der_public_key(custody.public_key_info(person.key))
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, b"to be signed", ec.ECDSA(hashes.SHA256()))
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(signature, b"to be signed", padding.PKCS1v15(), hashes.SHA256())


class CountingSession:
    """Wraps the real session and counts object searches (C_FindObjects*)."""

    def __init__(self, real: Any, searches: list[int]) -> None:
        self._real = real
        self._searches = searches

    def get_objects(self, *args: Any, **kwargs: Any) -> Any:
        self._searches.append(1)
        return self._real.get_objects(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def counting_custody(softhsm: SoftHsm, searches: list[int]) -> Pkcs11Custody:
    cfg = HsmConfig(module=softhsm.module, token_label=softhsm.token_label)
    pool = SessionPool(cfg, SecretStr(softhsm.pin))
    open_real = pool._ensure_session

    def ensure() -> Any:
        session = open_real()
        return session if isinstance(session, CountingSession) else CountingSession(session, searches)

    pool._ensure_session = ensure  # type: ignore[method-assign]
    return Pkcs11Custody(cfg, SecretStr(softhsm.pin), pool=pool)


def verify_rsa(custody: Pkcs11Custody, key: KeyRef, signature: bytes, data: bytes) -> None:
    public = load_der_public_key(custody.public_key_info(key))
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


def test_key_handle_is_found_once_per_session(softhsm: SoftHsm, custody: Pkcs11Custody) -> None:
    key = custody.generate(KeySpec(new_label("test-cache"), KeyAlgorithm.RSA2048))
    searches: list[int] = []
    counting = counting_custody(softhsm, searches)

    signatures = [counting.sign(key, b"doc %d" % i, digest_algorithm="sha256") for i in range(3)]
    assert len(searches) == 1, "later signatures of the session reuse the key handle"
    for i, signature in enumerate(signatures):
        verify_rsa(custody, key, signature, b"doc %d" % i)

    # a reopened session starts with an empty cache: handles do not outlive their session
    counting.pool.close()
    counting.sign(key, b"again", digest_algorithm="sha256")
    assert len(searches) == 2


def test_cached_handle_of_a_destroyed_key_is_never_used(softhsm: SoftHsm, custody: Pkcs11Custody) -> None:
    key = custody.generate(KeySpec(new_label("test-gone"), KeyAlgorithm.RSA2048))
    searches: list[int] = []
    counting = counting_custody(softhsm, searches)
    counting.sign(key, b"first", digest_algorithm="sha256")

    # destroyed behind the custody's back (another worker retiring the key): the cached
    # handle is now invalid, the custody searches again and finds nothing
    def destroy(session: Any) -> None:
        for obj in list(
            session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: key.key_id})
        ):
            obj.destroy()

    custody.pool.run(destroy, what="test destroy")
    with pytest.raises(KeyNotFound):
        counting.sign(key, b"second", digest_algorithm="sha256")


def test_deleted_key_leaves_the_cache(custody: Pkcs11Custody) -> None:
    key = custody.generate(KeySpec(new_label("test-del"), KeyAlgorithm.ECDSA_P256))
    assert custody.sign(key, b"x", digest_algorithm="sha256")
    assert key.key_id in custody.pool.handles
    custody.delete(key)
    assert key.key_id not in custody.pool.handles
    with pytest.raises(KeyNotFound):
        custody.sign(key, b"x", digest_algorithm="sha256")
