"""Checks a PDF before anything is signed: each refusal names the problem and what to do.

The reader is pyHanko's strict reader with its decode limits, the same parser that the
signer uses afterwards, so a file that passes here is a file pyHanko can update.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import BinaryIO

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature

from appliance.signing.errors import PdfRejected, RejectReason

DEFAULT_MAX_PAGES = 2000
"""Contracts longer than this are refused; the caller may pass its own limit."""

PDF_MAGIC = b"%PDF-"
MAGIC_WINDOW = 1024
"""Readers accept the header anywhere in the first KiB; we do the same and no more."""


@dataclass(frozen=True)
class PdfFacts:
    """What preflight learned about an acceptable PDF."""

    size: int
    sha256: str
    page_count: int
    signature_count: int
    revisions: int
    """Number of xref sections: 1 for a file never updated incrementally."""
    certified: bool
    """An author (certification) signature is present."""


def open_strict_reader(stream: BinaryIO) -> PdfFileReader:
    """pyHanko's strict reader over `stream`, with parse failures turned into PdfRejected."""
    _check_magic(stream)
    try:
        reader = PdfFileReader(stream, strict=True)
    except (PdfError, ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:
        raise PdfRejected(
            RejectReason.MALFORMED,
            "the PDF is damaged (its cross-reference table or trailer cannot be read); "
            "re-save it from the original application or print it to a new PDF",
        ) from exc
    return reader


def preflight_pdf(stream: BinaryIO, *, max_pages: int = DEFAULT_MAX_PAGES) -> PdfFacts:
    """Refuse what cannot or must not be signed; return the facts of an acceptable file.

    :raises PdfRejected: empty, not a PDF, encrypted, damaged, or too many pages.
    """
    size = _stream_size(stream)
    if size == 0:
        raise PdfRejected(RejectReason.EMPTY, "the file is empty (0 bytes); upload the PDF again")
    reader = open_strict_reader(stream)
    return inspect_pdf(reader, size=size, sha256=_sha256(stream), max_pages=max_pages)


def inspect_pdf(reader: PdfFileReader, *, size: int, sha256: str, max_pages: int) -> PdfFacts:
    """The preflight checks on an already opened strict reader (so a signer parses the file once).

    `size` and `sha256` describe the bytes the reader reads; the caller computed them.
    :raises PdfRejected: encrypted, damaged, or too many pages.
    """
    if reader.encrypted:
        raise PdfRejected(
            RejectReason.ENCRYPTED,
            "the PDF is encrypted or password-protected; remove the protection and upload it again",
        )
    try:
        page_count = _page_count(reader)
        signatures = list(reader.embedded_signatures)
        revisions = reader.xrefs.total_revisions
        certified = any(sig.sig_object_type == "/Sig" and _is_certification(sig) for sig in signatures)
    except PdfRejected:
        raise
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError) as exc:
        raise PdfRejected(
            RejectReason.MALFORMED,
            "the PDF is damaged (its page tree or form fields cannot be read); "
            "re-save it from the original application",
        ) from exc
    if page_count > max_pages:
        raise PdfRejected(
            RejectReason.TOO_MANY_PAGES,
            f"the PDF has {page_count} pages; at most {max_pages} can be signed, split the document",
        )
    return PdfFacts(
        size=size,
        sha256=sha256,
        page_count=page_count,
        signature_count=len(signatures),
        revisions=revisions,
        certified=certified,
    )


def _check_magic(stream: BinaryIO) -> None:
    stream.seek(0)
    head = stream.read(MAGIC_WINDOW)
    stream.seek(0)
    if not head:
        raise PdfRejected(RejectReason.EMPTY, "the file is empty (0 bytes); upload the PDF again")
    if PDF_MAGIC not in head:
        raise PdfRejected(RejectReason.NOT_PDF, "the file is not a PDF (no %PDF- header); upload a PDF file")


def _page_count(reader: PdfFileReader) -> int:
    pages = reader.root["/Pages"]
    count = pages.get("/Count")
    if not isinstance(count, generic.NumberObject) or int(count) < 1:
        raise PdfRejected(RejectReason.MALFORMED, "the PDF has no pages or a damaged page tree")
    return int(count)


def _is_certification(sig: EmbeddedPdfSignature) -> bool:
    references = sig.sig_object.get("/Reference", ())
    return any(ref.get_object().get("/TransformMethod") == "/DocMDP" for ref in references)


def _stream_size(stream: BinaryIO) -> int:
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    return size


def _sha256(stream: BinaryIO) -> str:
    stream.seek(0)
    digest = hashlib.file_digest(stream, "sha256")  # type: ignore[arg-type]
    stream.seek(0)
    return digest.hexdigest()
