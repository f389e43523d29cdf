"""What the API and the pages share for a contract's files: ids in paths, uploads (the body
limit, the file's sha256) and downloads whose names are safe in a header."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from contextlib import AbstractContextManager, ExitStack
from typing import BinaryIO
from urllib.parse import quote

from flask import request
from werkzeug.wrappers import Response as BaseResponse
from werkzeug.wsgi import ClosingIterator, FileWrapper

from appliance.web.context import current_services
from appliance.workflow.queries import MAX_ID, DocumentFile

ID = f"int(min=1, max={MAX_ID})"
"""URL converter of ids in paths: anything else (0, -1, 2**31, "abc") matches no route, so 404."""
FALLBACK_FILENAME = "contract.pdf"
DOWNLOAD_CHUNK = 256 * 1024
FORM_MARGIN = 64 * 1024
"""Room for an upload form's text parts and multipart framing on top of uploads.max_bytes."""
HASH_CHUNK = 1024 * 1024


def allow_upload_body() -> None:
    """Let this request's body be as large as an upload may be, plus the form around it.

    Set before anything reads the body: werkzeug enforces the limit while reading (413 beyond).
    """
    request.max_content_length = current_services().config.uploads.max_bytes + FORM_MARGIN


def upload_sha256(upload: BinaryIO) -> str:
    """The sha256 of an uploaded file (for idempotency keys); the stream is left at its start."""
    digest = hashlib.sha256()
    while chunk := upload.read(HASH_CHUNK):
        digest.update(chunk)
    upload.seek(0)
    return digest.hexdigest()


def file_download(opened: AbstractContextManager[DocumentFile], media_type: str) -> BaseResponse:
    """Stream the document `opened` yields, closing it when the server closes the response
    (read to the end or not).

    A plain werkzeug Response on purpose: spectree reads the whole body of a Flask Response
    to validate it, which would hold the file in memory.
    """
    with ExitStack() as stack:
        document = stack.enter_context(opened)
        headers = {
            "Content-Disposition": attachment_disposition(document.filename),
            "X-Content-Type-Options": "nosniff",
        }
        body = ClosingIterator(FileWrapper(document.stream, DOWNLOAD_CHUNK), stack.pop_all().close)
    response = BaseResponse(body, mimetype=media_type, headers=headers, direct_passthrough=True)
    response.content_length = document.size
    response.set_etag(document.sha256)
    return response


def attachment_disposition(filename: str) -> str:
    """Content-Disposition for a download named `filename` (RFC 6266).

    The name is cut to its printable characters without path or quoting characters; a name
    that is not plain ASCII goes in filename* (RFC 8187) with an ASCII fallback in filename.
    """
    name = "".join(c for c in filename if c.isprintable() and c not in '\\/"<>:|?*;%').strip(" .")
    name = name or FALLBACK_FILENAME
    fallback = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    fallback = re.sub(r"[^A-Za-z0-9 ._()+-]+", "_", fallback)
    if not re.search(r"[A-Za-z0-9]", fallback.rsplit(".", 1)[0]):
        fallback = FALLBACK_FILENAME  # nothing of the name is left in ASCII but its extension
    fallback = fallback.strip(" ._")
    if fallback == name:
        return f'attachment; filename="{name}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
