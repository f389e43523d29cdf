"""An in-memory `BlobStore`; stands in for `FilesystemBlobStore`."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from datetime import datetime
from typing import BinaryIO

from appliance.clock import Clock, SystemClock
from appliance.errors import InvalidInput, NotFound, Unavailable
from appliance.storage.fs import STORE_UNAVAILABLE

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


class MemoryBlobStore:
    """Blobs in a dict, named by their sha256. Set `writable = False` to make it refuse writes
    (as a full or read-only disk would); reads go on working. `clock` says when each blob is
    stored (the file store uses the files' modification times)."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._blobs: dict[str, bytes] = {}
        self._stored_at: dict[str, datetime] = {}
        self.writable = True
        self.clock = clock or SystemClock()

    def put(self, stream: BinaryIO) -> str:
        self.check_writable()
        digest = hashlib.sha256()
        body = io.BytesIO()
        while chunk := _read_source(stream):
            digest.update(chunk)
            body.write(chunk)
        sha256 = digest.hexdigest()
        self._blobs.setdefault(sha256, body.getvalue())
        self._stored_at[sha256] = self.clock.now()
        return sha256

    def open(self, sha256: str) -> BinaryIO:
        return io.BytesIO(self.get(sha256))

    def get(self, sha256: str) -> bytes:
        try:
            return self._blobs[_checked(sha256)]
        except KeyError:
            raise NotFound(f"document {sha256} is not in the store") from None

    def exists(self, sha256: str) -> bool:
        return _checked(sha256) in self._blobs

    def delete(self, sha256: str) -> None:
        self._blobs.pop(_checked(sha256), None)
        self._stored_at.pop(sha256, None)

    def names_older_than(self, cutoff: datetime) -> Iterator[str]:
        if cutoff.tzinfo is None or cutoff.utcoffset() is None:
            raise InvalidInput("the cutoff for listing blobs must be timezone-aware")
        # a copy, so that deleting while iterating is safe as in the file store
        return iter([name for name, stored in self._stored_at.items() if stored < cutoff])

    def check_writable(self) -> None:
        if not self.writable:
            raise Unavailable(STORE_UNAVAILABLE, detail="the in-memory document store is set read-only")


def _checked(sha256: str) -> str:
    if not _SHA256.fullmatch(sha256):
        raise InvalidInput("a blob name is 64 lowercase hex characters (sha256)")
    return sha256


def _read_source(stream: BinaryIO) -> bytes:
    # a broken source (an upload cut off) is the sender's problem, as in the file store
    try:
        return stream.read(_CHUNK)
    except OSError as exc:
        raise InvalidInput("the document could not be read to its end; send it again") from exc
