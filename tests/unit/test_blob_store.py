"""The filesystem blob store: content addressed, durable writes, clear errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from appliance.errors import InvalidInput, NotFound, Unavailable
from appliance.storage import FilesystemBlobStore


def test_put_get_round_trip(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    data = b"%PDF-1.7 contract"
    name = store.put(data)
    assert name == hashlib.sha256(data).hexdigest()
    assert store.get(name) == data and store.exists(name)
    assert store.put(data) == name  # same content, same name, no second copy
    assert not list(tmp_path.rglob(".tmp-*"))


def test_delete_then_missing(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    name = store.put(b"x")
    store.delete(name)
    with pytest.raises(NotFound):
        store.get(name)


def test_names_that_are_not_sha256_are_refused(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    for bad in ("../../etc/passwd", "A" * 64, "abc"):
        with pytest.raises(InvalidInput):
            store.get(bad)


def test_store_on_a_file_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    store = FilesystemBlobStore(blocker)
    with pytest.raises(Unavailable):
        store.put(b"x")
    with pytest.raises(Unavailable):
        store.check_writable()
