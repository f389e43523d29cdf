"""Filesystem blob store: write to a temp file, fsync, rename, fsync the folder."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from appliance.errors import InvalidInput, NotFound, Unavailable

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class FilesystemBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise InvalidInput("a blob name is 64 lowercase hex characters (sha256)")
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        target = self._path(sha256)
        if target.exists():
            return sha256
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as tmp:
                    tmp.write(data)
                    tmp.flush()
                    os.fsync(tmp.fileno())
                os.replace(tmp_name, target)
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise Unavailable(f"the document store at {self.root} cannot be written") from exc
        return sha256

    def get(self, sha256: str) -> bytes:
        try:
            return self._path(sha256).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"document {sha256} is not in the store") from exc
        except OSError as exc:
            raise Unavailable(f"the document store at {self.root} cannot be read") from exc

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).exists()

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)

    def check_writable(self) -> None:
        if not (self.root.is_dir() and os.access(self.root, os.W_OK)):
            raise Unavailable(f"the document store {self.root} is missing or not writable")
