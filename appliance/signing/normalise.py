"""Uploaded contract PDFs are rewritten before anyone sees or signs them (security plan P11-P14).

The upload is parsed only by `appliance.signing.normalise_worker`, a separate Python
process under address-space, CPU, file-size and wall-clock limits, so a decompression
bomb or a parser loop costs that process and never the web worker. The worker refuses
encrypted and already signed files, strips active content (scripts, actions, embedded
files, XFA, multimedia) and writes a fresh single-revision file from the trailer, which
drops every unreferenced object (the material of shadow attacks). This module only
copies bytes, starts the worker and reads its JSON verdict; it never parses the PDF.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from appliance.config import UploadConfig
from appliance.errors import Unavailable, Unprocessable

log = logging.getLogger(__name__)

WORKER_MODULE = "appliance.signing.normalise_worker"
UPLOAD_NAME = "upload.pdf"
NORMALISED_NAME = "normalised.pdf"
RESULT_NAME = "result.json"
WORKER_LOG_NAME = "worker.log"

WALL_CLOCK_FACTOR = 2
STARTUP_ALLOWANCE_SECONDS = 3
"""The worker may take `parser_seconds` of CPU and this factor times as long on the clock (a
busy host shares its CPUs), plus the allowance for starting Python and importing pyHanko."""
OUTPUT_GROWTH = 4
"""The rewrite may be this many times the largest upload (object streams are unpacked)."""
MAX_RESULT_BYTES = 1024 * 1024
"""The verdict is a few hundred bytes plus about 30 per page."""
COPY_CHUNK = 1024 * 1024
PDF_HEADER = re.compile(rb"%PDF-[12]\.[0-9]")
LOG_TAIL_BYTES = 2000

# The worker inherits nothing from the web worker's environment (secrets, PYTHON* paths).
WORKER_ENVIRONMENT = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
LIMIT_SIGNALS = frozenset({-signal.SIGXCPU, -signal.SIGKILL, -signal.SIGXFSZ})
"""Exit statuses of a worker the kernel stopped at its CPU, memory or file-size limit."""


class UploadProblem(StrEnum):
    """Why an upload is refused; stable codes, shown to API clients as the problem code."""

    NOT_PDF = "upload_not_pdf"
    ENCRYPTED = "upload_encrypted"
    ALREADY_SIGNED = "upload_already_signed"
    TOO_LARGE = "upload_too_large"
    TOO_MANY_PAGES = "upload_too_many_pages"
    UNREADABLE = "upload_unreadable"
    TOO_COMPLEX = "upload_too_complex"
    """The parser hit its memory, CPU or wall-clock limit."""


class RemovedFeature(StrEnum):
    """What the rewrite dropped from an upload; recorded with the document as evidence."""

    JAVASCRIPT = "javascript"
    OPEN_ACTION = "open_action"
    ADDITIONAL_ACTIONS = "additional_actions"
    """Actions run on events (page open, field keystroke, document close...)."""
    LAUNCH = "launch"
    OTHER_ACTIONS = "other_actions"
    """Actions outside the allowed set (go to a page, a web link, an article thread)."""
    EMBEDDED_FILES = "embedded_files"
    FILE_ATTACHMENTS = "file_attachments"
    XFA = "xfa"
    RICH_MEDIA = "rich_media"
    THUMBNAILS = "thumbnails"
    """Stored page previews, which may show something other than the page."""
    UNREFERENCED_OBJECTS = "unreferenced_objects"


class UploadRejected(Unprocessable):
    """The upload cannot become a contract document; `problem` says why, `public` what to fix."""

    def __init__(self, problem: UploadProblem, public: str, *, detail: str | None = None) -> None:
        super().__init__(public, detail=detail)
        self.problem = problem
        self.code = problem.value


@dataclass(frozen=True)
class NormalisedUpload:
    """The facts of the rewritten file the caller's `output` now holds."""

    sha256: str
    size: int
    page_count: int
    page_sizes: tuple[tuple[float, float], ...]
    """Width and height in points of each page's media box."""
    removed: tuple[RemovedFeature, ...]


def normalise_upload(source: BinaryIO, output: BinaryIO, limits: UploadConfig) -> NormalisedUpload:
    """Rewrite the PDF read from `source` into `output` and return the facts of the result.

    `source` is read from where it stands, never more than `limits.max_bytes` + 1 bytes.
    `output` is replaced from its start and left positioned at 0; it is written only when
    the upload is accepted.
    :raises UploadRejected: the upload is refused; nothing was written to `output`.
    :raises Unavailable: the worker cannot be started on this host.
    """
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        raise Unavailable(
            "Uploaded documents cannot be checked right now; try again later.",
            detail="prlimit is missing (package util-linux); the upload normaliser needs it",
        )
    with tempfile.TemporaryDirectory(prefix="appliance-upload-") as private:
        # mkdtemp makes the directory readable by this user only
        workdir = Path(private)
        _copy_bounded(source, workdir / UPLOAD_NAME, limits)
        _check_header(workdir / UPLOAD_NAME, limits)
        verdict = _run_worker(prlimit, workdir, limits)
        page_count, page_sizes, removed = _accepted_facts(verdict, limits)
        sha256, size = _deliver(workdir / NORMALISED_NAME, output)
    return NormalisedUpload(
        sha256=sha256, size=size, page_count=page_count, page_sizes=page_sizes, removed=removed
    )


def _rejection(problem: UploadProblem, limits: UploadConfig, *, detail: str | None = None) -> UploadRejected:
    """The refusal for `problem`, with the public message that says what to fix."""
    return UploadRejected(problem, _public_message(problem, limits), detail=detail)


def _public_message(problem: UploadProblem, limits: UploadConfig) -> str:
    match problem:
        case UploadProblem.NOT_PDF:
            return (
                "The file is not a plain PDF (it does not start with a PDF header, or it is also "
                "another kind of file); export or print the contract to a new PDF and upload that."
            )
        case UploadProblem.ENCRYPTED:
            return "The PDF is encrypted; save an unprotected copy and upload it again."
        case UploadProblem.ALREADY_SIGNED:
            return (
                "The PDF already contains a signature or a signature field; "
                "upload the unsigned original of the contract."
            )
        case UploadProblem.TOO_LARGE:
            megabytes = limits.max_bytes / (1024 * 1024)
            return (
                f"The file is larger than {megabytes:g} MB; reduce its size "
                "(for example by compressing its images) and upload it again."
            )
        case UploadProblem.TOO_MANY_PAGES:
            return (
                f"The PDF has more than {limits.max_pages} pages; "
                "split the contract into smaller documents and upload them separately."
            )
        case UploadProblem.UNREADABLE:
            return (
                "The PDF is damaged and cannot be read; re-save it from the original application "
                "or print it to a new PDF, then upload it again."
            )
        case UploadProblem.TOO_COMPLEX:
            return (
                "The PDF needs more memory or time to check than allowed; print it to a new PDF "
                "or reduce its size, then upload it again."
            )


def _copy_bounded(source: BinaryIO, target: Path, limits: UploadConfig) -> None:
    copied = 0
    with target.open("xb") as sink:
        while chunk := source.read(min(COPY_CHUNK, limits.max_bytes + 1 - copied)):
            copied += len(chunk)
            if copied > limits.max_bytes:
                raise _rejection(
                    UploadProblem.TOO_LARGE, limits, detail=f"more than {limits.max_bytes} bytes"
                )
            sink.write(chunk)


def _check_header(upload: Path, limits: UploadConfig) -> None:
    # Readers accept the header anywhere in the first KiB, which is what lets one file be a
    # PDF and an image or an archive at once; an upload must start with it.
    with upload.open("rb") as stream:
        head = stream.read(8)
    if not PDF_HEADER.match(head):
        raise _rejection(UploadProblem.NOT_PDF, limits, detail=f"the file starts with {head!r}")


def _run_worker(prlimit: str, workdir: Path, limits: UploadConfig) -> dict[str, object]:
    """Run the worker on the upload in `workdir`; its verdict, or the refusal its fate implies."""
    command = [
        prlimit,
        # prlimit sets the limits before Python starts; preexec_fn is unsafe in a threaded worker
        f"--as={limits.parser_memory_mb * 1024 * 1024}",
        f"--cpu={limits.parser_seconds}",
        f"--fsize={limits.max_bytes * OUTPUT_GROWTH}",
        "--core=0",
        "--",
        sys.executable,
        "-I",  # isolated: no PYTHON* variables, no user site, not the working directory on sys.path
        "-m",
        WORKER_MODULE,
        UPLOAD_NAME,
        NORMALISED_NAME,
        str(limits.max_pages),
    ]
    result_path, log_path = workdir / RESULT_NAME, workdir / WORKER_LOG_NAME
    with result_path.open("xb") as result_file, log_path.open("xb") as log_file:
        try:
            completed = subprocess.run(
                command,
                cwd=workdir,
                env=WORKER_ENVIRONMENT,
                stdin=subprocess.DEVNULL,
                stdout=result_file,
                stderr=log_file,
                timeout=limits.parser_seconds * WALL_CLOCK_FACTOR + STARTUP_ALLOWANCE_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            # subprocess.run has killed and reaped the worker
            raise _rejection(
                UploadProblem.TOO_COMPLEX, limits, detail=f"the parser ran longer than {exc.timeout} s"
            ) from exc
    if completed.returncode in LIMIT_SIGNALS:
        raise _rejection(
            UploadProblem.TOO_COMPLEX,
            limits,
            detail=f"the parser was stopped at its limits (signal {-completed.returncode})",
        )
    verdict = _read_verdict(result_path) if completed.returncode == 0 else None
    if verdict is None:
        tail = _log_tail(log_path)
        log.warning("the upload normaliser failed with exit status %s: %s", completed.returncode, tail)
        raise _rejection(
            UploadProblem.UNREADABLE,
            limits,
            detail=f"the parser exited with {completed.returncode} without a verdict: {tail}",
        )
    problem = verdict.get("problem")
    if problem is not None:
        detail = str(verdict.get("detail", ""))[:LOG_TAIL_BYTES]
        try:
            refused = UploadProblem(str(problem))
        except ValueError:
            refused = UploadProblem.UNREADABLE
        log.info("upload refused: %s (%s)", refused, detail)
        raise _rejection(refused, limits, detail=detail)
    return verdict


def _read_verdict(result_path: Path) -> dict[str, object] | None:
    if result_path.stat().st_size > MAX_RESULT_BYTES:
        return None
    try:
        verdict = json.loads(result_path.read_bytes())
    except ValueError:
        return None
    return verdict if isinstance(verdict, dict) else None


def _accepted_facts(
    verdict: dict[str, object], limits: UploadConfig
) -> tuple[int, tuple[tuple[float, float], ...], tuple[RemovedFeature, ...]]:
    """Page count, page sizes and removed features of an accepted upload, checked for shape.

    The worker parses hostile input, so its answer is checked like any other input.
    """
    try:
        page_count = verdict["page_count"]
        raw_sizes = verdict["page_sizes"]
        raw_removed = verdict["removed"]
        if not isinstance(page_count, int) or not isinstance(raw_sizes, list):
            raise TypeError("page_count or page_sizes has the wrong type")
        if not isinstance(raw_removed, list):
            raise TypeError("removed has the wrong type")
        page_sizes = tuple((float(width), float(height)) for width, height in raw_sizes)
        removed = tuple(RemovedFeature(str(feature)) for feature in raw_removed)
    except (KeyError, TypeError, ValueError) as exc:
        raise _rejection(UploadProblem.UNREADABLE, limits, detail=f"malformed verdict: {exc}") from exc
    if not 1 <= page_count <= limits.max_pages or len(page_sizes) != page_count:
        raise _rejection(UploadProblem.UNREADABLE, limits, detail="the verdict's page facts disagree")
    return page_count, page_sizes, removed


def _deliver(normalised: Path, output: BinaryIO) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    output.seek(0)
    with normalised.open("rb") as stream:
        while chunk := stream.read(COPY_CHUNK):
            digest.update(chunk)
            output.write(chunk)
            size += len(chunk)
    output.truncate()
    output.flush()
    output.seek(0)
    return digest.hexdigest(), size


def _log_tail(log_path: Path) -> str:
    with log_path.open("rb") as stream:
        stream.seek(max(0, log_path.stat().st_size - LOG_TAIL_BYTES))
        return stream.read().decode("utf-8", "replace").strip()
