"""Validated signer paths, reused while nothing they were validated against can have changed.

Path validation with hard-fail CRL checking costs a few milliseconds per signature (signature
checks over the chain and the CRLs), and its answer is the same for every document a signer
signs until the certificate, the chain, the trust anchors or a CRL changes, or time moves on.
An entry is therefore keyed on a digest of all of those DER bytes plus a short time bucket:

* a newly stored CRL (the only way a revocation reaches us) changes the key, so the very next
  signature is validated afresh and a revoked certificate is refused at once;
* an entry lives at most `BUCKET_SECONDS`, and never past the earliest end of validity of a
  certificate on the path or the next update of a CRL, so expiry is seen on time;
* only successful validations are kept: a refusal is recomputed (and refused) every time.

The cached object is pyHanko's `ValidationPath`, which signing only reads. The validation data
put into the file (chain and CRLs) is taken from the trust material of each signature, not
from the cache, so the file's LTV content is unchanged.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime, timedelta

from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator.path import ValidationPath

from appliance.signing.trust import TrustMaterial

BUCKET_SECONDS = 60
MAX_ENTRIES = 64


def _der(value: object) -> bytes:
    # asn1crypto objects parsed from DER keep their encoding; dump() returns it without re-encoding
    return value.dump()  # type: ignore[attr-defined,no-any-return]


class SignerPathCache:
    """A small, thread-safe, process-local cache of validated signer paths (see module doc)."""

    def __init__(self, *, bucket_seconds: int = BUCKET_SECONDS, max_entries: int = MAX_ENTRIES) -> None:
        self._bucket_seconds = bucket_seconds
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, tuple[ValidationPath, datetime]] = OrderedDict()

    def key(
        self,
        certificate: asn1_x509.Certificate,
        intermediates: Iterable[asn1_x509.Certificate],
        trust: TrustMaterial,
        now: datetime,
    ) -> bytes:
        """Digest of everything the validation depends on, and the time bucket of `now`."""
        digest = hashlib.sha256()
        digest.update(int(now.timestamp() // self._bucket_seconds).to_bytes(8, "big", signed=True))
        groups: tuple[Iterable[object], ...] = (
            (certificate,),
            intermediates,
            trust.roots,
            trust.other_certs,
            trust.crls,
        )
        for group in groups:
            # length prefixes keep the concatenation unambiguous between groups and items
            items = [_der(item) for item in group]
            digest.update(len(items).to_bytes(4, "big"))
            for item in items:
                digest.update(len(item).to_bytes(4, "big"))
                digest.update(item)
        return digest.digest()

    def get(self, key: bytes, now: datetime) -> ValidationPath | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            path, valid_until = entry
            if now >= valid_until:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return path

    def put(self, key: bytes, path: ValidationPath, trust: TrustMaterial, now: datetime) -> None:
        """Keep a successfully validated path until the earliest moment it could stop holding."""
        valid_until = self._bucket_end(now)
        for cert in path.iter_certs(include_root=True):
            valid_until = min(valid_until, cert.not_valid_after)
        for crl in trust.crls:
            next_update = crl["tbs_cert_list"]["next_update"].native
            if next_update is not None:
                valid_until = min(valid_until, next_update)
        if now >= valid_until:
            return
        with self._lock:
            self._entries[key] = (path, valid_until)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _bucket_end(self, now: datetime) -> datetime:
        seconds = self._bucket_seconds
        start = int(now.timestamp() // seconds) * seconds
        return datetime.fromtimestamp(start, tz=now.tzinfo) + timedelta(seconds=seconds)


SIGNER_PATHS = SignerPathCache()
"""The process's cache, used by `sign_pdf`."""
