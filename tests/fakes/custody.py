"""An in-memory `KeyCustody`: keys made and used with the `cryptography` package.

It refuses what `Pkcs11Custody` over SoftHSM2 refuses, in the same order and with the same
error types (tests/behaviour/test_key_custody.py runs one set of test bodies against both).
What it cannot imitate is the token itself: key attributes, sessions, PINs, timeouts. Those
are tested against SoftHSM2 only (tests/hsm/). The private keys live in this process's
memory, so it must never stand in for the HSM outside tests.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import cryptography
from asn1crypto import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pyhanko.sign.signers import Signer
from pyhanko_certvalidator.registry import SimpleCertificateStore

from appliance.config import KeyAlgorithm
from appliance.errors import Conflict, InvalidInput
from appliance.hsm import DIGEST_ALGORITHMS, HsmHealth, HsmUnavailable, KeyNotFound, KeyRef, KeySpec
from appliance.hsm.api import check_label
from appliance.hsm.uri import private_key_selector

FAKE_TOKEN_LABEL = "fake-token"

_RSA_BITS = {KeyAlgorithm.RSA2048: 2048, KeyAlgorithm.RSA3072: 3072}
_CURVES: dict[KeyAlgorithm, ec.EllipticCurve] = {
    KeyAlgorithm.ECDSA_P256: ec.SECP256R1(),
    KeyAlgorithm.ECDSA_P384: ec.SECP384R1(),
}
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
assert set(_HASHES) == DIGEST_ALGORITHMS, "the fake must accept exactly the port's digests"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class _Pair:
    ref: KeyRef
    private: PrivateKey


class FakeKeyCustody:
    """Key custody in a dict. Set `outage` to a detail line to make the "token" unreachable:
    every call then raises `HsmUnavailable` and `health()` reports it, as a missing token does."""

    def __init__(self, token_label: str | None = FAKE_TOKEN_LABEL) -> None:
        self._token_label = token_label
        self._pairs: dict[bytes, _Pair] = {}
        self.outage: str | None = None

    @property
    def token_label(self) -> str | None:
        return self._token_label

    def generate(self, spec: KeySpec) -> KeyRef:
        check_label(spec.label)
        self._check_reachable()
        if any(pair.ref.label == spec.label for pair in self._pairs.values()):
            raise Conflict(f"a key labelled {spec.label!r} already exists in the HSM")
        private: PrivateKey
        if spec.algorithm in _RSA_BITS:
            private = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[spec.algorithm])
        else:
            private = ec.generate_private_key(_CURVES[spec.algorithm])
        ref = KeyRef(label=spec.label, key_id=secrets.token_bytes(16), algorithm=spec.algorithm)
        self._pairs[ref.key_id] = _Pair(ref, private)
        return ref

    def delete(self, key: KeyRef) -> None:
        self._check_reachable()
        self._pair(key)
        del self._pairs[key.key_id]

    def find_key(self, *, label: str | None = None, key_id: bytes | None = None) -> KeyRef:
        if label is None and key_id is None:
            raise InvalidInput("give a key label or CKA_ID")
        self._check_reachable()
        found = [
            pair.ref
            for pair in self._pairs.values()
            if (label is None or pair.ref.label == label) and (key_id is None or pair.ref.key_id == key_id)
        ]
        if not found:
            raise KeyNotFound("no such key in the HSM")
        if len(found) > 1:
            raise Conflict("several keys in the HSM match; select the key by its CKA_ID")
        return found[0]

    def find_key_by_uri(self, uri: str) -> KeyRef:
        label, key_id = private_key_selector(uri, self.token_label)
        return self.find_key(label=label, key_id=key_id)

    def list_keys(self) -> list[KeyRef]:
        self._check_reachable()
        return sorted((pair.ref for pair in self._pairs.values()), key=lambda ref: (ref.label, ref.key_id))

    def public_key_info(self, key: KeyRef) -> bytes:
        self._check_reachable()
        public = self._pair(key).private.public_key()
        return public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, key: KeyRef, data: bytes, *, digest_algorithm: str) -> bytes:
        digest_algorithm = digest_algorithm.lower()
        if digest_algorithm not in DIGEST_ALGORITHMS:
            raise InvalidInput(f"unsupported digest algorithm {digest_algorithm!r}")
        self._check_reachable()
        private = self._pair(key).private
        digest = _HASHES[digest_algorithm]()
        if isinstance(private, rsa.RSAPrivateKey):
            return private.sign(data, padding.PKCS1v15(), digest)
        return private.sign(data, ec.ECDSA(digest))  # DER Ecdsa-Sig-Value, as the port wants

    @contextmanager
    def pdf_signer(
        self,
        key: KeyRef,
        signing_cert: x509.Certificate,
        ca_chain: Sequence[x509.Certificate] = (),
    ) -> Iterator[Signer]:
        self._check_reachable()  # the real one opens its session here
        yield CustodySigner(functools.partial(self.sign, key), signing_cert, ca_chain)

    def health(self) -> HsmHealth:
        if self.outage is not None:
            return HsmHealth(ok=False, detail=self.outage, token_label=self.token_label)
        return HsmHealth(
            ok=True,
            detail="token ready",
            token_label=self.token_label,
            manufacturer="tests.fakes",
            model="FakeKeyCustody",
            serial="0",
            library=f"cryptography {cryptography.__version__}",
            latency_ms=0.0,
        )

    def _check_reachable(self) -> None:
        if self.outage is not None:
            raise HsmUnavailable(self.outage)

    def _pair(self, key: KeyRef) -> _Pair:
        # looked up by CKA_ID alone, as the PKCS#11 custody does
        pair = self._pairs.get(key.key_id)
        if pair is None:
            raise KeyNotFound(f"key {key.label!r} not found in the HSM")
        return pair


class CustodySigner(Signer):
    """A pyHanko signer whose one raw signature goes through the custody's `sign`, as the
    PKCS#11 custody's signer goes through its pooled `sign`."""

    def __init__(
        self,
        sign_raw: Callable[..., bytes],
        signing_cert: x509.Certificate,
        ca_chain: Sequence[x509.Certificate],
    ) -> None:
        super().__init__(
            signing_cert=signing_cert,
            cert_registry=SimpleCertificateStore.from_certs([signing_cert, *ca_chain]),
        )
        self._sign_raw = sign_raw

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        # a real signature for the dry run too (as pyHanko's SimpleSigner does): pyHanko
        # reserves room in the PDF by its size
        return self._sign_raw(data, digest_algorithm=digest_algorithm)
