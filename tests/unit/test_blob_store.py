"""What only the filesystem store has: temp files that never outlive a write, and paths that
stay out of what a client sees. The behaviour every BlobStore shares is in
tests/behaviour/test_blob_store.py, run against this store and the fake."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from appliance.errors import InvalidInput, Unavailable
from appliance.storage import FilesystemBlobStore


def test_a_write_leaves_one_file_named_by_its_hash_and_no_temp_files(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    data = b"%PDF-1.7 contract"
    name = store.put(io.BytesIO(data))
    assert store.put(io.BytesIO(data)) == name  # no second copy
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()] == [Path(name[:2]) / name]


def test_a_broken_source_leaves_no_temp_file(tmp_path: Path) -> None:
    class Broken(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() > 0:
                raise OSError("the upload connection dropped")
            return super().read(size)

    store = FilesystemBlobStore(tmp_path)
    with pytest.raises(InvalidInput):
        store.put(Broken(b"y" * (3 << 20)))
    assert not list(tmp_path.rglob("*.part"))
    assert not store.exists(hashlib.sha256(b"y" * (3 << 20)).hexdigest())


def test_store_errors_tell_the_client_nothing_of_the_path(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "gone")
    with pytest.raises(Unavailable) as caught:
        store.put(io.BytesIO(b"x"))
    assert str(tmp_path) not in caught.value.public
    assert str(tmp_path) in caught.value.detail


def test_a_store_on_a_file_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    store = FilesystemBlobStore(blocker)
    with pytest.raises(Unavailable):
        store.put(io.BytesIO(b"x"))
    with pytest.raises(Unavailable):
        store.check_writable()
