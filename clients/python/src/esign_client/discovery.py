"""Fetch and check an appliance's discovery document (/.well-known/esign-configuration).

Nothing in the document is believed until: the chain its signature names (`x5u`, on the same
appliance) leads, certificate by certificate, to the root CA whose sha256 was given out of
band; the first certificate is valid now and is the one `x5t#S256` names; and the detached
JWS in the `Esign-Signature` header verifies over the exact bytes of the body.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

PATH = "/.well-known/esign-configuration"
SIGNATURE_HEADER = "Esign-Signature"
_ALGORITHMS = {"RS256": hashes.SHA256, "ES256": hashes.SHA256, "ES384": hashes.SHA384}


class DiscoveryError(Exception):
    """The document could not be fetched or did not pass a check; the message says which."""


@dataclass(frozen=True)
class Discovery:
    address: str
    document: dict[str, Any]
    signer: x509.Certificate

    @property
    def api_base(self) -> str:
        return str(self.document["api_base"])

    @property
    def token_endpoint(self) -> str:
        return str(self.document["auth"]["token_endpoint"])


def discover(
    address: str, ca_sha256: str, *, timeout: float = 10, http: requests.Session | None = None
) -> Discovery:
    """The checked document of the appliance at `address` (e.g. https://esign.corp.example),
    whose root CA has the sha256 `ca_sha256` (hex, as on the appliance's Mobile access page)."""
    http = http or requests.Session()
    address = address.rstrip("/")
    try:
        answer = http.get(address + PATH, timeout=timeout)
    except requests.RequestException as exc:
        raise DiscoveryError(
            f"{address} did not answer: connect to the corporate VPN, then retry ({exc})"
        ) from exc
    if answer.status_code != 200:
        raise DiscoveryError(f"{address} answered {answer.status_code}: {answer.text[:200]}")
    body, signature = answer.content, answer.headers.get(SIGNATURE_HEADER, "")
    protected_part, empty, signature_part = ([*signature.split("."), "", ""])[:3]
    if not protected_part or empty or not signature_part:
        raise DiscoveryError("the document carries no detached signature")
    protected = json.loads(_unb64(protected_part))
    chain_url = str(protected.get("x5u", ""))
    if urlsplit(chain_url)[:2] != urlsplit(address)[:2]:
        raise DiscoveryError(f"the signing chain is not on {address}: {chain_url!r}")
    try:
        chain = x509.load_pem_x509_certificates(http.get(chain_url, timeout=timeout).content)
    except (requests.RequestException, ValueError) as exc:
        raise DiscoveryError(f"the signing chain could not be read: {exc}") from exc
    signer = _check_chain(chain, ca_sha256.lower().replace(":", ""), protected)
    _check_signature(signer, protected, f"{protected_part}.{_b64(body)}".encode(), _unb64(signature_part))
    document = json.loads(body)
    if document.get("private_cloud_address", "").rstrip("/") != address:
        raise DiscoveryError(f"the document is for {document.get('private_cloud_address')}, not {address}")
    return Discovery(address, document, signer)


def _check_chain(
    chain: list[x509.Certificate], root_sha256: str, protected: dict[str, Any]
) -> x509.Certificate:
    if len(chain) < 2:
        raise DiscoveryError("the signing chain is too short")
    root = chain[-1]
    if hashlib.sha256(root.public_bytes(serialization.Encoding.DER)).hexdigest() != root_sha256:
        raise DiscoveryError(
            "the appliance's root CA is not the one whose fingerprint you were given: stop and call IT"
        )
    try:
        root.verify_directly_issued_by(root)
        for child, parent in itertools.pairwise(chain):
            child.verify_directly_issued_by(parent)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise DiscoveryError(f"the signing chain does not verify: {exc}") from exc
    signer = chain[0]
    now = datetime.now(UTC)
    if not signer.not_valid_before_utc <= now <= signer.not_valid_after_utc:
        raise DiscoveryError("the signing certificate is not valid now")
    thumbprint = _b64(hashlib.sha256(signer.public_bytes(serialization.Encoding.DER)).digest())
    if protected.get("x5t#S256") != thumbprint:
        raise DiscoveryError("the signature names another certificate than the chain's first")
    return signer


def _check_signature(
    signer: x509.Certificate, protected: dict[str, Any], signed: bytes, signature: bytes
) -> None:
    alg = protected.get("alg")
    key = signer.public_key()
    try:
        if alg == "RS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        elif alg in ("ES256", "ES384") and isinstance(key, ec.EllipticCurvePublicKey):
            half = len(signature) // 2
            der = encode_dss_signature(
                int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
            )
            key.verify(der, signed, ec.ECDSA(_ALGORITHMS[alg]()))
        else:
            raise DiscoveryError(f"the signature's algorithm {alg!r} does not fit the signing key")
    except InvalidSignature as exc:
        raise DiscoveryError("the document's signature does not verify: it was changed on the way") from exc


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
