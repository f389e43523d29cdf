"""The filesystem blob store: content addressed, durable writes, clear errors."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from appliance.errors import InvalidInput, NotFound, Unavailable
from appliance.storage import FilesystemBlobStore


def test_put_get_round_trip(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    data = b"%PDF-1.7 contract"
    name = store.put(io.BytesIO(data))
    assert name == hashlib.sha256(data).hexdigest()
    assert store.get(name) == data and store.exists(name)
    assert store.put(io.BytesIO(data)) == name  # same content, same name, no second copy
    assert not list(tmp_path.rglob(".tmp-*"))


def test_put_streams_and_leaves_nothing_behind_when_the_stream_fails(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    big = b"%PDF-1.7 " + bytes(5 << 20)
    reads: list[int] = []

    class Source(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            reads.append(size if size is not None else -1)
            return super().read(size)

    assert store.get(store.put(Source(big))) == big
    assert reads and max(reads) < len(big)  # read in chunks, never whole

    class Broken(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() > 0:
                raise OSError("the upload connection dropped")
            return super().read(size)

    with pytest.raises(InvalidInput, match="send it again"):
        store.put(Broken(b"y" * (3 << 20)))
    assert not list(tmp_path.rglob("*.part"))
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [hashlib.sha256(big).hexdigest()]


def test_store_errors_tell_the_client_nothing_of_the_path(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "gone")
    with pytest.raises(Unavailable) as caught:
        store.put(io.BytesIO(b"x"))
    assert str(tmp_path) not in caught.value.public
    assert str(tmp_path) in caught.value.detail


def test_delete_then_missing(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    name = store.put(io.BytesIO(b"x"))
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
        store.put(io.BytesIO(b"x"))
    with pytest.raises(Unavailable):
        store.check_writable()
