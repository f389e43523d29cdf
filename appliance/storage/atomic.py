"""Durable file writes: a temp file beside the target, fsynced, renamed over it, and the
folder fsynced, so a crash leaves either the old file or the whole new one."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from appliance.errors import InvalidInput


class PendingFile:
    """An open temp file that becomes `destination` on `commit`, or vanishes."""

    def __init__(self, folder: Path, prefix: str, mode: int) -> None:
        fd, name = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".part")
        os.fchmod(fd, mode)
        self.path = Path(name)
        self.file: BinaryIO = os.fdopen(fd, "w+b")
        self.committed = False

    def commit(self, destination: Path) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.path, destination)
        self.committed = True
        fsync_folder(destination.parent)  # the rename itself must survive a crash
        if destination.parent != self.path.parent:
            fsync_folder(self.path.parent)

    def discard(self) -> None:
        self.file.close()
        if not self.committed:
            self.path.unlink(missing_ok=True)


@contextmanager
def pending_file(folder: Path, *, prefix: str = ".tmp-", mode: int = 0o600) -> Iterator[PendingFile]:
    """For content whose final name is known only at the end (a blob named by its hash)."""
    pending = PendingFile(folder, prefix, mode)
    try:
        yield pending
    finally:
        pending.discard()


@contextmanager
def atomic_output(destination: Path, *, mode: int = 0o600) -> Iterator[BinaryIO]:
    """Write `destination` in one piece; refuses anything but a new path or a regular file.

    :raises InvalidInput: the folder does not exist, or the destination is a device, FIFO,
        folder or symbolic link (replacing one by a regular file would surprise its owner).
    """
    check_destination(destination)
    with pending_file(destination.parent, prefix=f".{destination.name}.", mode=mode) as pending:
        yield pending.file
        pending.commit(destination)


def check_destination(destination: Path) -> None:
    if not destination.parent.is_dir():
        raise InvalidInput(f"the folder {destination.parent} does not exist; create it first")
    try:
        mode = destination.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise InvalidInput(f"{destination} exists and is not a regular file; give a new path or a file")


def fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
