"""`BlobStore`: the same test bodies against the file store and the tests' MemoryBlobStore."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.errors import InvalidInput, NotFound, Unavailable
from appliance.storage import BlobStore, FilesystemBlobStore
from appliance.storage.fs import STORE_UNAVAILABLE
from tests.fakes.blobs import MemoryBlobStore
from tests.fakes.clock import FakeClock


@pytest.fixture(params=["filesystem", "memory"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(kind: str, tmp_path: Path) -> BlobStore:
    return FilesystemBlobStore(tmp_path) if kind == "filesystem" else MemoryBlobStore(FakeClock())


PutAt = Callable[[bytes, datetime], str]


@pytest.fixture
def put_at(store: BlobStore, tmp_path: Path) -> PutAt:
    """Store content as if it had been stored at `when` (each kind keeps the time its own way)."""

    def put(data: bytes, when: datetime) -> str:
        if isinstance(store, MemoryBlobStore):
            assert isinstance(store.clock, FakeClock)
            store.clock.set(when)
            name = store.put(io.BytesIO(data))
            store.clock.set(datetime.now(UTC))
            return name
        name = store.put(io.BytesIO(data))
        os.utime(tmp_path / name[:2] / name, (when.timestamp(), when.timestamp()))
        return name

    return put


@pytest.fixture
def unwritable_store(kind: str, tmp_path: Path) -> BlobStore:
    """A store that cannot take writes: a folder that is gone, or the fake set read-only."""
    if kind == "filesystem":
        return FilesystemBlobStore(tmp_path / "gone")
    fake = MemoryBlobStore()
    fake.writable = False
    return fake


class CountingSource(io.BytesIO):
    """A stream that records the size of every read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.reads.append(-1 if size is None else size)
        return super().read(size)


def test_round_trip_names_the_content_by_its_sha256(store: BlobStore) -> None:
    data = b"%PDF-1.7 contract"
    name = store.put(io.BytesIO(data))
    assert name == hashlib.sha256(data).hexdigest()
    assert store.exists(name)
    assert store.get(name) == data
    with store.open(name) as handle:
        assert handle.read() == data


def test_same_content_same_name_and_other_content_another(store: BlobStore) -> None:
    first = store.put(io.BytesIO(b"version 1"))
    assert store.put(io.BytesIO(b"version 1")) == first
    second = store.put(io.BytesIO(b"version 2"))
    assert second != first
    assert store.get(first) == b"version 1" and store.get(second) == b"version 2"


def test_empty_content_is_a_blob_too(store: BlobStore) -> None:
    name = store.put(io.BytesIO(b""))
    assert name == hashlib.sha256(b"").hexdigest()
    assert store.get(name) == b""


def test_a_large_body_is_read_in_chunks(store: BlobStore) -> None:
    big = b"%PDF-1.7 " + bytes(range(256)) * (8 << 12)  # 8 MiB and a bit
    source = CountingSource(big)
    name = store.put(source)
    assert name == hashlib.sha256(big).hexdigest()
    assert len(source.reads) > 1 and all(0 < size < len(big) for size in source.reads)
    assert store.get(name) == big


def test_a_source_that_breaks_is_the_senders_problem(store: BlobStore) -> None:
    class Broken(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() > 0:
                raise OSError("the upload connection dropped")
            return super().read(size)

    with pytest.raises(InvalidInput, match="send it again"):
        store.put(Broken(b"y" * (3 << 20)))
    assert not store.exists(hashlib.sha256(b"y" * (3 << 20)).hexdigest())
    assert not store.exists(hashlib.sha256(b"y" * (1 << 20)).hexdigest())  # nor the part read


def test_missing_blob_is_not_found(store: BlobStore) -> None:
    name = hashlib.sha256(b"never stored").hexdigest()
    assert not store.exists(name)
    with pytest.raises(NotFound):
        store.get(name)
    with pytest.raises(NotFound):
        store.open(name)


def test_delete_removes_and_tolerates_a_second_delete(store: BlobStore) -> None:
    keep = store.put(io.BytesIO(b"keep"))
    name = store.put(io.BytesIO(b"drop"))
    store.delete(name)
    assert not store.exists(name)
    with pytest.raises(NotFound):
        store.get(name)
    store.delete(name)
    assert store.get(keep) == b"keep"
    assert store.put(io.BytesIO(b"drop")) == name and store.get(name) == b"drop"


BAD_NAMES = [
    "../../etc/passwd",
    "A" * 64,  # upper case
    "abc",
    "0" * 63,
    "0" * 65,
    "g" * 64,
    "",
    "/" + "0" * 63,
    "0" * 64 + "\n",  # `$` would let a trailing newline through
]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_names_that_are_not_sha256_are_invalid_input(store: BlobStore, bad: str) -> None:
    calls: list[Callable[[str], object]] = [store.get, store.open, store.exists, store.delete]
    for call in calls:
        with pytest.raises(InvalidInput):
            call(bad)


def test_a_store_that_cannot_write_is_unavailable_and_keeps_its_details(
    unwritable_store: BlobStore, tmp_path: Path
) -> None:
    with pytest.raises(Unavailable) as caught:
        unwritable_store.check_writable()
    with pytest.raises(Unavailable) as on_put:
        unwritable_store.put(io.BytesIO(b"x"))
    for error in (caught.value, on_put.value):
        assert error.public == STORE_UNAVAILABLE
        assert str(tmp_path) not in error.public
        assert error.detail != error.public  # the operator learns what is wrong


def test_a_writable_store_says_so(store: BlobStore) -> None:
    store.check_writable()


def test_names_older_than_lists_the_blobs_stored_before_the_cutoff(store: BlobStore, put_at: PutAt) -> None:
    now = datetime.now(UTC)
    two_days = put_at(b"two days old", now - timedelta(days=2))
    two_hours = put_at(b"two hours old", now - timedelta(hours=2))
    fresh = store.put(io.BytesIO(b"just stored"))
    assert set(store.names_older_than(now - timedelta(days=3))) == set()
    assert set(store.names_older_than(now - timedelta(days=1))) == {two_days}
    assert set(store.names_older_than(now - timedelta(hours=1))) == {two_days, two_hours}
    assert sorted(store.names_older_than(now + timedelta(minutes=1))) == sorted([two_days, two_hours, fresh])


def test_storing_a_blob_again_makes_it_new_again(store: BlobStore, put_at: PutAt) -> None:
    # a write about to be referred to must get the whole grace period, even when the same
    # content was already stored (and left unreferenced) long ago
    now = datetime.now(UTC)
    name = put_at(b"the same normalised upload", now - timedelta(days=2))
    assert list(store.names_older_than(now - timedelta(hours=1))) == [name]
    assert store.put(io.BytesIO(b"the same normalised upload")) == name
    assert list(store.names_older_than(now - timedelta(hours=1))) == []
    assert store.get(name) == b"the same normalised upload"


def test_deleted_blobs_are_not_listed_and_deleting_while_listing_is_safe(
    store: BlobStore, put_at: PutAt
) -> None:
    now = datetime.now(UTC)
    names = {put_at(f"blob {i}".encode(), now - timedelta(hours=2)) for i in range(40)}
    listed = []
    for name in store.names_older_than(now):
        store.delete(name)
        listed.append(name)
    assert sorted(listed) == sorted(names)  # each exactly once
    assert list(store.names_older_than(now + timedelta(minutes=1))) == []
    assert not any(store.exists(name) for name in names)


def test_a_cutoff_without_timezone_is_invalid_input(store: BlobStore) -> None:
    store.put(io.BytesIO(b"x"))
    with pytest.raises(InvalidInput, match="timezone"):
        store.names_older_than(datetime.now())  # naive: no timezone


def test_the_file_store_lists_only_blobs(tmp_path: Path) -> None:
    """Temp files of writes under way or cut off, and whatever else lies in the folder, are not blobs."""
    store = FilesystemBlobStore(tmp_path)
    name = store.put(io.BytesIO(b"a blob"))
    folder = tmp_path / name[:2]
    (tmp_path / ".tmp-abc.part").write_bytes(b"half a blob")
    (folder / ".tmp-def.part").write_bytes(b"half a blob")
    (folder / (name[:-1] + "X")).write_bytes(b"not a sha256 name")
    (folder / (name[:2] + "0" * 62)).mkdir()  # a folder with a blob's name
    wrong = tmp_path / ("ff" if name[:2] != "ff" else "00")
    wrong.mkdir()
    (wrong / name).write_bytes(b"a blob's name in the wrong folder")
    (tmp_path / "zz").mkdir()
    (tmp_path / "zz" / hashlib.sha256(b"elsewhere").hexdigest()).write_bytes(b"not in a blob folder")
    (tmp_path / "README").write_text("not a blob")
    assert list(store.names_older_than(datetime.now(UTC) + timedelta(minutes=1))) == [name]
