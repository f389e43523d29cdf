"""Checks a PDF before anything is signed: each refusal names the problem and what to do.

The reader is pyHanko's strict reader with its decode limits, the same parser that the
signer uses afterwards, so a file that passes here is a file pyHanko can update.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature

from appliance.signing import hexstrings
from appliance.signing.errors import PdfRejected, RejectReason

DEFAULT_MAX_PAGES = 2000
"""Contracts longer than this are refused; the caller may pass its own limit."""

MAX_PAGE_TREE_DEPTH = 64
"""Page trees are a few levels deep; a deeper one is damaged or built to exhaust the parser."""
_DAMAGED_PAGE_TREE = "the PDF's page tree is damaged; re-save it from the original application"

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
    hexstrings.install()
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
        page_count = _page_count(reader, max_pages)
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


def iter_pages(reader: PdfFileReader) -> Iterator[tuple[generic.PdfObject, generic.DictionaryObject]]:
    """The page tree's leaves in page order, as (reference or direct object, page dictionary).

    :raises PdfRejected: a cycle, an absurd depth, or a node that is not a page tree node.
    """
    seen: set[tuple[int, int]] = set()
    pending: list[tuple[generic.PdfObject, int]] = [(reader.root.raw_get("/Pages"), 0)]
    while pending:
        node_ref, depth = pending.pop()
        if isinstance(node_ref, generic.IndirectObject):
            # only an indirect reference can close a cycle
            reference = (node_ref.idnum, node_ref.generation)
            if reference in seen:
                raise PdfRejected(RejectReason.MALFORMED, _DAMAGED_PAGE_TREE)
            seen.add(reference)
        node = node_ref.get_object()
        if not isinstance(node, generic.DictionaryObject) or depth > MAX_PAGE_TREE_DEPTH:
            raise PdfRejected(RejectReason.MALFORMED, _DAMAGED_PAGE_TREE)
        kids = node.get("/Kids")
        kind = node.get("/Type")
        if kind == "/Pages" and kids is None:
            raise PdfRejected(RejectReason.MALFORMED, _DAMAGED_PAGE_TREE)
        if kind == "/Page" or kids is None:
            yield node_ref, node
            continue
        if not isinstance(kids, generic.ArrayObject):
            raise PdfRejected(RejectReason.MALFORMED, _DAMAGED_PAGE_TREE)
        pending.extend((kids.raw_get(index), depth + 1) for index in reversed(range(len(kids))))


def inherited_attribute(page: generic.DictionaryObject, key: str) -> generic.PdfObject | None:
    """A page attribute that may sit on an ancestor (MediaBox, CropBox, Rotate, Resources).

    The walk up /Parent is bounded like the walk down, so a /Parent cycle cannot hang it.
    """
    node: generic.PdfObject | None = page
    for _level in range(MAX_PAGE_TREE_DEPTH + 1):
        if not isinstance(node, generic.DictionaryObject):
            return None
        if key in node:
            return node[key]
        node = node.get("/Parent")
    return None


def _page_count(reader: PdfFileReader, max_pages: int) -> int:
    """The pages actually in the page tree, refusing more than `max_pages` while counting.

    The declared /Count is not trusted: a file may claim 1 page and hold a million, or
    claim more than it holds (pyHanko finds a stamp's page by /Count, so a wrong count puts
    the stamp on another page). The walk stops as soon as the limit is passed, and the
    result must equal the declared count.
    """
    declared = reader.root["/Pages"].get("/Count")
    if not isinstance(declared, generic.NumberObject) or int(declared) < 1:
        raise PdfRejected(RejectReason.MALFORMED, "the PDF has no pages or a damaged page tree")
    counted = 0
    for _page in iter_pages(reader):
        counted += 1
        if counted > max_pages:
            raise PdfRejected(
                RejectReason.TOO_MANY_PAGES,
                f"the PDF has more than {max_pages} pages; at most {max_pages} can be signed, "
                "split the document",
            )
    if counted != int(declared):
        raise PdfRejected(
            RejectReason.MALFORMED,
            f"the PDF's page tree declares {int(declared)} pages but holds {counted}; "
            "re-save it from the original application",
        )
    return counted


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
