"""Keeping signed PDFs verifiable for decades: archive timestamps (PAdES B-LTA).

A signature can be checked only while the evidence of when it was made can be checked: its
timestamp token and the certificates above the timestamp authority's key. Before the newest
of those expires, or its digest algorithm stops being trusted, a new document timestamp from
a current TSA is laid over the whole file, in the same update as the validation data
(certificates and fresh CRLs) of everything before it in the document security store.
Repeated before each horizon, this keeps the file verifiable indefinitely (ETSI EN 319 142-1,
PAdES-LTA): each document timestamp proves the earlier material existed while it was valid.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign.general import SigningError, extract_certificate_info
from pyhanko.sign.signers.pdf_signer import PdfTimeStamper
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.validation import DocumentSecurityStore
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature

from appliance.clock import Clock
from appliance.signing.errors import PdfRejected, RejectReason, SigningFailed
from appliance.signing.pades import DIGEST_ALGORITHM, copy_hashed, digest_appended
from appliance.signing.preflight import open_strict_reader
from appliance.signing.pyhanko_logs import route_pyhanko_logs
from appliance.signing.trust import TrustMaterial

DOCUMENT_TIMESTAMP = "/DocTimeStamp"
_MAX_CHAIN = 8
"""Issuers followed above a certificate; a real chain is two or three long."""


@dataclass(frozen=True)
class Horizon:
    """How long a signed file's newest time evidence can still be checked."""

    until: datetime
    """The earliest expiry among the certificates the newest timestamps rely on."""
    weak_digest: str | None
    """A digest algorithm those timestamps use that is no longer accepted, if any."""
    document_timestamps: int


@dataclass(frozen=True)
class RenewedDocument:
    sha256: str
    size: int
    field_name: str


def timestamp_horizon(stream: BinaryIO, trust: TrustMaterial, weak_digests: Iterable[str]) -> Horizon:
    """The horizon of the PDF in `stream`: of its newest document timestamp when it has one,
    else of every signature's own timestamp (or, without one, the signer's certificate).

    :raises PdfRejected: not a PDF, or it holds no signature.
    """
    route_pyhanko_logs()
    weak = {name.lower() for name in weak_digests}
    try:
        signatures = open_strict_reader(stream).embedded_signatures
        document_timestamps = [s for s in signatures if s.sig_object_type == DOCUMENT_TIMESTAMP]
        evidence = (
            [document_timestamps[-1].signed_data] if document_timestamps else _signature_evidence(signatures)
        )
    except (PdfError, SigningError, ValueError, KeyError, TypeError) as exc:
        raise PdfRejected(RejectReason.MALFORMED, "the signed file's signatures cannot be read") from exc
    if not evidence:
        raise PdfRejected(RejectReason.MALFORMED, "the file holds no signature to keep verifiable")
    pool = [*trust.roots, *trust.other_certs]
    ends = []
    weak_found = None
    for signed_data in evidence:
        info = extract_certificate_info(signed_data)
        ends.append(_chain_end(info.signer_cert, [*pool, *info.other_certs]))
        for algorithm in _digests(signed_data):
            if algorithm in weak:
                weak_found = algorithm
    return Horizon(until=min(ends), weak_digest=weak_found, document_timestamps=len(document_timestamps))


def _signature_evidence(signatures: Sequence[EmbeddedPdfSignature]) -> list[cms.SignedData]:
    """Each signature's timestamp token, or the signature itself when it has none."""
    evidence = []
    for signature in signatures:
        token = None
        for attribute in signature.signer_info["unsigned_attrs"] or ():
            if attribute["type"].native == "signature_time_stamp_token":
                token = attribute["values"][0]["content"]
        evidence.append(token if token is not None else signature.signed_data)
    return evidence


def _digests(signed_data: cms.SignedData) -> set[str]:
    names = {str(a["algorithm"].native).lower() for a in signed_data["digest_algorithms"]}
    content = signed_data["encap_content_info"]
    if content["content_type"].native == "tst_info":
        imprint = content["content"].parsed["message_imprint"]["hash_algorithm"]["algorithm"]
        names.add(str(imprint.native).lower())
    return names


def _chain_end(certificate: asn1_x509.Certificate, pool: Sequence[asn1_x509.Certificate]) -> datetime:
    """The earliest expiry of `certificate` and the issuers above it found in `pool`."""
    end = certificate.not_valid_after
    current = certificate
    for _ in range(_MAX_CHAIN):
        if current.self_signed != "no":
            break
        wanted_key = current.authority_key_identifier
        issuer = next(
            (
                c
                for c in pool
                if c.subject == current.issuer and (wanted_key is None or c.key_identifier == wanted_key)
            ),
            None,
        )
        if issuer is None:
            break
        end = min(end, issuer.not_valid_after)
        current = issuer
    return end


def renew_archive_timestamp(
    source: BinaryIO,
    output: BinaryIO,
    *,
    trust: TrustMaterial,
    timestamper: TimeStamper,
    clock: Clock,
) -> RenewedDocument:
    """Append to a copy of `source` in `output`: the appliance's certificates and current CRLs
    in the document security store, and a document timestamp over all of it.

    `trust` must hold CRLs that are current at the clock's time (the timestamp authority's
    own certificate is checked against them). On failure `output` is left empty.

    :raises PdfRejected: the file is not a PDF pyHanko can update.
    :raises SigningFailed: the timestamp could not be made.
    """
    route_pyhanko_logs()
    try:
        return _renew_into(source, output, trust, timestamper, clock)
    except BaseException:
        output.seek(0)
        output.truncate()
        raise


def _renew_into(
    source: BinaryIO, output: BinaryIO, trust: TrustMaterial, timestamper: TimeStamper, clock: Clock
) -> RenewedDocument:
    input_digest, size = copy_hashed(source, output)
    try:
        reader = open_strict_reader(output)
        existing = sum(1 for s in reader.embedded_signatures if s.sig_object_type == DOCUMENT_TIMESTAMP)
        field_name = f"ArchiveTimestamp{existing + 1}"
        writer = IncrementalPdfFileWriter.from_reader(reader)
        # everything a validator needs for the signatures and timestamps so far, covered by
        # the new timestamp: that is what makes them provable after their certificates expire
        DocumentSecurityStore.supply_dss_in_writer(
            writer, None, certs=[*trust.roots, *trust.other_certs], crls=list(trust.crls)
        )
        stamper = PdfTimeStamper(timestamper, field_name=field_name)
        asyncio.run(
            stamper.async_timestamp_pdf(
                writer, DIGEST_ALGORITHM, trust.validation_context(moment=clock.now()), in_place=True
            )
        )
    except PdfRejected:
        raise
    except (PdfError, ValueError, KeyError, TypeError) as exc:
        raise PdfRejected(RejectReason.MALFORMED, "the signed file cannot be updated") from exc
    except SigningError as exc:
        raise SigningFailed(f"the archive timestamp could not be made: {exc}") from exc
    sha256, total = digest_appended(output, input_digest, size)
    return RenewedDocument(sha256=sha256, size=total, field_name=field_name)
