"""The blob store interface: blobs are named by the sha256 of their content."""

from collections.abc import Iterator
from datetime import datetime
from typing import BinaryIO, Protocol


class BlobStore(Protocol):
    def put(self, stream: BinaryIO) -> str:
        """Read `stream` to its end and store it durably (on disk before returning), never
        holding it whole in memory; returns the sha256 hex name. Storing content that is
        already there makes it new again for `names_older_than`."""
        ...

    def open(self, sha256: str) -> BinaryIO:
        """The stored content for reading; raises NotFound when it is not there."""
        ...

    def get(self, sha256: str) -> bytes: ...

    def exists(self, sha256: str) -> bool: ...

    def delete(self, sha256: str) -> None: ...

    def names_older_than(self, cutoff: datetime) -> Iterator[str]:
        """The names of the blobs last stored before `cutoff` (timezone-aware; InvalidInput
        otherwise), one at a time and in no particular order, without listing the whole
        store first. Deleting blobs while iterating is safe."""
        ...

    def check_writable(self) -> None:
        """Raise Unavailable when the store cannot accept writes."""
        ...
