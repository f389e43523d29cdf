"""PAdES signing with a key that stays in the HSM.

Every signature is an incremental update (earlier signatures stay valid), carries a
signing-time attribute and, when a timestamper is given, a signature timestamp
(B-T). The chain and CRLs go into the document security store so the file validates
offline (B-LT); with `document_timestamp` a document timestamp follows (B-LTA).
The signature size is reserved up front, so the HSM signs each document once.

Cost per document (see bench/sign.py): the input is read once (copied into the output while
its sha256 is taken) and parsed once (preflight and the incremental writer share the
reader); pyHanko appends the update in place; the byte-range digest and the output's sha256
both continue the input's digest over the appended bytes only, so the document is hashed
once; the signer's chain is validated (hard-fail CRLs) at most once, and the validated path
is reused by later signatures only while the certificate, chain, anchors and CRLs are
byte-identical and a minute has not passed (appliance.signing.pathcache).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import DEFAULT_CHUNK_SIZE, PdfError
from pyhanko.sign import fields, signers
from pyhanko.sign.fields import FieldMDPAction, FieldMDPSpec, MDPPerm, SigFieldSpec, SigSeedSubFilter
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.pdf_byterange import PdfByteRangeDigest, PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.signers.pdf_signer import DSSContentSettings, SigDSSPlacementPreference
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.validation import read_certification_data
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    ExpiredError,
    InvalidCertificateError,
    NotYetValidError,
    PathBuildingError,
    PathValidationError,
    RevokedError,
)
from pyhanko_certvalidator.path import ValidationPath

from appliance.clock import Clock
from appliance.errors import ApplianceError
from appliance.signing.appearance import Appearance, check_box, check_page, stamp_style
from appliance.signing.errors import CertificateNotUsable, PdfRejected, RejectReason, SigningFailed
from appliance.signing.pathcache import SIGNER_PATHS
from appliance.signing.preflight import (
    DEFAULT_MAX_PAGES,
    PdfFacts,
    inherited_attribute,
    inspect_pdf,
    open_strict_reader,
)
from appliance.signing.pyhanko_logs import route_pyhanko_logs
from appliance.signing.trust import TrustMaterial
from appliance.storage import atomic_output

DIGEST_ALGORITHM = "sha256"
SIGNER_KEY_USAGE = frozenset({"non_repudiation"})

# Fixed part of the CMS object (signed attributes, algorithm identifiers, a signature
# value up to RSA-4096) and the room a timestamp token takes (its own signature,
# attributes and the TSA's certificate chain). Certificates are added on top.
CMS_BASE_RESERVE = 6 * 1024
TIMESTAMP_RESERVE = 10 * 1024

COPY_CHUNK = 1024 * 1024
"""Chunk size for copying a file-backed input into the output (a BytesIO input is not chunked)."""
APPEND_ROOM = 128 * 1024
"""Spare capacity given to an in-memory output for the appended update (signature, DSS).

An invisible or simply stamped signature appends a few tens of KiB (twice the /Contents
reservation in hex, the DSS, the xref); a larger update grows the buffer once. Every byte of
room is zero-filled up front, so a generous room costs time on every document."""


class PadesLevel(StrEnum):
    B_B = "B-B"
    B_T = "B-T"
    B_LT = "B-LT"
    B_LTA = "B-LTA"


@dataclass(frozen=True)
class SignOptions:
    appearance: Appearance | None = None
    """A visible stamp; None signs invisibly."""
    field_name: str | None = None
    """Signature field to create (default: the next free SignatureN)."""
    reason: str | None = None
    location: str | None = None
    lock_document: bool = False
    """Forbid any later change but validation data and timestamps (DocMDP "no changes").

    The first signature of a document becomes a certification signature; a later one
    locks through its field's /Lock dictionary (PDF 2.0), since a certification
    signature must be the first in a file.
    """
    document_timestamp: bool = False
    """Add a document timestamp after the validation data (PAdES B-LTA)."""
    max_pages: int = DEFAULT_MAX_PAGES


@dataclass(frozen=True)
class SignedDocument:
    field_name: str
    signing_time: datetime
    level: PadesLevel
    sha256: str
    size: int
    input: PdfFacts


def check_signer_chain(
    certificate: asn1_x509.Certificate,
    chain: tuple[asn1_x509.Certificate, ...],
    trust: TrustMaterial,
    now: datetime,
) -> None:
    """Refuse a signer certificate that is expired, not yet valid, revoked or not trusted at `now`.

    The certificate itself, not its database record (that is `pki.revoke.check_certificate_usable`):
    path validation against the roots and CRLs in `trust`, so a revocation counts from the
    moment the CRL that lists it is stored. `sign_pdf` makes the same check itself (once,
    sharing the result with pyHanko); this is for callers that want to know before they
    start, e.g. to refuse a signing request early.

    :raises CertificateNotUsable: with the reason in plain words.
    """
    _check_validity_period(certificate, now)
    asyncio.run(_validate_signer(certificate, chain, trust.validation_context(moment=now)))


def _check_validity_period(certificate: asn1_x509.Certificate, now: datetime) -> None:
    # path validation checks the period too, but this names the date in the refusal
    not_before = certificate.not_valid_before
    not_after = certificate.not_valid_after
    if now < not_before:
        raise CertificateNotUsable(
            f"the signing certificate is not valid before {not_before:%Y-%m-%d %H:%M} UTC"
        )
    if now > not_after:
        raise CertificateNotUsable(f"the signing certificate expired on {not_after:%Y-%m-%d %H:%M} UTC")


async def _validate_signer(
    certificate: asn1_x509.Certificate,
    intermediates: Iterable[asn1_x509.Certificate],
    context: ValidationContext,
) -> ValidationPath:
    """Path validation with revocation (hard-fail CRLs) and key usage; the path on success."""
    validator = CertificateValidator(
        certificate, intermediate_certs=list(intermediates), validation_context=context
    )
    try:
        return await validator.async_validate_usage(set(SIGNER_KEY_USAGE))
    except RevokedError as exc:
        raise CertificateNotUsable("the signing certificate has been revoked and cannot sign") from exc
    except (ExpiredError, NotYetValidError) as exc:
        raise CertificateNotUsable("the signing certificate is outside its validity period") from exc
    except InvalidCertificateError as exc:
        raise CertificateNotUsable(
            "the signing certificate may not be used for signing documents (key usage)"
        ) from exc
    except (PathBuildingError, PathValidationError) as exc:
        raise CertificateNotUsable(
            "the signing certificate does not chain to a trusted root of this appliance "
            "or its revocation status is unknown (no current CRL; for an external CA, import "
            "its current CRL with `appliance pki import-crl`)"
        ) from exc


def sign_pdf(
    source: BinaryIO,
    output: BinaryIO,
    *,
    signer: signers.Signer,
    trust: TrustMaterial,
    clock: Clock,
    timestamper: TimeStamper | None = None,
    options: SignOptions | None = None,
) -> SignedDocument:
    """Sign `source` incrementally into `output` (a readable, writable, seekable stream).

    `signer` is pyHanko's signer for the HSM key (from `KeyCustody.pdf_signer`), holding the
    signer's certificate and chain. `output` is overwritten; it receives a copy of `source`
    (whose sha256 is `SignedDocument.input.sha256`, so it names exactly the bytes that were
    signed) and the signature is appended to it in place. On any failure `output` is left
    empty. Nothing is fsynced here: durable storage is the caller's job (`sign_pdf_file`,
    or the blob store in the signing workflow).

    :raises PdfRejected: the PDF cannot be signed (see preflight), or the placement is wrong.
    :raises CertificateNotUsable: the certificate is expired, revoked or untrusted.
    :raises SigningFailed: pyHanko failed for another reason.
    """
    route_pyhanko_logs()
    options = options or SignOptions()
    if options.document_timestamp and timestamper is None:
        raise SigningFailed("a document timestamp (B-LTA) needs a timestamp authority; none is configured")
    certificate = signer.signing_cert
    if certificate is None:
        raise SigningFailed("the signer has no certificate")
    try:
        return _sign_into(source, output, signer, certificate, trust, clock, timestamper, options)
    except BaseException:
        output.seek(0)
        output.truncate()
        raise


def _sign_into(
    source: BinaryIO,
    output: BinaryIO,
    signer: signers.Signer,
    certificate: asn1_x509.Certificate,
    trust: TrustMaterial,
    clock: Clock,
    timestamper: TimeStamper | None,
    options: SignOptions,
) -> SignedDocument:
    input_digest, size = copy_hashed(source, output)
    if size == 0:
        raise PdfRejected(RejectReason.EMPTY, "the file is empty (0 bytes); upload the PDF again")
    reader = open_strict_reader(output)
    facts = inspect_pdf(reader, size=size, sha256=input_digest.hexdigest(), max_pages=options.max_pages)
    chain = _chain_of(signer, certificate)
    now = clock.now()
    _check_validity_period(certificate, now)

    with _pyhanko_errors():
        writer = IncrementalPdfFileWriter.from_reader(reader)
        if _locked(writer):
            raise PdfRejected(
                RejectReason.LOCKED, "an earlier signature locked this document against further signatures"
            )
        field_name = options.field_name or _next_field_name(writer)
        field_spec = _field_spec(writer, field_name, options, facts, certify=options.lock_document)
        certify = options.lock_document and facts.signature_count == 0
        # one context for the refusal check and for pyHanko: the CRLs it used are the ones
        # embedded, and pyHanko sees the path our check already validated
        context = trust.validation_context(moment=now)
        meta = signers.PdfSignatureMetadata(
            field_name=field_name,
            md_algorithm=DIGEST_ALGORITHM,
            reason=options.reason,
            location=options.location,
            name=options.appearance.signer_name if options.appearance else None,
            subfilter=SigSeedSubFilter.PADES,
            embed_validation_info=True,
            use_pades_lta=options.document_timestamp,
            validation_context=context,
            signer_key_usage=set(SIGNER_KEY_USAGE),
            certify=certify,
            docmdp_permissions=MDPPerm.NO_CHANGES if options.lock_document else MDPPerm.FILL_FORMS,
            # validation data in the signature's own revision: a B-LT file whose last signature
            # covers the whole file, which validators without diff analysis (pdfsig) accept
            dss_settings=DSSContentSettings(
                placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE, include_vri=False
            ),
        )
        pdf_signer = signers.PdfSigner(
            meta,
            signer=signer,
            timestamper=timestamper,
            stamp_style=stamp_style(options.appearance) if options.appearance else None,
            new_field_spec=field_spec,
        )
        reserve = _bytes_to_reserve(certificate, chain, timestamper is not None)
        asyncio.run(_sign(pdf_signer, writer, certificate, trust, context, reserve, now, input_digest, size))

    output_sha256, total = digest_appended(output, input_digest, size)
    if timestamper is None:
        level = PadesLevel.B_B
    else:
        level = PadesLevel.B_LTA if options.document_timestamp else PadesLevel.B_LT
    return SignedDocument(
        field_name=field_name,
        signing_time=now,
        level=level,
        sha256=output_sha256,
        size=total,
        input=facts,
    )


def digest_appended(output: BinaryIO, input_digest: hashlib._Hash, input_size: int) -> tuple[str, int]:
    """The sha256 and size of `output`, whose first `input_size` bytes are the copy that
    `input_digest` hashed: an incremental update only appends, so the digest continues from
    that state over the new bytes only. Leaves `output` at its start."""
    output_digest = input_digest.copy()
    output.seek(input_size)
    for chunk in iter(lambda: output.read(COPY_CHUNK), b""):
        output_digest.update(chunk)
    total = output.tell()
    output.seek(0)
    return output_digest.hexdigest(), total


def copy_hashed(source: BinaryIO, output: BinaryIO) -> tuple[hashlib._Hash, int]:
    """Copy all of `source` to the start of an emptied `output`, hashing the bytes as they pass."""
    digest = hashlib.sha256()
    output.seek(0)
    output.truncate()
    if isinstance(source, io.BytesIO):
        # the buffer itself, no intermediate copy of the document
        with source.getbuffer() as view:
            size = len(view)
            _reserve(output, size + APPEND_ROOM)
            digest.update(view)
            output.write(view)
    else:
        source.seek(0)
        _reserve(output, source.seek(0, os.SEEK_END) + APPEND_ROOM)
        source.seek(0)
        buffer = bytearray(COPY_CHUNK)
        size = 0
        with memoryview(buffer) as view:
            while read := source.readinto(buffer):  # type: ignore[attr-defined]
                digest.update(view[:read])
                output.write(view[:read])
                size += read
    if isinstance(output, io.BytesIO):
        output.truncate(size)  # CPython keeps the allocation (it shrinks only below half)
    output.flush()
    return digest, size


def _reserve(output: BinaryIO, capacity: int) -> None:
    # An in-memory output sized for the document plus the update pyHanko appends: otherwise
    # the buffer grows step by step and the first append after the copy reallocates (and so
    # copies) the whole document. Files need nothing of the kind.
    if isinstance(output, io.BytesIO):
        output.seek(capacity - 1)
        output.write(b"\0")
        output.seek(0)


def sign_pdf_file(
    source: Path,
    destination: Path,
    *,
    signer: signers.Signer,
    trust: TrustMaterial,
    clock: Clock,
    timestamper: TimeStamper | None = None,
    options: SignOptions | None = None,
) -> SignedDocument:
    """`sign_pdf` from file to file; `destination` appears complete or not at all.

    The signed bytes go to a temporary file beside `destination`, are fsynced, and are
    renamed over it; on any failure the temporary file is removed.
    """
    with open_pdf_source(source) as src, atomic_output(destination.absolute()) as out:
        return sign_pdf(
            src, out, signer=signer, trust=trust, clock=clock, timestamper=timestamper, options=options
        )


def open_pdf_source(source: Path) -> BinaryIO:
    """The input file opened for reading; a missing or unreadable file is the input's fault.

    :raises PdfRejected: the file does not exist or cannot be read.
    """
    try:
        return source.open("rb")
    except FileNotFoundError as exc:
        raise PdfRejected(RejectReason.NOT_PDF, f"input file {source} does not exist") from exc
    except OSError as exc:
        raise PdfRejected(RejectReason.NOT_PDF, f"input file {source} cannot be read") from exc


async def _sign(
    pdf_signer: signers.PdfSigner,
    writer: IncrementalPdfFileWriter,
    certificate: asn1_x509.Certificate,
    trust: TrustMaterial,
    context: ValidationContext,
    bytes_reserved: int,
    now: datetime,
    input_digest: hashlib._Hash,
    input_size: int,
) -> None:
    # pyHanko's own sign_pdf, step by step, so that the signing time comes from our clock,
    # the signature size is the reservation (no dummy signature to measure it), the update
    # is appended to the stream the writer reads (in place: the document is not copied a
    # second time), the signer's chain is validated once, and the byte-range digest continues
    # from the input's digest (the document is hashed once, not twice).
    session = pdf_signer.init_signing_session(writer, existing_fields_only=False)
    session.system_time = now
    signer_path = await _validated_signer_path(
        certificate, pdf_signer.signer.cert_registry, trust, context, now
    )

    async def validated_signer_path(_context: ValidationContext, _key_usage: object) -> ValidationPath:
        return signer_path

    # pyHanko's pre-sign step validates the signer's chain again before it gathers the
    # validation data (TSA paths, CRLs); hand it the path validated just now on the same
    # context instead. Should pyHanko rename this hook, the override is simply unused and
    # the chain is validated twice: slower, never less safe.
    session._perform_presign_signer_validation = validated_signer_path  # type: ignore[method-assign]
    validation_info = await session.perform_presign_validation(writer)
    tbs = session.prepare_tbs_document(validation_info=validation_info, bytes_reserved=bytes_reserved)
    _digest_from_input(writer, input_digest, input_size)
    prepared, result_output = tbs.digest_tbs_document(in_place=True)
    if prepared.reserved_region_start < input_size:
        # an incremental update never touches the original bytes; the output digest relies on it
        raise SigningFailed("the signature would overlap the original document; not signed")
    post_signing = await tbs.perform_signature(
        document_digest=prepared.document_digest,
        pdf_cms_signed_attrs=PdfCMSSignedAttributes(
            signing_time=now,
            adobe_revinfo_attr=None if validation_info is None else validation_info.adobe_revinfo_attr,
        ),
    )
    await post_signing.post_signature_processing(result_output)


def _digest_from_input(
    writer: IncrementalPdfFileWriter, input_digest: hashlib._Hash, input_size: int
) -> None:
    """Make pyHanko's byte-range digest continue from the input's digest instead of re-reading.

    The signed byte range is [0, /Contents start) + [/Contents end, EOF). Its first `input_size`
    bytes are the input copied (and hashed) by `copy_hashed`, which an incremental update
    never rewrites, so the digest is the input's digest state updated over the appended bytes
    only: the same value pyHanko computes, without a second pass over the whole document.
    This replaces `fill` (hash, then fill in the CMS) on the one signature object of this
    update; if pyHanko's layout ever differs from what is expected here, nothing is replaced
    and pyHanko hashes the whole range itself (slower, same result).
    """
    placeholders = [obj for obj in writer.objects.values() if isinstance(obj, PdfByteRangeDigest)]
    if len(placeholders) != 1 or input_digest.name != DIGEST_ALGORITHM:
        return
    (placeholder,) = placeholders
    original_fill = placeholder.fill

    def fill(
        fill_writer: IncrementalPdfFileWriter,
        md_algorithm: str,
        in_place: bool = False,
        output: BinaryIO | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> Generator[object, object, None]:
        if fill_writer is not writer or not in_place or md_algorithm != DIGEST_ALGORITHM:
            yield from original_fill(fill_writer, md_algorithm, in_place, output, chunk_size)
            return
        # as pyHanko's fill: append the update in place, then write the /ByteRange offsets
        writer.digest_aware_write = True
        stream = writer.prev.stream
        writer.write_in_place()
        eof = stream.tell()
        sig_start, sig_end = placeholder.contents.offsets
        if sig_start < input_size:
            raise SigningFailed("the signature would overlap the original document; not signed")
        placeholder.byte_range.fill_offsets(stream, sig_start, sig_end, eof)
        digest = input_digest.copy()
        stream.seek(input_size)
        digest.update(stream.read(sig_start - input_size))
        stream.seek(sig_end)
        digest.update(stream.read(eof - sig_end))
        prepared = PreparedByteRangeDigest(
            document_digest=digest.digest(), reserved_region_start=sig_start, reserved_region_end=sig_end
        )
        cms_data = yield prepared, stream
        yield prepared.fill_with_cms(stream, cms_data)

    placeholder.fill = fill  # type: ignore[method-assign,assignment]


async def _validated_signer_path(
    certificate: asn1_x509.Certificate,
    intermediates: Iterable[asn1_x509.Certificate],
    trust: TrustMaterial,
    context: ValidationContext,
    now: datetime,
) -> ValidationPath:
    """The signer's validated path, from the process cache while its inputs are unchanged.

    See `appliance.signing.pathcache`: the key covers the certificate, the chain, the trust
    anchors and every CRL, so a new CRL or anchor means a fresh (hard-fail) validation.
    """
    intermediates = tuple(intermediates)
    key = SIGNER_PATHS.key(certificate, intermediates, trust, now)
    path = SIGNER_PATHS.get(key, now)
    if path is None:
        path = await _validate_signer(certificate, intermediates, context)
        SIGNER_PATHS.put(key, path, trust, now)
    return path


def _chain_of(
    signer: signers.Signer, certificate: asn1_x509.Certificate
) -> tuple[asn1_x509.Certificate, ...]:
    registry = signer.cert_registry
    return tuple(cert for cert in registry if cert.issuer_serial != certificate.issuer_serial)


def _bytes_to_reserve(
    certificate: asn1_x509.Certificate, chain: tuple[asn1_x509.Certificate, ...], timestamped: bool
) -> int:
    certs = len(certificate.dump()) + sum(len(cert.dump()) for cert in chain)
    total = CMS_BASE_RESERVE + certs + (TIMESTAMP_RESERVE if timestamped else 0)
    return -(-total // 512) * 512  # pyHanko needs an even size; whole 512-byte blocks keep it simple


def _next_field_name(writer: IncrementalPdfFileWriter) -> str:
    existing = {name for name, _value, _ref in fields.enumerate_sig_fields(writer)}
    number = len(existing) + 1
    while f"Signature{number}" in existing:
        number += 1
    return f"Signature{number}"


def _locked(writer: IncrementalPdfFileWriter) -> bool:
    certification = read_certification_data(writer.prev)
    if certification is not None and certification.permission == MDPPerm.NO_CHANGES:
        return True
    for _name, value, field_ref in fields.enumerate_sig_fields(writer):
        lock = field_ref.get_object().get("/Lock")
        if value is not None and lock is not None and lock.get_object().get("/P") == MDPPerm.NO_CHANGES.value:
            return True
    return False


def _field_spec(
    writer: IncrementalPdfFileWriter,
    field_name: str,
    options: SignOptions,
    facts: PdfFacts,
    *,
    certify: bool,
) -> SigFieldSpec:
    lock: dict[str, object] = {}
    if certify and facts.signature_count > 0:
        lock = {
            "field_mdp_spec": FieldMDPSpec(action=FieldMDPAction.ALL),
            "doc_mdp_update_value": MDPPerm.NO_CHANGES,
        }
    if options.appearance is None:
        return SigFieldSpec(sig_field_name=field_name, **lock)  # type: ignore[arg-type]
    placement = options.appearance.placement
    # the page number first: looking up a page that does not exist fails inside pyHanko
    check_page(placement, facts.page_count)
    check_box(placement, _media_box(writer, placement.page - 1))
    x1, y1, x2, y2 = placement.box
    return SigFieldSpec(
        sig_field_name=field_name,
        on_page=placement.page - 1,
        box=(round(x1), round(y1), round(x2), round(y2)),
        **lock,  # type: ignore[arg-type]
    )


def _media_box(writer: IncrementalPdfFileWriter, page_index: int) -> tuple[float, ...] | None:
    page_ref, _resources = writer.find_page_for_modification(page_index)
    box = inherited_attribute(page_ref.get_object(), "/MediaBox")
    return tuple(float(value) for value in box) if isinstance(box, generic.ArrayObject) else None


@contextmanager
def _pyhanko_errors() -> Iterator[None]:
    """Map pyHanko's exceptions to ours; an ApplianceError raised inside (e.g. by the HSM) passes."""
    try:
        yield
    except ApplianceError:
        raise
    except (SigningError, PdfError, ValueError, KeyError, TypeError) as exc:
        cause = _appliance_cause(exc)
        if cause is not None:
            raise cause from exc
        if isinstance(exc, PdfError):
            raise PdfRejected(
                RejectReason.MALFORMED,
                "the PDF could not be updated; re-save it from the original application",
            ) from exc
        raise SigningFailed("the document could not be signed; see the appliance log for details") from exc


def _appliance_cause(exc: BaseException) -> ApplianceError | None:
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ApplianceError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
