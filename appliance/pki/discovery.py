"""The discovery document: what a mobile app needs after its user types the private-cloud address.

`GET /.well-known/esign-configuration` answers this JSON, and in the `Esign-Signature` header
a detached JWS over those exact bytes (appliance.pki.jws), made with the appliance's document
key in the HSM. The protected header names the signing certificate by its sha256 thumbprint
(`x5t#S256`) and where its chain is published (`x5u`: the appliance's certificate, the
issuing CA, the root CA). An app that was given the root CA's fingerprint out of band (the
QR code on the appliance's pages, `setup_link`) checks the chain up to that root, then the
signature, before it believes any address in the document.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import Session

from appliance import __version__
from appliance.config import AppConfig
from appliance.errors import Unavailable
from appliance.hsm import KeyCustody
from appliance.models import Certificate, CertificateKind, HsmKey
from appliance.pki import certs
from appliance.pki.ca import active_certificate, key_ref_of
from appliance.pki.errors import PkiNotInitialised
from appliance.pki.jws import b64url, sign_detached

DISCOVERY_PATH = "/.well-known/esign-configuration"
CHAIN_PATH = "/pki/appliance-chain.pem"
SIGNATURE_HEADER = "Esign-Signature"
DOCUMENT_TYPE = "esign-configuration+json"


@dataclass(frozen=True)
class Fingerprints:
    """sha256 of the DER certificates, lower-case hex."""

    root_ca: str
    issuing_ca: str
    tls: str | None
    """Of the certificate nginx serves, when the config names it."""


@dataclass(frozen=True)
class SignedDiscovery:
    body: bytes
    signature: str
    """`<protected>..<signature>`: a detached JWS over `body`."""


def fingerprints(session: Session, config: AppConfig) -> Fingerprints:
    """:raises PkiNotInitialised: no CA yet. :raises Unavailable: the TLS certificate file is unreadable."""
    root = _active(session, CertificateKind.ROOT_CA)
    issuing = _active(session, CertificateKind.ISSUING_CA)
    return Fingerprints(root.sha256_fingerprint, issuing.sha256_fingerprint, tls_fingerprint(config))


def tls_fingerprint(config: AppConfig) -> str | None:
    path = config.mobile.tls_certificate_file
    if path is None:
        return None
    return certs.fingerprint(_tls_certificate_der(path))


def setup_link(config: AppConfig, root_ca_sha256: str) -> str:
    """What the QR codes hold: the discovery document's address, with the root CA's
    fingerprint in the fragment (which a browser never sends) for the app to check it by."""
    return f"{config.private_cloud_address}{DISCOVERY_PATH}#ca-sha256={quote(root_ca_sha256)}"


def discovery_document(session: Session, config: AppConfig, locales: Sequence[str]) -> bytes:
    """The document's bytes: compact JSON with sorted keys, so that equal facts sign alike."""
    base = config.private_cloud_address
    found = fingerprints(session, config)
    facts = {
        "name": f"{config.pki.organisation} E-Signature Appliance",
        "version": __version__,
        "minimum_client_version": config.mobile.minimum_client_version,
        "private_cloud_address": base,
        "base_url": base,
        "api_base": f"{base}/api/v1",
        "openapi_url": f"{base}/api/v1/openapi.json",
        "auth": {
            "login_page": f"{base}/login",
            "token_endpoint": f"{base}/api/v1/auth/tokens",
            "methods": ["password"],
        },
        "locales": list(locales),
        "certificates": {
            "root_ca_sha256": found.root_ca,
            "issuing_ca_sha256": found.issuing_ca,
            "tls_sha256": found.tls,
            "ca_bundle_url": f"{base}/pki/ca.pem",
        },
        "signature": {"header": SIGNATURE_HEADER, "chain_url": f"{base}{CHAIN_PATH}"},
    }
    return json.dumps(facts, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def appliance_certificate(session: Session) -> Certificate:
    """:raises PkiNotInitialised: the appliance has no document certificate yet."""
    return _active(session, CertificateKind.APPLIANCE)


def sign_discovery(session: Session, custody: KeyCustody, config: AppConfig, body: bytes) -> SignedDiscovery:
    """`body` signed with the appliance's document key."""
    signer = appliance_certificate(session)
    key = session.get(HsmKey, signer.key_id) if signer.key_id is not None else None
    if key is None:
        raise PkiNotInitialised("the appliance has no document key yet; run `appliance pki init`")
    header = {
        "typ": DOCUMENT_TYPE,
        "x5t#S256": b64url(bytes.fromhex(signer.sha256_fingerprint)),
        "x5u": f"{config.private_cloud_address}{CHAIN_PATH}",
    }
    return SignedDiscovery(body, sign_detached(custody, key_ref_of(key), body, header))


def appliance_chain_pem(session: Session) -> str:
    """The signing certificate, then the issuing CA, then the root: what `x5u` points at."""
    chain = [
        appliance_certificate(session),
        _active(session, CertificateKind.ISSUING_CA),
        _active(session, CertificateKind.ROOT_CA),
    ]
    return "".join(certs.certificate_pem(row.der) for row in chain)


def _active(session: Session, kind: CertificateKind) -> Certificate:
    row = active_certificate(session, kind)
    if row is None:
        raise PkiNotInitialised()
    return row


def _tls_certificate_der(path: Path) -> bytes:
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise Unavailable(
            f"mobile.tls_certificate_file {path} is not a readable PEM certificate; "
            "point it at the certificate nginx serves"
        ) from exc
    return certificate.public_bytes(serialization.Encoding.DER)
