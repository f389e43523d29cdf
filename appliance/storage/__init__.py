"""Content-addressed blob store behind a narrow interface."""

from appliance.storage.api import BlobStore
from appliance.storage.atomic import atomic_output, pending_file
from appliance.storage.fs import FilesystemBlobStore

__all__ = ["BlobStore", "FilesystemBlobStore", "atomic_output", "pending_file"]
