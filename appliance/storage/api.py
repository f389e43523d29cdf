"""The blob store interface: blobs are named by the sha256 of their content."""

from typing import Protocol


class BlobStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store durably (on disk before returning); returns the sha256 hex name."""
        ...

    def get(self, sha256: str) -> bytes: ...

    def exists(self, sha256: str) -> bool: ...

    def delete(self, sha256: str) -> None: ...

    def check_writable(self) -> None:
        """Raise Unavailable when the store cannot accept writes."""
        ...
