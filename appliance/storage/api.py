"""The blob store interface: blobs are named by the sha256 of their content."""

from typing import BinaryIO, Protocol


class BlobStore(Protocol):
    def put(self, stream: BinaryIO) -> str:
        """Read `stream` to its end and store it durably (on disk before returning), never
        holding it whole in memory; returns the sha256 hex name."""
        ...

    def open(self, sha256: str) -> BinaryIO:
        """The stored content for reading; raises NotFound when it is not there."""
        ...

    def get(self, sha256: str) -> bytes: ...

    def exists(self, sha256: str) -> bool: ...

    def delete(self, sha256: str) -> None: ...

    def check_writable(self) -> None:
        """Raise Unavailable when the store cannot accept writes."""
        ...
