"""Detached JSON Web Signatures (RFC 7515, appendix F) made with a key in the HSM.

The payload travels on its own (an HTTP body); the signature is the compact serialisation
with the payload part left empty: `<protected header>..<signature>`. A verifier puts the
base64url of the bytes it received back between the dots and checks an ordinary JWS.

`KeyCustody.sign` answers ECDSA in DER, as X.509 wants; JWS wants r || s, each as wide as the
curve (RFC 7518, section 3.4), so the signature is re-encoded here.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from appliance.config import KeyAlgorithm
from appliance.hsm import KeyCustody, KeyRef

# JWS "alg", the digest the HSM signs with, and for ECDSA the width of r and of s in bytes
_ALGORITHMS: dict[KeyAlgorithm, tuple[str, str, int | None]] = {
    KeyAlgorithm.RSA2048: ("RS256", "sha256", None),
    KeyAlgorithm.RSA3072: ("RS256", "sha256", None),
    KeyAlgorithm.ECDSA_P256: ("ES256", "sha256", 32),
    KeyAlgorithm.ECDSA_P384: ("ES384", "sha384", 48),
}


def b64url(data: bytes) -> str:
    """base64url without padding, as JOSE writes every binary part."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jws_algorithm(algorithm: KeyAlgorithm) -> str:
    return _ALGORITHMS[algorithm][0]


def sign_detached(custody: KeyCustody, key: KeyRef, payload: bytes, header: Mapping[str, object]) -> str:
    """`<protected>..<signature>` over `payload`, with `header` (and "alg") as the protected header."""
    alg, digest, width = _ALGORITHMS[key.algorithm]
    protected = b64url(json.dumps({**header, "alg": alg}, sort_keys=True, separators=(",", ":")).encode())
    signing_input = f"{protected}.{b64url(payload)}".encode("ascii")
    signature = custody.sign(key, signing_input, digest_algorithm=digest)
    if width is not None:
        r, s = decode_dss_signature(signature)
        signature = r.to_bytes(width, "big") + s.to_bytes(width, "big")
    return f"{protected}..{b64url(signature)}"
