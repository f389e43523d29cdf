"""Detached JWS made with keys in SoftHSM2, of every algorithm the appliance's keys may have,
checked by an independent JOSE implementation (joserfc)."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_public_key
from joserfc import jws
from joserfc.errors import BadSignatureError
from joserfc.jwk import import_key

from appliance.config import KeyAlgorithm
from appliance.hsm import KeySpec
from appliance.pki.jws import b64url, jws_algorithm, sign_detached

pytestmark = pytest.mark.hsm

PAYLOAD = '{"name":"示例 E-Signature Appliance","version":"1"}'.encode()


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_a_detached_signature_verifies_over_the_payload_and_nothing_else(
    custody: Any, algorithm: KeyAlgorithm
) -> None:
    key = custody.generate(KeySpec(f"jws-{algorithm.value}-{secrets.token_hex(4)}", algorithm))
    pem = load_der_public_key(custody.public_key_info(key)).public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )
    public = import_key(pem, "EC" if algorithm.value.startswith("ecdsa") else "RSA")
    signature = sign_detached(custody, key, PAYLOAD, {"typ": "test+json", "x5u": "https://x/chain.pem"})

    protected, empty, _ = signature.split(".")
    assert empty == ""  # the payload is detached
    alg = jws_algorithm(algorithm)
    verified = jws.deserialize_compact(signature, public, algorithms=[alg], payload=PAYLOAD)
    assert verified.payload == PAYLOAD
    assert verified.protected == {"alg": alg, "typ": "test+json", "x5u": "https://x/chain.pem"}
    # the same as putting the payload back between the dots
    attached = signature.replace("..", f".{b64url(PAYLOAD)}.")
    assert jws.deserialize_compact(attached, public, algorithms=[alg]).payload == PAYLOAD

    with pytest.raises(BadSignatureError):
        jws.deserialize_compact(signature, public, algorithms=[alg], payload=PAYLOAD + b" ")
    forged = b64url(json.dumps({"alg": alg, "typ": "other+json"}).encode())
    with pytest.raises(BadSignatureError):
        jws.deserialize_compact(
            forged + signature[len(protected) :], public, algorithms=[alg], payload=PAYLOAD
        )
