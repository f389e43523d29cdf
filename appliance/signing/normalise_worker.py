"""The upload normaliser's sandboxed half.

`python -m appliance.signing.normalise_worker UPLOAD OUT MAX_PAGES`, started only by
`appliance.signing.normalise`, under prlimit, in a private directory. It reads UPLOAD
(hostile), writes the rewritten PDF to OUT and prints one JSON object on stdout: the
facts of the result, or `{"problem": ..., "detail": ...}`. A crash or a kill at the
limits is the caller's to interpret.

The rewrite is qpdf's (through pikepdf): everything reachable from the trailer is written
again as one revision with a classic cross-reference table, so unreferenced objects and
earlier revisions are gone. Before that, a walk over every reachable object removes
active content by an allow-list of actions. pikepdf's own `sanitize` helpers keep
event actions and media annotations and do not say what they removed; the evidence needs
that list.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pikepdf
from pikepdf import Array, Dictionary, Name, Stream

from appliance.foreign_warnings import silence_foreign_deprecations
from appliance.signing.normalise import RemovedFeature, UploadProblem

Container = Dictionary | Stream | Array

SAFE_ACTIONS = frozenset({"/GoTo", "/Thread"})
SAFE_URI_SCHEMES = ("http://", "https://", "mailto:")
SAFE_NAMED_ACTIONS = frozenset({"/NextPage", "/PrevPage", "/FirstPage", "/LastPage"})
"""The four named actions every viewer must support; the rest are viewer commands (print, save)."""
ACTION_FEATURES = {
    "/JavaScript": RemovedFeature.JAVASCRIPT,
    "/Launch": RemovedFeature.LAUNCH,
    "/Rendition": RemovedFeature.RICH_MEDIA,
    "/Movie": RemovedFeature.RICH_MEDIA,
    "/Sound": RemovedFeature.RICH_MEDIA,
    "/RichMediaExecute": RemovedFeature.RICH_MEDIA,
    "/GoTo3DView": RemovedFeature.RICH_MEDIA,
}
ACTION_SLOTS = ("/A", "/PA")
"""Keys whose value is one action (annotations, fields, outline items, the link's parent action)."""
REMOVED_KEYS = {
    "/AA": RemovedFeature.ADDITIONAL_ACTIONS,
    "/EF": RemovedFeature.EMBEDDED_FILES,
    "/Thumb": RemovedFeature.THUMBNAILS,
}
REMOVED_NAME_TREES = {
    "/JavaScript": RemovedFeature.JAVASCRIPT,
    "/EmbeddedFiles": RemovedFeature.EMBEDDED_FILES,
    "/AlternatePresentations": RemovedFeature.RICH_MEDIA,
    "/Renditions": RemovedFeature.RICH_MEDIA,
}
REMOVED_ANNOTATIONS = {
    "/FileAttachment": RemovedFeature.FILE_ATTACHMENTS,
    "/RichMedia": RemovedFeature.RICH_MEDIA,
    "/Screen": RemovedFeature.RICH_MEDIA,
    "/Movie": RemovedFeature.RICH_MEDIA,
    "/Sound": RemovedFeature.RICH_MEDIA,
    "/3D": RemovedFeature.RICH_MEDIA,
}
XREF_MACHINERY = frozenset({"/ObjStm", "/XRef"})
"""Object and cross-reference streams: containers of the file's structure that the rewrite replaces."""
SIGNATURE_TYPES = frozenset({"/Sig", "/DocTimeStamp"})
RESOURCE_FAILURES = ("bad_alloc", "limits error")
"""qpdf's words for running out of memory and for its parser limits (nesting, container size)."""
# the preflight's reasons that are not "damaged"
PREFLIGHT_PROBLEMS = {
    "empty": UploadProblem.NOT_PDF,
    "not_pdf": UploadProblem.NOT_PDF,
    "encrypted": UploadProblem.ENCRYPTED,
    "too_many_pages": UploadProblem.TOO_MANY_PAGES,
}


class Refused(Exception):
    def __init__(self, problem: UploadProblem, detail: str) -> None:
        super().__init__(detail)
        self.problem = problem
        self.detail = detail


def normalise_file(upload: Path, normalised: Path, max_pages: int) -> dict[str, object]:
    """Rewrite `upload` into `normalised`; the facts of the result.

    :raises Refused: the upload cannot be accepted.
    """
    _refuse_zip(upload)
    with _open(upload) as pdf:
        page_count = len(pdf.pages)
        if page_count > max_pages:
            raise Refused(UploadProblem.TOO_MANY_PAGES, f"{page_count} pages")
        if page_count == 0:
            raise Refused(UploadProblem.UNREADABLE, "no page can be found")
        unreferenced = _survey(pdf)
        removed = _strip_active_content(pdf)
        if unreferenced:
            removed.add(RemovedFeature.UNREFERENCED_OBJECTS)
        pdf.save(
            normalised,
            object_stream_mode=pikepdf.ObjectStreamMode.disable,
            compress_streams=True,
            fix_metadata_version=True,
            deterministic_id=True,
            linearize=False,
        )
        _refuse_beyond_limits(pdf.get_warnings())
    page_sizes = _check_output(normalised, max_pages)
    return {"page_count": len(page_sizes), "page_sizes": page_sizes, "removed": sorted(removed)}


def _refuse_zip(upload: Path) -> None:
    # A ZIP reader finds an archive by its directory at the end of the file, so a file with
    # a PDF header can be an archive too: one file, two meanings.
    try:
        with zipfile.ZipFile(upload) as archive:
            entries = len(archive.infolist())
    except Exception:  # zipfile fails in many ways on what is not an archive: all mean "not a ZIP"
        return
    if entries:
        raise Refused(UploadProblem.NOT_PDF, f"the file is also a ZIP archive with {entries} entries")


def _open(upload: Path) -> pikepdf.Pdf:
    try:
        pdf = pikepdf.open(upload)
    except pikepdf.PasswordError as exc:
        raise Refused(UploadProblem.ENCRYPTED, "a user password is set") from exc
    except pikepdf.PdfError as exc:
        raise Refused(_problem_of(str(exc)), f"qpdf cannot open it: {exc}") from exc
    try:
        if pdf.is_encrypted:
            raise Refused(UploadProblem.ENCRYPTED, "encrypted with an empty user password")
        _refuse_beyond_limits(pdf.get_warnings())
    except BaseException:
        pdf.close()
        raise
    return pdf


def _survey(pdf: pikepdf.Pdf) -> bool:
    """Refuse a signed file; whether the file holds objects the trailer does not reach.

    An existing signature (or a field or lock waiting for one) is refused, never stripped.
    """
    root = pdf.Root
    if Name.Perms in root:
        raise Refused(UploadProblem.ALREADY_SIGNED, "the catalog has /Perms (certification or usage rights)")
    acroform = root.get(Name.AcroForm)
    if isinstance(acroform, Dictionary):
        flags = acroform.get(Name.SigFlags)
        if isinstance(flags, pikepdf.Integer) and int(flags) != 0:
            raise Refused(UploadProblem.ALREADY_SIGNED, f"/SigFlags is {int(flags)}")
    # every indirect object, reachable or not, then the direct ones inside what is reachable
    listed: set[tuple[int, int]] = set()
    for obj in pdf.objects:
        _refuse_signature_part(obj)
        if not _is_xref_machinery(obj):
            listed.add(obj.objgen)
    reachable: set[tuple[int, int]] = set()
    for node in _walk(pdf.trailer, reachable):
        _refuse_signature_part(node)
    _refuse_beyond_limits(pdf.get_warnings())
    return bool(listed - reachable)


def _refuse_signature_part(obj: pikepdf.Object) -> None:
    if not isinstance(obj, Dictionary | Stream):
        return
    kind = obj.get(Name.Type)
    if Name.ByteRange in obj or (isinstance(kind, Name) and str(kind) in SIGNATURE_TYPES):
        raise Refused(UploadProblem.ALREADY_SIGNED, f"a signature dictionary ({obj.objgen})")
    if obj.get(Name.FT) == Name.Sig:
        raise Refused(UploadProblem.ALREADY_SIGNED, f"a signature field ({obj.objgen})")


def _strip_active_content(pdf: pikepdf.Pdf) -> set[RemovedFeature]:
    removed: set[RemovedFeature] = set()
    root = pdf.Root
    if Name.OpenAction in root:
        del root[Name.OpenAction]
        removed.add(RemovedFeature.OPEN_ACTION)
    names = root.get(Name.Names)
    if isinstance(names, Dictionary):
        for key, feature in REMOVED_NAME_TREES.items():
            if key in names:
                del names[key]
                removed.add(feature)
    if Name.Collection in root:
        # a portfolio's navigator over the embedded files removed above
        del root[Name.Collection]
        removed.add(RemovedFeature.EMBEDDED_FILES)
    acroform = root.get(Name.AcroForm)
    if isinstance(acroform, Dictionary) and Name.XFA in acroform:
        del acroform[Name.XFA]
        removed.add(RemovedFeature.XFA)
    if Name.NeedsRendering in root:
        # tells a viewer to draw the pages from the XFA form removed above
        del root[Name.NeedsRendering]
        removed.add(RemovedFeature.XFA)
    # the walk looks at a node's children after this loop's body has changed the node, so
    # nothing that was cut off is visited
    for node in _walk(pdf.trailer, set()):
        if isinstance(node, Dictionary | Stream):
            removed |= _strip_node(node)
    return removed


def _strip_node(node: Dictionary | Stream) -> set[RemovedFeature]:
    removed: set[RemovedFeature] = set()
    for key, feature in REMOVED_KEYS.items():
        if key in node:
            del node[key]
            removed.add(feature)
    for key in ACTION_SLOTS:
        unsafe = _unsafe_action(node.get(key))
        if unsafe is not None:
            del node[key]
            removed.add(unsafe)
    # an action's /Next: one action, or an array of them, run after it
    chained = node.get(Name.Next)
    if isinstance(chained, Array):
        kept = _filtered(chained, _unsafe_action, removed)
        if not kept:
            del node[Name.Next]
        elif kept is not chained:
            node[Name.Next] = kept
    else:
        unsafe = _unsafe_action(chained)
        if unsafe is not None:
            del node[Name.Next]
            removed.add(unsafe)
    annotations = node.get(Name.Annots)
    if isinstance(annotations, Array):
        kept = _filtered(annotations, _removed_annotation, removed)
        if kept is not annotations:
            node[Name.Annots] = kept
    return removed


def _filtered(
    items: Array, verdict: Callable[[pikepdf.Object], RemovedFeature | None], removed: set[RemovedFeature]
) -> Array:
    kept: list[pikepdf.Object] = []
    for item in items:
        feature = verdict(item)
        if feature is None:
            kept.append(item)
        else:
            removed.add(feature)
    # the same array when nothing went, so an unchanged (perhaps shared) array stays as it was
    return items if len(kept) == len(items) else Array(kept)


def _removed_annotation(annotation: pikepdf.Object) -> RemovedFeature | None:
    subtype = annotation.get(Name.Subtype) if isinstance(annotation, Dictionary) else None
    return REMOVED_ANNOTATIONS.get(str(subtype)) if isinstance(subtype, Name) else None


def _unsafe_action(value: pikepdf.Object | None) -> RemovedFeature | None:
    """What an action is, if it is not one of the allowed kinds; None for allowed or non-actions.

    An outline item (under /Next) or structure attributes (under /A) have neither /S nor /JS
    and are not actions.
    """
    if not isinstance(value, Dictionary | Stream):
        return None
    kind = value.get(Name.S)
    if Name.JS in value:
        return RemovedFeature.JAVASCRIPT
    if kind is None and value.get(Name.Type) != Name.Action:
        return None
    name = str(kind) if isinstance(kind, Name) else ""
    if name in SAFE_ACTIONS:
        return None
    if name == "/URI":
        target = value.get(Name.URI)
        if isinstance(target, pikepdf.String) and str(target).strip().lower().startswith(SAFE_URI_SCHEMES):
            return None
    if name == "/Named":
        command = value.get(Name.N)
        if isinstance(command, Name) and str(command) in SAFE_NAMED_ACTIONS:
            return None
    return ACTION_FEATURES.get(name, RemovedFeature.OTHER_ACTIONS)


def _is_xref_machinery(obj: pikepdf.Object) -> bool:
    kind = obj.get(Name.Type) if isinstance(obj, Stream) else None
    return isinstance(kind, Name) and str(kind) in XREF_MACHINERY


def _walk(start: pikepdf.Object, seen: set[tuple[int, int]]) -> Iterator[Container]:
    """Every container reachable from `start`, each indirect one once; `seen` collects the
    (number, generation) of every indirect object reached, containers or not.

    A node's children are read after the caller has had the node, so the caller may change it.
    """
    pending: list[pikepdf.Object] = [start]
    while pending:
        node = pending.pop()
        if not isinstance(node, Dictionary | Stream | Array):
            continue
        yield node
        children = list(node) if isinstance(node, Array) else [value for _key, value in node.items()]
        for child in children:
            if child is None:
                continue
            if child.is_indirect:
                if child.objgen in seen:
                    continue
                seen.add(child.objgen)
            pending.append(child)


def _check_output(normalised: Path, max_pages: int) -> list[tuple[float, float]]:
    """qpdf's --check and the signer's preflight on the rewritten file; the page sizes."""
    # pyHanko is imported here, after main() has set the warning filters
    from appliance.signing.errors import PdfRejected
    from appliance.signing.preflight import preflight_pdf

    with pikepdf.open(normalised) as pdf:
        # decodes every stream: a decompression bomb inflates here, against the memory limit
        problems = pdf.check_pdf_syntax()
        _refuse_beyond_limits(problems)
        errors = [problem for problem in problems if problem.startswith("ERROR")]
        if errors:
            raise Refused(UploadProblem.UNREADABLE, f"qpdf --check: {errors[0]}")
        page_sizes = [_media_size(page.obj) for page in pdf.pages]
    with normalised.open("rb") as stream:
        try:
            facts = preflight_pdf(stream, max_pages=max_pages)
        except PdfRejected as exc:
            problem = PREFLIGHT_PROBLEMS.get(exc.reason.value, UploadProblem.UNREADABLE)
            raise Refused(problem, f"preflight: {exc.public}") from exc
    if facts.signature_count:
        raise Refused(UploadProblem.ALREADY_SIGNED, "preflight found a signature")
    if facts.page_count != len(page_sizes):
        raise Refused(UploadProblem.UNREADABLE, "qpdf and pyHanko count different pages")
    return page_sizes


def _media_size(page: Dictionary) -> tuple[float, float]:
    # qpdf has pushed inherited attributes down to each page on opening
    box = page.get(Name.MediaBox)
    if (
        not isinstance(box, Array)
        or len(box) != 4
        or not all(isinstance(v, pikepdf.Real | pikepdf.Integer) for v in box)
    ):
        raise Refused(UploadProblem.UNREADABLE, "a page has no valid media box")
    x1, y1, x2, y2 = (float(value) for value in box)
    width, height = abs(x2 - x1), abs(y2 - y1)
    if width == 0 or height == 0:
        raise Refused(UploadProblem.UNREADABLE, "a page has an empty media box")
    return width, height


def _refuse_beyond_limits(messages: list[str]) -> None:
    for message in messages:
        if any(words in message for words in RESOURCE_FAILURES):
            raise Refused(UploadProblem.TOO_COMPLEX, message)


def _problem_of(message: str) -> UploadProblem:
    return (
        UploadProblem.TOO_COMPLEX
        if any(words in message for words in RESOURCE_FAILURES)
        else UploadProblem.UNREADABLE
    )


def main(arguments: list[str]) -> int:
    # Python ignores SIGXFSZ, so an output past the file-size limit would surface as some
    # write error; the default action ends the worker in a way the caller recognises.
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    # stdout carries the verdict only: whatever a library prints goes to stderr, the log
    verdict_channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    silence_foreign_deprecations()
    upload, normalised, max_pages = arguments
    verdict: dict[str, object]
    try:
        # scalars stay pikepdf objects, so a number where a dictionary belongs fails a type check
        with pikepdf.explicit_conversion():
            verdict = normalise_file(Path(upload), Path(normalised), int(max_pages))
    except Refused as refused:
        verdict = {"problem": refused.problem.value, "detail": refused.detail}
    except pikepdf.PdfError as exc:
        verdict = {"problem": _problem_of(str(exc)).value, "detail": f"qpdf: {exc}"}
    except (MemoryError, RecursionError) as exc:
        verdict = {"problem": UploadProblem.TOO_COMPLEX.value, "detail": type(exc).__name__}
    with verdict_channel:
        json.dump(verdict, verdict_channel)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
