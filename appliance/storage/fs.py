"""Filesystem blob store: stream to a temp file while hashing, fsync, rename to the hash."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from appliance.errors import InvalidInput, NotFound, Unavailable
from appliance.storage.atomic import pending_file

_SHA256 = re.compile(r"[0-9a-f]{64}")
_FOLDER = re.compile(r"[0-9a-f]{2}")
_CHUNK = 1 << 20
STORE_UNAVAILABLE = "The document store cannot be used right now. Try again in a few minutes."


class FilesystemBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise InvalidInput("a blob name is 64 lowercase hex characters (sha256)")
        return self.root / sha256[:2] / sha256

    def put(self, stream: BinaryIO) -> str:
        digest = hashlib.sha256()
        try:
            with pending_file(self.root) as pending:
                while chunk := _read_source(stream):
                    digest.update(chunk)
                    pending.file.write(chunk)
                sha256 = digest.hexdigest()
                target = self._path(sha256)
                if not _restart_age(target):
                    target.parent.mkdir(exist_ok=True)
                    pending.commit(target)
        except OSError as exc:
            raise self._unavailable("written") from exc
        return sha256

    def open(self, sha256: str) -> BinaryIO:
        try:
            return self._path(sha256).open("rb")
        except FileNotFoundError as exc:
            raise NotFound(f"document {sha256} is not in the store") from exc
        except OSError as exc:
            raise self._unavailable("read") from exc

    def get(self, sha256: str) -> bytes:
        with self.open(sha256) as handle:
            try:
                return handle.read()
            except OSError as exc:
                raise self._unavailable("read") from exc

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).exists()

    def delete(self, sha256: str) -> None:
        path = self._path(sha256)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise self._unavailable("changed") from exc

    def names_older_than(self, cutoff: datetime) -> Iterator[str]:
        if cutoff.tzinfo is None or cutoff.utcoffset() is None:
            raise InvalidInput("the cutoff for listing blobs must be timezone-aware")
        try:
            folders = sorted(_subfolders(self.root))
        except OSError as exc:
            raise self._unavailable("read") from exc
        return self._names_in(folders, cutoff.timestamp())

    def _names_in(self, folders: list[str], cutoff: float) -> Iterator[str]:
        # one folder (1/256 of the store) at a time, so the whole store is never listed at once
        for folder in folders:
            try:
                names = _old_blobs_in(self.root / folder, folder, cutoff)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise self._unavailable("read") from exc
            yield from names

    def check_writable(self) -> None:
        if not (self.root.is_dir() and os.access(self.root, os.W_OK)):
            raise Unavailable(
                STORE_UNAVAILABLE, detail=f"the document store {self.root} is missing or not writable"
            )

    def _unavailable(self, verb: str) -> Unavailable:
        return Unavailable(STORE_UNAVAILABLE, detail=f"the document store at {self.root} cannot be {verb}")


def _restart_age(blob: Path) -> bool:
    """Mark a blob stored again as new (False when it is not there): the write that stores it
    again is about to be referred to, so a sweep must give it the full grace period again."""
    try:
        os.utime(blob)
    except FileNotFoundError:
        return False
    return True


def _subfolders(root: Path) -> list[str]:
    with os.scandir(root) as entries:
        return [e.name for e in entries if _FOLDER.fullmatch(e.name) and e.is_dir(follow_symlinks=False)]


def _old_blobs_in(folder: Path, prefix: str, cutoff: float) -> list[str]:
    """Blob names in `folder` last written before `cutoff` (temp files and strays are not blobs)."""
    names = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if not (_SHA256.fullmatch(entry.name) and entry.name.startswith(prefix)):
                continue
            try:
                if (
                    entry.is_file(follow_symlinks=False)
                    and entry.stat(follow_symlinks=False).st_mtime < cutoff
                ):
                    names.append(entry.name)
            except FileNotFoundError:
                continue  # deleted while listing
    return names


def _read_source(stream: BinaryIO) -> bytes:
    # a broken source (an upload cut off) is the sender's problem, not the store's
    try:
        return stream.read(_CHUNK)
    except OSError as exc:
        raise InvalidInput("the document could not be read to its end; send it again") from exc
