"""The upload normaliser (security plan P11-P14): every file is rewritten in a bounded
subprocess; active content is stripped and said so, signed and encrypted files are refused,
and hostile files cost the subprocess, never the caller."""

from __future__ import annotations

import hashlib
import io
import re
import resource
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from pikepdf import Array, Dictionary, Name, Stream, String
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader

from appliance.config import UploadConfig
from appliance.errors import InvalidInput, Unavailable
from appliance.signing.normalise import (
    NormalisedUpload,
    RemovedFeature,
    UploadProblem,
    UploadRejected,
    normalise_upload,
)
from tests.fixtures.pdfs import make_pdf
from tests.signing.conftest import self_signed, software_signed

LIMITS = UploadConfig(max_bytes=16 * 1024 * 1024, max_pages=20, parser_memory_mb=256, parser_seconds=5)
HIDDEN_TEXT = b"Amount: 9,999,999"
ACTIVE_MARKERS = frozenset(
    {"/AA", "/JS", "/EF", "/OpenAction", "/XFA", "/NeedsRendering", "/EmbeddedFiles", "/JavaScript"}
)


@pytest.fixture(autouse=True)
def private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The normaliser's temp files go here; none may be left behind, whatever the outcome."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    yield scratch
    assert list(scratch.iterdir()) == []


def _normalise(data: bytes, limits: UploadConfig = LIMITS) -> tuple[NormalisedUpload, bytes]:
    output = io.BytesIO()
    facts = normalise_upload(io.BytesIO(data), output, limits)
    assert output.tell() == 0
    return facts, output.getvalue()


def _refused(data: bytes, limits: UploadConfig = LIMITS) -> UploadRejected:
    output = io.BytesIO(b"")
    with pytest.raises(UploadRejected) as refused:
        normalise_upload(io.BytesIO(data), output, limits)
    assert output.getvalue() == b"", "nothing is written for a refused upload"
    assert refused.value.code == refused.value.problem.value
    assert isinstance(refused.value, InvalidInput)
    return refused.value


def _clean(pages: int = 1) -> bytes:
    # every object referenced (the image is on page 1), so a clean file loses nothing
    return make_pdf(pages=pages, payload_bytes=2000, seed=5)


def _edited(change: Callable[[pikepdf.Pdf], None], pages: int = 1) -> bytes:
    with pikepdf.open(io.BytesIO(_clean(pages))) as pdf:
        change(pdf)
        out = io.BytesIO()
        pdf.save(out)
    return out.getvalue()


def _objects(pdf: pikepdf.Pdf) -> Iterator[pikepdf.Object]:
    """Every dictionary, stream and array in the file, direct ones included."""
    seen: set[tuple[int, int]] = set()
    pending: list[pikepdf.Object] = [pdf.trailer, *pdf.objects]
    while pending:
        node = pending.pop()
        if node.is_indirect:
            if node.objgen in seen:
                continue
            seen.add(node.objgen)
        if isinstance(node, Array):
            pending.extend(item for item in node if isinstance(item, Dictionary | Stream | Array))
        elif isinstance(node, Dictionary | Stream):
            pending.extend(v for _k, v in node.items() if isinstance(v, Dictionary | Stream | Array))
        else:
            continue
        yield node


def _active_content(data: bytes) -> set[str]:
    """The active-content keys, action kinds and media annotations anywhere in the file."""
    found: set[str] = set()
    with pikepdf.open(io.BytesIO(data)) as pdf:
        for node in _objects(pdf):
            if isinstance(node, Array):
                continue
            found |= set(node.keys()) & ACTIVE_MARKERS
            if node.get("/S") in (Name.JavaScript, Name.Launch, Name.SubmitForm):
                found.add(f"/S {node.get('/S')}")
            if node.get("/Subtype") in (Name.FileAttachment, Name.RichMedia):
                found.add(f"/Subtype {node.get('/Subtype')}")
            if node.get("/S") == Name.URI and not str(node.get("/URI")).startswith("https:"):
                found.add("/URI non-web")
    return found


def _qpdf_check(data: bytes) -> list[str]:
    """qpdf --check (pikepdf's step-by-step port of QPDFJob::doCheck over the same libqpdf)."""
    with pikepdf.open(io.BytesIO(data)) as pdf:
        return pdf.check_pdf_syntax()


def _js(script: str = "app.alert('hello')") -> Dictionary:
    return Dictionary(S=Name.JavaScript, JS=String(script))


def _annotate(pdf: pikepdf.Pdf, **entries: Any) -> Dictionary:
    page = pdf.pages[0].obj
    annotation = pdf.make_indirect(Dictionary(Type=Name.Annot, Rect=[72, 72, 300, 100], P=page, **entries))
    page.Annots = Array([*page.get("/Annots", Array()), annotation])
    return annotation


def _link(action: Dictionary) -> Callable[[pikepdf.Pdf], None]:
    def add(pdf: pikepdf.Pdf) -> None:
        _annotate(pdf, Subtype=Name.Link, A=action)

    return add


def _names(pdf: pikepdf.Pdf, tree: str, key: str, value: pikepdf.Object) -> None:
    pdf.Root.Names = Dictionary({tree: Dictionary(Names=Array([String(key), pdf.make_indirect(value)]))})


def _page_actions(pdf: pikepdf.Pdf) -> None:
    pdf.pages[0].obj.AA = Dictionary(O=_js())


def _field_keystroke(pdf: pikepdf.Pdf) -> None:
    field = _annotate(pdf, Subtype=Name.Widget, FT=Name.Tx, T=String("amount"), AA=Dictionary(K=_js()))
    pdf.Root.AcroForm = pdf.make_indirect(Dictionary(Fields=Array([field])))


def _outline_script(pdf: pikepdf.Pdf) -> None:
    outlines = pdf.make_indirect(Dictionary(Type=Name.Outlines, Count=1))
    item = pdf.make_indirect(Dictionary(Title=String("Terms"), Parent=outlines, A=_js()))
    outlines.First = outlines.Last = item
    pdf.Root.Outlines = outlines


def _attachment(pdf: pikepdf.Pdf) -> None:
    pdf.attachments["terms.txt"] = pikepdf.AttachedFileSpec(pdf, b"the real terms", mime_type="text/plain")


def _file_attachment_annotation(pdf: pikepdf.Pdf) -> None:
    spec = pikepdf.AttachedFileSpec(pdf, b"payload", filename="invoice.exe")
    _annotate(pdf, Subtype=Name.FileAttachment, FS=spec.obj)


def _associated_file(pdf: pikepdf.Pdf) -> None:
    pdf.Root.AF = Array([pikepdf.AttachedFileSpec(pdf, b"payload", filename="data.xml").obj])


def _xfa(pdf: pikepdf.Pdf) -> None:
    xfa = pdf.make_stream(b"<xdp:xdp xmlns:xdp='http://ns.adobe.com/xdp/'/>")
    pdf.Root.AcroForm = pdf.make_indirect(Dictionary(Fields=Array(), XFA=xfa))
    pdf.Root.NeedsRendering = True


def _rich_media(pdf: pikepdf.Pdf) -> None:
    content = Dictionary(Assets=Dictionary(Names=Array([String("movie.swf"), pdf.make_stream(b"FWS")])))
    _annotate(pdf, Subtype=Name.RichMedia, RichMediaContent=content)


DANGEROUS: dict[str, tuple[Callable[[pikepdf.Pdf], None], set[RemovedFeature], str]] = {
    # case: (how to add it, what the normaliser reports, a marker the input has)
    "open action script": (
        lambda pdf: setattr(pdf.Root, "OpenAction", _js()),
        {RemovedFeature.OPEN_ACTION},
        "/OpenAction",
    ),
    "document script": (
        lambda pdf: _names(pdf, "/JavaScript", "init", _js()),
        {RemovedFeature.JAVASCRIPT},
        "/JavaScript",
    ),
    "document close script": (
        lambda pdf: setattr(pdf.Root, "AA", Dictionary(WC=_js())),
        {RemovedFeature.ADDITIONAL_ACTIONS},
        "/AA",
    ),
    "page open script": (_page_actions, {RemovedFeature.ADDITIONAL_ACTIONS}, "/AA"),
    "field keystroke script": (_field_keystroke, {RemovedFeature.ADDITIONAL_ACTIONS}, "/AA"),
    "link script": (_link(_js()), {RemovedFeature.JAVASCRIPT}, "/JS"),
    "script chained after a web link": (
        _link(Dictionary(S=Name.URI, URI=String("https://example.com/terms"), Next=Array([_js()]))),
        {RemovedFeature.JAVASCRIPT},
        "/JS",
    ),
    "javascript: link": (
        _link(Dictionary(S=Name.URI, URI=String(" JavaScript:alert(1)"))),
        {RemovedFeature.OTHER_ACTIONS},
        "/URI non-web",
    ),
    "launch": (
        _link(Dictionary(S=Name.Launch, F=String("cmd.exe"))),
        {RemovedFeature.LAUNCH},
        "/S /Launch",
    ),
    "form submission": (
        _link(Dictionary(S=Name.SubmitForm, F=String("https://collector.example/"))),
        {RemovedFeature.OTHER_ACTIONS},
        "/S /SubmitForm",
    ),
    "outline script": (_outline_script, {RemovedFeature.JAVASCRIPT}, "/JS"),
    "embedded file": (_attachment, {RemovedFeature.EMBEDDED_FILES}, "/EmbeddedFiles"),
    "file attachment annotation": (
        _file_attachment_annotation,
        {RemovedFeature.FILE_ATTACHMENTS},
        "/Subtype /FileAttachment",
    ),
    "associated file": (_associated_file, {RemovedFeature.EMBEDDED_FILES}, "/EF"),
    "xfa": (_xfa, {RemovedFeature.XFA}, "/XFA"),
    "rich media": (_rich_media, {RemovedFeature.RICH_MEDIA}, "/Subtype /RichMedia"),
}


def test_a_clean_pdf_is_rewritten_with_its_facts() -> None:
    original = _clean(pages=2)

    facts, normalised = _normalise(original)

    assert facts.sha256 == hashlib.sha256(normalised).hexdigest()
    assert facts.size == len(normalised)
    assert facts.page_count == 2
    assert facts.page_sizes == ((595.0, 842.0), (595.0, 842.0))
    assert facts.removed == ()
    assert _active_content(normalised) == set()
    assert _qpdf_check(normalised) == []
    with pikepdf.open(io.BytesIO(normalised)) as pdf:
        text = pdf.pages[0].Contents.read_bytes()
        assert b"Contract for testing" in text
        assert not pdf.is_encrypted
    assert PdfFileReader(io.BytesIO(normalised)).xrefs.total_revisions == 1


def test_the_same_upload_gives_the_same_bytes() -> None:
    first, once = _normalise(_clean())
    again, twice = _normalise(_clean())

    assert twice == once
    assert again == first


def test_the_normalised_file_can_be_signed() -> None:
    _facts, normalised = _normalise(_clean())
    cert, key = self_signed()

    signed = software_signed(normalised, cert, key)

    assert signed.startswith(normalised)
    assert len(PdfFileReader(io.BytesIO(signed)).embedded_signatures) == 1


@pytest.mark.parametrize("case", DANGEROUS.keys())
def test_dangerous_features_are_stripped(case: str) -> None:
    add, expected, marker = DANGEROUS[case]
    original = _edited(add)
    assert marker in _active_content(original), "the test input carries the feature"

    facts, normalised = _normalise(original)

    assert set(facts.removed) == expected
    assert _active_content(normalised) == set()
    assert _qpdf_check(normalised) == []
    assert facts.page_count == 1


def test_a_stripped_link_keeps_its_place_and_its_web_address() -> None:
    original = _edited(DANGEROUS["script chained after a web link"][0])

    _facts, normalised = _normalise(original)

    with pikepdf.open(io.BytesIO(normalised)) as pdf:
        (link,) = pdf.pages[0].Annots
        assert link.Subtype == Name.Link
        assert [float(v) for v in link.Rect] == [72, 72, 300, 100]
        assert link.A.S == Name.URI and str(link.A.URI) == "https://example.com/terms"
        assert "/Next" not in link.A


def test_all_features_at_once_are_reported_once_each() -> None:
    def everything(pdf: pikepdf.Pdf) -> None:
        for case in ("open action script", "document script", "page open script", "launch", "rich media"):
            DANGEROUS[case][0](pdf)
        _file_attachment_annotation(pdf)
        _associated_file(pdf)

    facts, normalised = _normalise(_edited(everything))

    assert facts.removed == tuple(
        sorted(
            {
                RemovedFeature.OPEN_ACTION,
                RemovedFeature.JAVASCRIPT,
                RemovedFeature.ADDITIONAL_ACTIONS,
                RemovedFeature.LAUNCH,
                RemovedFeature.RICH_MEDIA,
                RemovedFeature.FILE_ATTACHMENTS,
                RemovedFeature.EMBEDDED_FILES,
            }
        )
    )
    assert _active_content(normalised) == set()
    with pikepdf.open(io.BytesIO(normalised)) as pdf:
        assert [annotation.Subtype for annotation in pdf.pages[0].Annots] == [Name.Link]


def _with_unreferenced_overlay(pdf: bytes) -> bytes:
    """A shadow attack's preparation: an incremental update adds content no page uses yet."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    overlay = f"BT /F1 18 Tf 72 700 Td ({HIDDEN_TEXT.decode()}) Tj ET".encode()
    writer.add_object(generic.StreamObject(stream_data=overlay))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_unreferenced_objects_and_earlier_revisions_are_dropped() -> None:
    shadowed = _with_unreferenced_overlay(_clean())
    assert PdfFileReader(io.BytesIO(shadowed)).xrefs.total_revisions == 2

    facts, normalised = _normalise(shadowed)

    assert facts.removed == (RemovedFeature.UNREFERENCED_OBJECTS,)
    with pikepdf.open(io.BytesIO(shadowed)) as before, pikepdf.open(io.BytesIO(normalised)) as after:
        assert len(after.objects) < len(before.objects)
        streams = [obj.read_bytes() for obj in after.objects if isinstance(obj, Stream)]
    assert not any(HIDDEN_TEXT in data for data in streams)
    assert PdfFileReader(io.BytesIO(normalised)).xrefs.total_revisions == 1
    assert _qpdf_check(normalised) == []


@pytest.mark.parametrize(
    "encryption",
    [
        pikepdf.Encryption(owner="owner", user="", R=3, aes=False, metadata=False),  # RC4 128
        pikepdf.Encryption(owner="owner", user="", R=4, aes=False, metadata=False),  # RC4 128, crypt filters
        pikepdf.Encryption(owner="owner", user="", R=4, aes=True),  # AES 128
        pikepdf.Encryption(owner="owner", user="", R=6),  # AES 256
        pikepdf.Encryption(owner="owner", user="secret", R=6),
    ],
    ids=["rc4", "rc4-crypt-filter", "aes128", "aes256", "aes256-password"],
)
def test_encrypted_pdfs_are_refused(encryption: pikepdf.Encryption) -> None:
    with pikepdf.open(io.BytesIO(_clean())) as pdf:
        out = io.BytesIO()
        pdf.save(out, encryption=encryption)

    refused = _refused(out.getvalue())

    assert refused.problem is UploadProblem.ENCRYPTED
    assert "save an unprotected copy" in refused.public


def _empty_signature_field(pdf: pikepdf.Pdf) -> None:
    field = _annotate(pdf, Subtype=Name.Widget, FT=Name.Sig, T=String("Signature1"))
    pdf.Root.AcroForm = pdf.make_indirect(Dictionary(Fields=Array([field])))


@pytest.mark.parametrize("kind", ["signed", "certified", "empty signature field", "signature flags"])
def test_signed_pdfs_are_refused(kind: str) -> None:
    if kind == "empty signature field":
        data = _edited(_empty_signature_field)
    elif kind == "signature flags":
        data = _edited(lambda pdf: setattr(pdf.Root, "AcroForm", Dictionary(Fields=Array(), SigFlags=3)))
    else:
        cert, key = self_signed()
        data = software_signed(_clean(), cert, key, certify=kind == "certified")

    refused = _refused(data)

    assert refused.problem is UploadProblem.ALREADY_SIGNED
    assert "unsigned original" in refused.public


def test_page_limit() -> None:
    limits = UploadConfig(max_bytes=LIMITS.max_bytes, max_pages=3, parser_memory_mb=256, parser_seconds=5)

    assert _normalise(_clean(pages=3), limits)[0].page_count == 3
    refused = _refused(_clean(pages=4), limits)

    assert refused.problem is UploadProblem.TOO_MANY_PAGES
    assert "more than 3 pages" in refused.public


def test_a_page_count_that_lies_is_not_believed() -> None:
    # 30 pages in the tree, /Count says 10: qpdf counts the tree
    lying = make_pdf(pages=30).replace(b"/Count 30", b"/Count 10")
    limits = UploadConfig(max_bytes=LIMITS.max_bytes, max_pages=20, parser_memory_mb=256, parser_seconds=5)

    assert _refused(lying, limits).problem is UploadProblem.TOO_MANY_PAGES


def test_too_large_is_refused_without_reading_past_the_limit() -> None:
    limits = UploadConfig(max_bytes=64 * 1024, max_pages=20, parser_memory_mb=256, parser_seconds=5)
    source = io.BytesIO(make_pdf(payload_bytes=200_000))
    output = io.BytesIO()

    with pytest.raises(UploadRejected) as refused:
        normalise_upload(source, output, limits)

    assert refused.value.problem is UploadProblem.TOO_LARGE
    assert "larger than 0.0625 MB" in refused.value.public
    assert source.tell() == limits.max_bytes + 1
    assert output.getvalue() == b""


def _zip_appended(pdf: bytes) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("payload.html", "<script>alert(1)</script>")
    return pdf + archive.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"PK\x03\x04 not a pdf at all",
        b"\x00" * 1100 + _clean(),
        b"<html>" + _clean(),
        _zip_appended(_clean()),
    ],
    ids=["empty", "zip", "header-after-1kib", "header-not-first", "pdf-zip-polyglot"],
)
def test_what_is_not_only_a_pdf_is_refused(data: bytes) -> None:
    refused = _refused(data)

    assert refused.problem is UploadProblem.NOT_PDF


def _inflating_to_zeros(size: int) -> bytes:
    """A zlib stream of `size` zero bytes, built from one compressed MiB repeated (about 1000:1)."""
    chunk = bytes(1024 * 1024)
    compressor = zlib.compressobj(9)
    first = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    # after a full flush the compressor starts afresh: every further MiB compresses the same
    repeated = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.flush(zlib.Z_FINISH)[:-4]
    adler32 = ((size % 65521) << 16) | 1  # of `size` zero bytes
    return first + repeated * (size // len(chunk) - 1) + end + adler32.to_bytes(4, "big")


def test_a_decompression_bomb_costs_the_subprocess_not_the_caller() -> None:
    bomb_stream = _inflating_to_zeros(4 * 1024**3)
    assert zlib.decompressobj().decompress(bomb_stream, 1 << 20) == bytes(1 << 20)

    def contents_bomb(pdf: pikepdf.Pdf) -> None:
        stream = pdf.make_stream(b"")
        stream.write(bomb_stream, filter=Name.FlateDecode)
        pdf.pages[0].obj.Contents = pdf.make_indirect(stream)

    bomb = _edited(contents_bomb)
    assert len(bomb) < 8 * 1024 * 1024
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    refused = _refused(bomb)

    assert refused.problem is UploadProblem.TOO_COMPLEX
    assert "more memory or time" in refused.public
    growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert growth_kib < 8 * 1024


def test_a_file_that_takes_too_long_to_parse_is_stopped() -> None:
    # millions of content operators: little memory, seconds of CPU to parse
    def busy_page(pdf: pikepdf.Pdf) -> None:
        pdf.pages[0].obj.Contents = pdf.make_indirect(pdf.make_stream(b"0 0 m\n" * (8 * 1024 * 1024)))

    limits = UploadConfig(max_bytes=LIMITS.max_bytes, max_pages=20, parser_memory_mb=512, parser_seconds=2)

    assert _refused(_edited(busy_page), limits).problem is UploadProblem.TOO_COMPLEX


def _updated(pdf: bytes, number: int, body: bytes) -> bytes:
    """`pdf` (one of make_pdf's files) with object `number` replaced by an incremental update."""
    previous = int(re.findall(rb"startxref\n(\d+)", pdf)[-1])
    size = int(re.findall(rb"/Size (\d+)", pdf)[-1])
    update = f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref_at = len(pdf) + len(update)
    trailer = (
        f"xref\n{number} 1\n{len(pdf):010d} 00000 n \n"
        f"trailer\n<< /Size {size} /Root 1 0 R /Prev {previous} >>\nstartxref\n{xref_at}\n%%EOF\n"
    )
    return pdf + update + trailer.encode()


def test_deep_nesting_is_refused_cleanly() -> None:
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> "
        b"/Contents 4 0 R /Deep " + b"[" * 100_000 + b"]" * 100_000 + b" >>"
    )
    deep = _updated(make_pdf(), 6, page)  # object 6 is the first page

    refused = _refused(deep)

    assert refused.problem is UploadProblem.TOO_COMPLEX


def test_a_damaged_file_is_unreadable() -> None:
    assert _refused(b"%PDF-1.7\n" + b"\x00garbage" * 100).problem is UploadProblem.UNREADABLE


def test_the_caller_never_loads_a_pdf_parser() -> None:
    # the web worker imports this module; qpdf and pyHanko run only in the bounded subprocess
    probe = (
        "import sys, appliance.signing.normalise; "
        "loaded = {'pikepdf', 'pyhanko'} & {name.split('.')[0] for name in sys.modules}; "
        "print(sorted(loaded)); sys.exit(bool(loaded))"
    )
    result = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr


def test_without_prlimit_uploads_are_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")

    with pytest.raises(Unavailable) as unavailable:
        normalise_upload(io.BytesIO(_clean()), io.BytesIO(), LIMITS)

    assert "util-linux" in unavailable.value.detail
