"""pyHanko signer bound to the pooled session; the one module of `hsm/` that uses pyHanko,
on purpose: its PKCS#11 signer and mechanism selection are reused, not rewritten.

pyHanko's `PKCS11Signer` does the PDF/CMS work (certificate registry, signature mechanism
for the certificate's key). Its one token call, the raw signature, goes through the
`sign_raw` callable it is given (the custody's `sign`), so it gets the pool's lock,
timeout, reopen-once and error mapping; the key handle is looked up there by CKA_ID, so
the signer never touches the session outside the lock.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from asn1crypto import algos, x509
from pyhanko.sign.pkcs11 import PKCS11Signer, select_pkcs11_signing_params

from appliance.config import KeyAlgorithm
from appliance.hsm.api import KeyRef, signature_algorithm_name

# (data, digest algorithm) -> raw signature from the token
SignRaw = Callable[..., bytes]

# Upper bound of the DER signature size for our algorithms (RSA-3072: 384 bytes; ECDSA
# P-384: at most 104), so pyHanko can reserve the /Contents space up front.
_SIGNATURE_SIZE = {"rsa2048": 256, "rsa3072": 384, "ecdsa-p256": 72, "ecdsa-p384": 104}


@functools.lru_cache(maxsize=32)
def signing_params(algorithm: KeyAlgorithm, digest_algorithm: str, use_raw: bool) -> Any:
    """pyHanko's PKCS#11 mechanism selection; pure, so computed once per combination."""
    mechanism = algos.SignedDigestAlgorithm(
        {"algorithm": signature_algorithm_name(algorithm, digest_algorithm)}
    )
    return select_pkcs11_signing_params(mechanism, digest_algorithm, use_raw, {})


class PooledPkcs11Signer(PKCS11Signer):
    def __init__(
        self,
        sign_raw: SignRaw,
        key: KeyRef,
        session: Any,
        *,
        signing_cert: x509.Certificate,
        ca_chain: Sequence[x509.Certificate],
    ) -> None:
        super().__init__(
            session,
            key_id=key.key_id,
            signing_cert=signing_cert,
            ca_chain=list(ca_chain),
            other_certs_to_pull=(),
        )
        self._sign_raw = sign_raw
        self._key = key

    def _load_objects(self) -> None:
        # The certificate comes from the database and the key handle is found per call by
        # Pkcs11Custody.sign, so there is nothing to pull from the token here.
        self._loaded = True

    def estimate_raw_signature_size_bytes(self) -> int:
        return _SIGNATURE_SIZE[self._key.algorithm.value]

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if dry_run:
            return bytes(self.estimate_raw_signature_size_bytes())
        # Called directly, not through the loop's default executor as pyHanko does: the pool
        # already runs the token call in its own thread with the HSM timeout, and the event
        # loop of one signing has nothing else to do meanwhile. A second hop would only add a
        # thread start (a fresh loop per document has no executor yet) and a handoff.
        return self._sign_raw(data, digest_algorithm=digest_algorithm)
