"""The discovery document at /.well-known/esign-configuration, checked the way a mobile app
checks it: the chain its signature names, up to the root CA fingerprint given out of band,
then the detached JWS over the exact body (joserfc, an independent JOSE implementation)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask.testing import FlaskClient
from joserfc import jws
from joserfc.errors import BadSignatureError
from joserfc.jwk import import_key

from appliance import __version__
from appliance.config import load_config
from appliance.services import build_services
from appliance.web import create_app
from tests.fixtures.hsm import PkiEnv, write_pki_config
from tests.pki.test_external_ca import enterprise_root

pytestmark = pytest.mark.hsm

PATH = "/.well-known/esign-configuration"


def _client(config: Any, services: Any) -> FlaskClient:
    app = create_app(config, services=services)
    app.config["TESTING"] = True
    return app.test_client()


@pytest.fixture
def client(pki_env: PkiEnv) -> FlaskClient:
    return _client(pki_env.config, pki_env.services)


def _checked(client: FlaskClient, root_sha256: str, body: bytes, signature: str) -> dict[str, Any]:
    """What an app does before it believes the document; raises on any mismatch."""
    protected = json.loads(base64.urlsafe_b64decode(signature.split(".")[0] + "=="))
    base = json.loads(body)["private_cloud_address"]
    assert protected["x5u"].startswith(base + "/")  # the chain comes from the same appliance
    pem = client.get(protected["x5u"].removeprefix(base)).data
    signer, issuing, root = x509.load_pem_x509_certificates(pem)
    assert hashlib.sha256(root.public_bytes(serialization.Encoding.DER)).hexdigest() == root_sha256
    root.verify_directly_issued_by(root)
    issuing.verify_directly_issued_by(root)
    signer.verify_directly_issued_by(issuing)
    assert signer.not_valid_before_utc <= datetime.now(UTC) <= signer.not_valid_after_utc
    thumbprint = hashlib.sha256(signer.public_bytes(serialization.Encoding.DER)).digest()
    assert base64.urlsafe_b64decode(protected["x5t#S256"] + "==") == thumbprint
    public_pem = signer.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = import_key(
        public_pem, "EC" if isinstance(signer.public_key(), ec.EllipticCurvePublicKey) else "RSA"
    )
    jws.deserialize_compact(signature, key, algorithms=[protected["alg"]], payload=body)
    return json.loads(body)  # type: ignore[no-any-return]


def test_the_document_is_signed_by_the_appliance_under_its_root_ca(
    client: FlaskClient, pki_env: PkiEnv
) -> None:
    response = client.get(PATH)
    assert response.status_code == 200 and response.mimetype == "application/json"
    root_sha256 = hashlib.sha256(pki_env.root.dump()).hexdigest()
    document = _checked(client, root_sha256, response.data, response.headers["Esign-Signature"])

    base = pki_env.config.private_cloud_address
    assert document["version"] == __version__ and document["minimum_client_version"] == "1.0.0"
    assert (document["private_cloud_address"], document["api_base"]) == (base, f"{base}/api/v1")
    assert document["locales"] == ["en", "zh-CN"]
    assert document["auth"]["token_endpoint"] == f"{base}/api/v1/auth/tokens"
    assert document["certificates"] == {
        "root_ca_sha256": root_sha256,
        "issuing_ca_sha256": hashlib.sha256(pki_env.issuing.dump()).hexdigest(),
        "tls_sha256": None,  # plain HTTP here
        "ca_bundle_url": f"{base}/pki/ca.pem",
    }
    for url in (document["openapi_url"], document["certificates"]["ca_bundle_url"]):
        assert client.get(url.removeprefix(base)).status_code == 200

    again = client.get(PATH)
    assert (again.data, again.headers["Esign-Signature"]) == (
        response.data,
        response.headers["Esign-Signature"],
    )


def test_a_changed_body_or_another_root_fails_the_check(client: FlaskClient, pki_env: PkiEnv) -> None:
    response = client.get(PATH)
    signature = response.headers["Esign-Signature"]
    root_sha256 = hashlib.sha256(pki_env.root.dump()).hexdigest()
    moved = response.data.replace(b'"api_base":"http://127.0.0.1:9', b'"api_base":"http://203.0.113.7')
    assert moved != response.data
    with pytest.raises(BadSignatureError):
        _checked(client, root_sha256, moved, signature)
    with pytest.raises(AssertionError):
        _checked(client, "0" * 64, response.data, signature)


def test_the_tls_certificate_is_published_when_the_config_names_it(
    pki_env: PkiEnv, softhsm: Any, tmp_path: Path
) -> None:
    certificate = enterprise_root("esign.corp.example", ca=False).cert  # any server certificate
    pem = tmp_path / "server.crt"
    pem.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    mobile = {"tls_certificate_file": str(pem), "minimum_client_version": "2.3.0"}
    path = write_pki_config(
        tmp_path / "node", softhsm, database={"url": pki_env.config.database.url}, mobile=mobile
    )
    config = load_config(path, environ={})
    services = build_services(config)
    try:
        client = _client(config, services)
        document = json.loads(client.get(PATH).data)
        der = certificate.public_bytes(serialization.Encoding.DER)
        assert document["certificates"]["tls_sha256"] == hashlib.sha256(der).hexdigest()
        assert document["minimum_client_version"] == "2.3.0"

        pem.write_text("not a certificate")
        broken = client.get(PATH)
        assert broken.status_code == 503 and broken.mimetype == "application/problem+json"
        assert "tls_certificate_file" in broken.get_json()["detail"]
    finally:
        services.engine.dispose()


def test_outside_the_allowed_networks_the_document_is_refused(client: FlaskClient) -> None:
    for path in ("/pki/appliance-chain.pem", PATH):
        response = client.get(path, environ_overrides={"REMOTE_ADDR": "203.0.113.9"})
        assert response.status_code == 403
    assert response.mimetype == "application/problem+json"  # the last: the document itself
