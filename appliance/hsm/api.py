"""The key-custody port: private keys that are generated and used inside the HSM only.

Callers (pki/, signing/) see these value types and the `KeyCustody` protocol, never
python-pkcs11 objects. The implementation is `appliance.hsm._pkcs11.Pkcs11Custody`
(built through `appliance.hsm.create_custody`); it opens nothing until first use.

Conventions:
* `sign()` returns a signature in X.509 / CMS form: RSA PKCS#1 v1.5 bytes, or
  ECDSA as the DER `Ecdsa-Sig-Value` SEQUENCE { r, s } (not the raw r||s of PKCS#11).
* `digest_algorithm` is a lower-case hash name as pyHanko and asn1crypto spell it:
  "sha256", "sha384", "sha512".
* A `KeyRef` is identified in the token by CKA_ID (unique, random) and CKA_LABEL.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from appliance.config import KeyAlgorithm
from appliance.errors import InvalidInput

if TYPE_CHECKING:
    from asn1crypto import x509
    from pyhanko.sign.signers import Signer

__all__ = [
    "DIGEST_ALGORITHMS",
    "HsmHealth",
    "KeyAlgorithm",
    "KeyCustody",
    "KeyDeleter",
    "KeyRef",
    "KeySpec",
    "default_digest_algorithm",
    "signature_algorithm_name",
]

DIGEST_ALGORITHMS: frozenset[str] = frozenset({"sha256", "sha384", "sha512"})
"""Digest algorithms `KeyCustody.sign` accepts (SHA-1 and SHA-224 are refused)."""


@dataclass(frozen=True)
class KeySpec:
    """What to generate: a labelled key pair of one algorithm."""

    label: str
    """CKA_LABEL of both halves of the pair; unique in the token (1-200 printable characters)."""
    algorithm: KeyAlgorithm


@dataclass(frozen=True)
class KeyRef:
    """A key pair in the token. Holds no key material, only how to find it."""

    label: str
    """CKA_LABEL of the private and public key."""
    key_id: bytes
    """CKA_ID of the private and public key (random, 16 bytes for keys we generate)."""
    algorithm: KeyAlgorithm

    @property
    def key_id_hex(self) -> str:
        """CKA_ID as lower-case hex, as stored in `hsm_keys.key_id`."""
        return self.key_id.hex()

    def to_uri(self, token_label: str | None = None) -> str:
        """RFC 7512 URI of the private key, e.g. `pkcs11:token=appliance;id=%01%02;object=ca;type=private`."""
        from appliance.hsm.uri import Pkcs11Uri

        return Pkcs11Uri(token=token_label, object=self.label, id=self.key_id, type="private").format()


@dataclass(frozen=True)
class HsmHealth:
    """Result of a cheap liveness probe of the token; never raises, never shows the PIN."""

    ok: bool
    detail: str
    """Public one-line state, e.g. "token ready" or "token not present"."""
    token_label: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    library: str | None = None
    """Library description and version reported by the PKCS#11 module."""
    latency_ms: float | None = None


@runtime_checkable
class KeyCustody(Protocol):
    """Private keys that never leave the token.

    Every method may raise `HsmUnavailable` (503; `PinRejected` when the PIN is refused);
    methods taking a KeyRef raise `KeyNotFound` when the pair is not in the token.
    """

    @property
    def token_label(self) -> str | None:
        """Label of the configured token, when known from the config."""
        ...

    def generate(self, spec: KeySpec) -> KeyRef:
        """Generate a non-extractable, sensitive, sign-only key pair inside the token.

        The private key's attributes are read-only (CKA_MODIFIABLE false), so its usage
        cannot be widened later, even by a holder of the PIN.

        :raises Conflict: a key with that label already exists.
        :raises KeyPolicyViolation: the token did not honour the template (the pair is deleted).
        """
        ...

    def find_key(self, *, label: str | None = None, key_id: bytes | None = None) -> KeyRef:
        """Find one private key by label and/or CKA_ID."""
        ...

    def find_key_by_uri(self, uri: str) -> KeyRef:
        """Find one private key by an RFC 7512 URI (`object=` and/or `id=`).

        :raises InvalidInput: not a pkcs11: URI, or it names another token.
        """
        ...

    def list_keys(self) -> list[KeyRef]:
        """Every private key pair in the token, sorted by label."""
        ...

    def public_key_info(self, key: KeyRef) -> bytes:
        """DER SubjectPublicKeyInfo of the pair's public key."""
        ...

    def sign(self, key: KeyRef, data: bytes, *, digest_algorithm: str) -> bytes:
        """Hash `data` with `digest_algorithm` and sign it with the private key (see module doc)."""
        ...

    def pdf_signer(
        self,
        key: KeyRef,
        signing_cert: x509.Certificate,
        ca_chain: Sequence[x509.Certificate] = (),
    ) -> AbstractContextManager[Signer]:
        """A pyHanko `PKCS11Signer` for `key`, bound to this process's pooled session.

        The certificate comes from the database (the token holds keys only). Signing
        goes through the pool: the same lock, timeout, reopen-once and error mapping
        as `sign()`. Use it only inside the `with` block.
        """
        ...

    def health(self) -> HsmHealth:
        """Probe the token (opens the session if needed). Never raises."""
        ...


class KeyDeleter(Protocol):
    """Optional capability: destroy a key pair (failed issuance, tests, key retirement)."""

    def delete(self, key: KeyRef) -> None: ...


MAX_LABEL_LENGTH = 200


def check_label(label: str) -> None:
    """Every custody's rule for key labels (CKA_LABEL)."""
    if not label or len(label) > MAX_LABEL_LENGTH or not label.isprintable():
        raise InvalidInput(f"a key label must be 1-{MAX_LABEL_LENGTH} printable characters")


def default_digest_algorithm(algorithm: KeyAlgorithm) -> str:
    """The digest that matches the key's strength (SHA-384 for P-384, else SHA-256)."""
    return "sha384" if algorithm is KeyAlgorithm.ECDSA_P384 else "sha256"


def signature_algorithm_name(algorithm: KeyAlgorithm, digest_algorithm: str) -> str:
    """asn1crypto `SignedDigestAlgorithm` name that `KeyCustody.sign` produces, e.g. "sha256_rsa"."""
    if digest_algorithm not in DIGEST_ALGORITHMS:
        raise InvalidInput(f"unsupported digest algorithm {digest_algorithm!r}")
    family = "rsa" if algorithm in (KeyAlgorithm.RSA2048, KeyAlgorithm.RSA3072) else "ecdsa"
    return f"{digest_algorithm}_{family}"
