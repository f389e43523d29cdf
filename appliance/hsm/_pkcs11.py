"""`KeyCustody` over python-pkcs11: key templates, object search, signing, health."""

from __future__ import annotations

import functools
import logging
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from asn1crypto import keys
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11e
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters
from pkcs11.util.rsa import encode_rsa_public_key
from pydantic import SecretStr

from appliance.config import HsmConfig, KeyAlgorithm
from appliance.errors import ApplianceError, Conflict, InvalidInput
from appliance.hsm.api import (
    DIGEST_ALGORITHMS,
    HsmHealth,
    KeyRef,
    KeySpec,
    check_label,
)
from appliance.hsm.errors import KeyNotFound, KeyPolicyViolation
from appliance.hsm.pool import SessionPool, shared_pool
from appliance.hsm.signer import PooledPkcs11Signer, signing_params
from appliance.hsm.uri import private_key_selector

if TYPE_CHECKING:
    from asn1crypto import x509
    from pyhanko.sign.signers import Signer

log = logging.getLogger(__name__)

_RSA_BITS = {KeyAlgorithm.RSA2048: 2048, KeyAlgorithm.RSA3072: 3072}
_CURVES = {KeyAlgorithm.ECDSA_P256: "secp256r1", KeyAlgorithm.ECDSA_P384: "secp384r1"}
_ECDSA_HASH_MECHANISMS = {
    "sha256": Mechanism.ECDSA_SHA256,
    "sha384": Mechanism.ECDSA_SHA384,
    "sha512": Mechanism.ECDSA_SHA512,
}

# Every attribute set explicitly: python-pkcs11's defaults make session objects and RSA keys
# that can also decrypt/unwrap, and SoftHSM2 defaults CKA_SENSITIVE to false.
PRIVATE_KEY_POLICY: dict[Attribute, bool] = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SIGN: True,
    Attribute.SIGN_RECOVER: False,
    Attribute.DECRYPT: False,
    Attribute.UNWRAP: False,
    Attribute.DERIVE: False,
    # Read-only from creation: without it anyone holding the user PIN could re-enable
    # DECRYPT/DERIVE or relabel the key (the usage flags above would hold only by convention).
    Attribute.MODIFIABLE: False,
}
PUBLIC_KEY_POLICY: dict[Attribute, bool] = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: False,
    Attribute.VERIFY: True,
    Attribute.VERIFY_RECOVER: False,
    Attribute.ENCRYPT: False,
    Attribute.WRAP: False,
    Attribute.DERIVE: False,
}
# Set by the token itself; proves the key was never sensitive-less or extractable.
PRIVATE_KEY_PROVENANCE: dict[Attribute, bool] = {
    Attribute.ALWAYS_SENSITIVE: True,
    Attribute.NEVER_EXTRACTABLE: True,
    Attribute.LOCAL: True,
}


class Pkcs11Custody:
    """Key custody in a PKCS#11 token; opens nothing until first use."""

    def __init__(
        self,
        cfg: HsmConfig,
        pin: SecretStr,
        *,
        random_id: Callable[[], bytes] = lambda: secrets.token_bytes(16),
        pool: SessionPool | None = None,
    ) -> None:
        self._cfg = cfg
        self._random_id = random_id
        self.pool = pool or shared_pool(cfg, pin)

    @property
    def token_label(self) -> str | None:
        return self.pool.token_label

    # -- generation -----------------------------------------------------------------------

    def generate(self, spec: KeySpec) -> KeyRef:
        check_label(spec.label)
        key_id = self._random_id()

        def generate(session: Any) -> KeyRef:
            if _find_private(session, label=spec.label):
                raise Conflict(f"a key labelled {spec.label!r} already exists in the HSM")
            common = {"id": key_id, "label": spec.label, "store": True}
            templates = {
                "public_template": dict(PUBLIC_KEY_POLICY),
                "private_template": dict(PRIVATE_KEY_POLICY),
            }
            if spec.algorithm in _RSA_BITS:
                public, private = session.generate_keypair(
                    KeyType.RSA, _RSA_BITS[spec.algorithm], **common, **templates
                )
            else:
                params = session.create_domain_parameters(
                    KeyType.EC,
                    {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVES[spec.algorithm])},
                    local=True,
                )
                public, private = params.generate_keypair(**common, **templates)
            wrong = policy_mismatches(private, public)
            if wrong:
                log.error("HSM ignored key template attributes %s; deleting the new pair", wrong)
                outcome = (
                    "the new key pair was deleted"
                    if _destroy_quietly(private, public)
                    else "the new key pair could not be deleted: remove it with the HSM's own tools"
                )
                raise KeyPolicyViolation(
                    f"the HSM did not apply the key policy ({', '.join(wrong)}); {outcome}"
                )
            return KeyRef(label=spec.label, key_id=key_id, algorithm=spec.algorithm)

        key = self.pool.run(generate, what="generate key")
        log.info("generated %s key pair %r (id %s) in the HSM", key.algorithm, key.label, key.key_id_hex)
        return key

    def delete(self, key: KeyRef) -> None:
        def delete(session: Any) -> None:
            self.pool.handles.pop(key.key_id, None)
            private = _one_private(session, key)
            publics = list(
                session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: key.key_id})
            )
            _destroy_quietly(private, *publics)

        self.pool.run(delete, what="delete key")

    # -- lookup ---------------------------------------------------------------------------

    def find_key(self, *, label: str | None = None, key_id: bytes | None = None) -> KeyRef:
        if label is None and key_id is None:
            raise InvalidInput("give a key label or CKA_ID")

        def find(session: Any) -> KeyRef:
            found = _find_private(session, label=label, key_id=key_id)
            if not found:
                raise KeyNotFound("no such key in the HSM")
            if len(found) > 1:
                raise Conflict("several keys in the HSM match; select the key by its CKA_ID")
            return _key_ref(found[0])

        return self.pool.run(find, what="find key")

    def find_key_by_uri(self, uri: str) -> KeyRef:
        label, key_id = private_key_selector(uri, self.token_label)
        return self.find_key(label=label, key_id=key_id)

    def list_keys(self) -> list[KeyRef]:
        def list_all(session: Any) -> list[KeyRef]:
            refs = []
            for obj in _find_private(session):
                try:
                    refs.append(_key_ref(obj))
                except _UnsupportedKey:
                    continue  # keys of algorithms we never generate (other tools may share the token)
            return sorted(refs, key=lambda ref: (ref.label, ref.key_id))

        return self.pool.run(list_all, what="list keys")

    def public_key_info(self, key: KeyRef) -> bytes:
        def read(session: Any) -> bytes:
            found = list(
                session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: key.key_id})
            )
            if len(found) != 1:
                raise KeyNotFound(f"public key of {key.label!r} not found in the HSM")
            return _encode_spki(found[0], key.algorithm)

        return self.pool.run(read, what="read public key")

    # -- signing --------------------------------------------------------------------------

    def sign(self, key: KeyRef, data: bytes, *, digest_algorithm: str) -> bytes:
        digest_algorithm = digest_algorithm.lower()
        if digest_algorithm not in DIGEST_ALGORITHMS:
            raise InvalidInput(f"unsupported digest algorithm {digest_algorithm!r}")
        # SoftHSM2 (and several HSMs) lack CKM_ECDSA_SHA*: hash here and use raw CKM_ECDSA.
        use_raw = key.algorithm in _CURVES and _ECDSA_HASH_MECHANISMS[digest_algorithm] not in (
            self.pool.mechanisms()
        )
        spec = signing_params(key.algorithm, digest_algorithm, use_raw)
        payload = spec.pre_sign_transform(data) if spec.pre_sign_transform else data

        def sign(session: Any) -> bytes:
            # The handle found by the first signature serves every later one in this session
            # (the pool empties the cache when the session is dropped or reopened), so a
            # signature is one C_SignInit + C_Sign instead of a search plus attribute reads.
            handles = self.pool.handles
            private = handles.get(key.key_id)
            if private is not None:
                try:
                    return bytes(private.sign(payload, **spec.sign_kwargs))
                except (p11e.KeyHandleInvalid, p11e.ObjectHandleInvalid):
                    # the key was destroyed or replaced behind our back: search again once
                    handles.pop(key.key_id, None)
            private = _one_private(session, key)
            handles[key.key_id] = private
            return bytes(private.sign(payload, **spec.sign_kwargs))

        signature = self.pool.run(sign, what="sign")
        return spec.post_sign_transform(signature) if spec.post_sign_transform else signature

    @contextmanager
    def pdf_signer(
        self,
        key: KeyRef,
        signing_cert: x509.Certificate,
        ca_chain: Sequence[x509.Certificate] = (),
    ) -> Iterator[Signer]:
        session = self.pool.run(lambda s: s, what="open session")
        yield PooledPkcs11Signer(
            functools.partial(self.sign, key), key, session, signing_cert=signing_cert, ca_chain=ca_chain
        )

    # -- health ---------------------------------------------------------------------------

    def health(self) -> HsmHealth:
        started = time.monotonic()

        def probe(session: Any) -> HsmHealth:
            # a cheap round trip through the session proves it is alive, not just cached
            session.generate_random(64)
            lib, token = self.pool.token_info()
            return HsmHealth(
                ok=True,
                detail="token ready",
                token_label=token.label,
                manufacturer=token.manufacturer_id,
                model=token.model,
                serial=token.serial.decode("ascii", "replace")
                if isinstance(token.serial, bytes)
                else token.serial,
                library=f"{lib.library_description} {'.'.join(map(str, lib.library_version))}",
            )

        try:
            health = self.pool.run(probe, what="health probe")
        except ApplianceError as exc:
            return HsmHealth(ok=False, detail=exc.detail, token_label=self.token_label)
        return HsmHealth(**{**health.__dict__, "latency_ms": round((time.monotonic() - started) * 1000, 1)})

    def close(self) -> None:
        self.pool.close()


class _UnsupportedKey(Exception):
    pass


def _find_private(session: Any, *, label: str | None = None, key_id: bytes | None = None) -> list[Any]:
    query: dict[Attribute, Any] = {Attribute.CLASS: ObjectClass.PRIVATE_KEY}
    if label is not None:
        query[Attribute.LABEL] = label
    if key_id is not None:
        query[Attribute.ID] = key_id
    # run the search to the end so the token's find operation terminates (C_FindObjectsFinal)
    return list(session.get_objects(query))


def _one_private(session: Any, key: KeyRef) -> Any:
    found = _find_private(session, key_id=key.key_id)
    if not found:
        raise KeyNotFound(f"key {key.label!r} not found in the HSM")
    if len(found) > 1:
        raise Conflict(f"several keys share the CKA_ID of {key.label!r}")
    return found[0]


def _key_ref(private: Any) -> KeyRef:
    return KeyRef(
        label=private[Attribute.LABEL],
        key_id=bytes(private[Attribute.ID]),
        algorithm=_algorithm_of(private),
    )


def _algorithm_of(obj: Any) -> KeyAlgorithm:
    key_type = obj[Attribute.KEY_TYPE]
    if key_type == KeyType.RSA:
        bits = int.from_bytes(obj[Attribute.MODULUS], "big").bit_length()
        for algorithm, size in _RSA_BITS.items():
            if size == bits:
                return algorithm
    elif key_type == KeyType.EC:
        curve = keys.ECDomainParameters.load(obj[Attribute.EC_PARAMS]).chosen.native
        for algorithm, name in _CURVES.items():
            if name == curve:
                return algorithm
    raise _UnsupportedKey()


def _encode_spki(public: Any, algorithm: KeyAlgorithm) -> bytes:
    if algorithm in _RSA_BITS:
        rsa = keys.RSAPublicKey.load(encode_rsa_public_key(public))
        return keys.PublicKeyInfo({"algorithm": {"algorithm": "rsa"}, "public_key": rsa}).dump()
    return bytes(encode_ec_public_key(public))


def read_key_policy(private: Any, public: Any) -> dict[str, bool | None]:
    """The security attributes as the token reports them; None where it will not say."""
    report: dict[str, bool | None] = {}
    for prefix, obj, policy in (
        ("private", private, {**PRIVATE_KEY_POLICY, **PRIVATE_KEY_PROVENANCE}),
        ("public", public, PUBLIC_KEY_POLICY),
    ):
        for attribute in policy:
            try:
                report[f"{prefix}.{attribute.name}"] = bool(obj[attribute])
            except (p11e.AttributeTypeInvalid, p11e.AttributeSensitive):
                # an attribute the token will not report is unverified, never "false"
                report[f"{prefix}.{attribute.name}"] = None
    return report


def policy_mismatches(private: Any, public: Any) -> list[str]:
    """Attributes of a new key pair that differ from the policy or cannot be read back."""
    actual = read_key_policy(private, public)
    expected = {
        **{f"private.{a.name}": v for a, v in {**PRIVATE_KEY_POLICY, **PRIVATE_KEY_PROVENANCE}.items()},
        **{f"public.{a.name}": v for a, v in PUBLIC_KEY_POLICY.items()},
    }
    return sorted(name for name, value in expected.items() if actual.get(name) is not value)


def _destroy_quietly(*objects: Any) -> bool:
    """Delete each object; False when one of them could not be deleted (logged)."""
    deleted = True
    for obj in objects:
        try:
            obj.destroy()
        except p11e.PKCS11Error:
            deleted = False
            log.error("could not delete an HSM object", exc_info=True)
    return deleted
