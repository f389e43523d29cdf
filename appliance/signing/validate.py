"""Validation report for any PDF, ours or foreign.

pyHanko does the cryptography, path validation and difference analysis; the verdict is
ours (DESIGN §9): difference analysis is never skipped, only the appliance's trust roots
count, and coverage, modification level and DocMDP are checked here rather than taken
from pyHanko's `bottom_line` (which passes an incremental-saving attack when the diff
is skipped). A later visible signature that hides what an earlier one signed makes the
earlier one invalid (appliance.signing.overlay). Anything that cannot be parsed or
evaluated makes its signature invalid; files beyond `ValidationLimits` are refused.

Each fact is judged on its own, so a report says what is wrong and only that: the signed
bytes (`intact`), the signature value (`cryptographically_valid` needs both), the signer's
chain (`trusted`, judged even when the bytes changed), and DocMDP (only in certified
documents). Each certificate of a chain is shown with its SHA-256 fingerprint, and one that
copies the name of a CA the appliance knows, with another key, is marked as not the
appliance's CA.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, BinaryIO

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509 as crypto_x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY, ModificationLevel
from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter, enumerate_sig_fields
from pyhanko.sign.validation import (
    DocumentSecurityStore,
    EmbeddedPdfSignature,
    SignatureCoverageLevel,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.generic_cms import validate_cert_usage
from pyhanko.sign.validation.status import (
    DocumentTimestampStatus,
    PdfSignatureStatus,
    RevocationDetails,
    TimestampSignatureStatus,
)
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.path import ValidationPath

from appliance.clock import Clock
from appliance.signing import overlay
from appliance.signing.errors import PdfRejected, RejectReason
from appliance.signing.preflight import open_strict_reader
from appliance.signing.pyhanko_logs import route_pyhanko_logs
from appliance.signing.trust import TrustMaterial

log = logging.getLogger(__name__)


class Verdict(StrEnum):
    VALID = "valid"
    """Every signature is valid, trusted and the last one covers the whole document."""
    INVALID = "invalid"
    NO_SIGNATURES = "no_signatures"


VERDICT_MESSAGES = {
    Verdict.VALID: "every signature is valid and the document is unchanged since, but for what they allow",
    Verdict.INVALID: "at least one signature is not valid; its problems say why",
    Verdict.NO_SIGNATURES: "the document has no signatures",
}

PROBLEM_MESSAGES = {
    "digest_mismatch": "the signed bytes were changed after signing",
    "signature_invalid": "the signature value does not match the signed data and the signer's key",
    "untrusted": "the signer's certificate is not trusted by this appliance (see trusted)",
    "revoked": "the signer's certificate is revoked",
    "timestamp_untrusted": "the signature timestamp is damaged or not from a trusted authority",
    "seed_value_violation": "the signature breaks the rules its signature field sets",
    "partial_coverage": "the signature does not cover the whole file",
    "modifications_unknown": "the changes made after signing could not be analysed",
    "modified_after_signing": "the document was changed after signing beyond what is allowed",
    "docmdp_violation": "the changes after signing break the certification's permissions",
    "hidden_by_later_signature": "a later signature's stamp hides content this signature covers",
    "overlay_unchecked": "whether later stamps hide signed content could not be checked",
    "malformed_signature": "the signature cannot be read",
}
"""Each stable problem code in plain words: what is wrong, and only that."""

_OUTSIDE_VALIDITY = "a certificate in the chain is outside its validity period at the validation time"
_CHAIN_FAILED = "the chain could not be validated"
_REVOCATION_UNKNOWN = "the revocation status is unknown at the validation time (no current CRL)"
TRUST_PROBLEM_MESSAGES = {
    "chain_constraints_failure": (
        "a certificate in the chain may not be used this way (e.g. self-signed but no trust root "
        "of this appliance, or a key usage that does not allow signing)"
    ),
    "certificate_chain_general_failure": _CHAIN_FAILED,
    "generic": _CHAIN_FAILED,
    "crypto_constraints_failure": "the chain uses an algorithm this appliance does not accept",
    "crypto_constraints_failure_no_poe": "the chain uses an algorithm this appliance does not accept",
    "expired": _OUTSIDE_VALIDITY,
    "not_yet_valid": _OUTSIDE_VALIDITY,
    "out_of_bounds_no_poe": _OUTSIDE_VALIDITY,
    "out_of_bounds_not_revoked": _OUTSIDE_VALIDITY,
    "no_certificate_chain_found": "no path to a trusted root of this appliance",
    "try_later": _REVOCATION_UNKNOWN,
    "revocation_out_of_bounds_no_poe": _REVOCATION_UNKNOWN,
    "no_poe": "nothing proves the signature existed while its certificate was valid",
}
"""`SignatureFacts.trust_problem` codes (pyHanko's AdES indications) in plain words."""

NOT_OUR_CA = "not the appliance's CA"


class Modification(StrEnum):
    """What the document's later updates changed (pyHanko's difference analysis)."""

    NONE = "none"
    LTA_UPDATES = "lta_updates"
    """Only validation data and document timestamps."""
    FORM_FILLING = "form_filling"
    """Form fields filled and further signatures."""
    ANNOTATIONS = "annotations"
    OTHER = "other"
    """Anything else, e.g. page content: not acceptable after a signature."""
    UNKNOWN = "unknown"


class Coverage(StrEnum):
    ENTIRE_FILE = "entire_file"
    ENTIRE_REVISION = "entire_revision"
    PARTIAL = "partial"
    """Covers a block from the start but not its whole revision (e.g. bytes hidden after it)."""
    UNCLEAR = "unclear"


class Revocation(StrEnum):
    GOOD = "good"
    """Checked against a CRL (or no CRL is named by the certificate) and not revoked."""
    REVOKED = "revoked"
    UNKNOWN = "unknown"


_MODIFICATION = {
    ModificationLevel.NONE: Modification.NONE,
    ModificationLevel.LTA_UPDATES: Modification.LTA_UPDATES,
    ModificationLevel.FORM_FILLING: Modification.FORM_FILLING,
    ModificationLevel.ANNOTATIONS: Modification.ANNOTATIONS,
    ModificationLevel.OTHER: Modification.OTHER,
}
_COVERAGE = {
    SignatureCoverageLevel.ENTIRE_FILE: Coverage.ENTIRE_FILE,
    SignatureCoverageLevel.ENTIRE_REVISION: Coverage.ENTIRE_REVISION,
    SignatureCoverageLevel.CONTIGUOUS_BLOCK_FROM_START: Coverage.PARTIAL,
    SignatureCoverageLevel.UNCLEAR: Coverage.UNCLEAR,
}
# The most a DocMDP permission allows after the signature that set it.
_DOCMDP_ALLOWS = {
    MDPPerm.NO_CHANGES: ModificationLevel.LTA_UPDATES,
    MDPPerm.FILL_FORMS: ModificationLevel.FORM_FILLING,
    # pyHanko's default policy never classifies a change as ANNOTATIONS (they count as OTHER),
    # and the appliance does not accept annotations after a signature anyway.
    MDPPerm.ANNOTATE: ModificationLevel.FORM_FILLING,
}


@dataclass(frozen=True)
class TimestampFacts:
    time: datetime
    """The time the timestamp authority vouches for."""
    authority: str
    intact: bool
    trusted: bool


@dataclass(frozen=True)
class ChainCertificate:
    """One certificate of a signer's chain."""

    name: str
    subject: str
    sha256: str
    """SHA-256 fingerprint of the certificate (hex): a name can be copied, this cannot."""
    note: str | None = None
    """`NOT_OUR_CA` when it bears the name of a CA the appliance knows but not that CA's key."""


@dataclass(frozen=True)
class SignatureFacts:
    """Everything the report says about one signature or document timestamp."""

    index: int
    """Position in signing order, from 1."""
    field_name: str | None
    kind: str
    """"signature" or "document_timestamp"."""
    signer: str | None
    """Common name (or full subject) of the signer's certificate; the TSA for a document timestamp."""
    signer_subject: str | None
    certificate_serial: str | None
    chain: list[ChainCertificate]
    """From the signer up: the validated path to the trust anchor when the signer is trusted;
    otherwise the certificates, from the file and the appliance, that really issued each other."""
    trusted: bool
    """The signer's chain leads to a trust anchor, unrevoked, at the validation time; judged
    apart from the document's bytes, which `intact` describes."""
    trust_problem: str | None
    signing_time: datetime | None
    """Time claimed by the signer (signing-time attribute); not proof."""
    timestamp: TimestampFacts | None
    """Signature timestamp (or the document timestamp's own time)."""
    intact: bool
    """The signed bytes are unchanged (digest matches)."""
    cryptographically_valid: bool
    """The bytes are intact and the signature value verifies with the signer's key."""
    coverage: Coverage
    modification: Modification
    docmdp: str | None
    """DocMDP permission set by this signature (certification or field lock), if any."""
    docmdp_ok: bool | None
    """In a certified document: the changes after this signature respect the certification's
    permissions. None in a document that is not certified (and for document timestamps)."""
    revocation: Revocation
    revoked_at: datetime | None
    covers_whole_document: bool
    """The signature holds for the file as it is now (not just for an earlier revision)."""
    valid: bool
    problems: list[str] = field(default_factory=list)
    """Stable codes of everything that makes the signature invalid."""
    judged_at: datetime | None = None
    """The time its certificates were judged at: the validation time, or the time a later
    document timestamp proves it existed when they have expired since (PAdES-LTA)."""


@dataclass(frozen=True)
class ValidationReport:
    verdict: Verdict
    message: str
    """The verdict in words (`VERDICT_MESSAGES`)."""
    signatures: list[SignatureFacts]
    certified: str | None
    """DocMDP permission of an author (certification) signature, if the document has one."""
    revisions: int
    validated_at: datetime

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types: datetimes as ISO 8601 strings, enums as their values."""
        return _jsonable(self)


@dataclass(frozen=True)
class ValidationLimits:
    """The most the validator examines; a larger file is refused before any signature is checked.

    Difference analysis compares every revision after a signature with the one it signed,
    so its cost grows with signatures x revisions; contracts stay far below these numbers.
    """

    max_bytes: int = 256 * 1024 * 1024
    max_revisions: int = 500
    max_signatures: int = 100


def validate_pdf(
    stream: BinaryIO, trust: TrustMaterial, clock: Clock, limits: ValidationLimits | None = None
) -> ValidationReport:
    """Validate every signature in the PDF; never raises for a bad signature, only for a non-PDF.

    :raises PdfRejected: empty, not a PDF, unreadable cross-reference data, encrypted, or
        beyond `limits` (too large).
    """
    route_pyhanko_logs()
    limits = limits or ValidationLimits()
    now = clock.now()
    file_size = stream.seek(0, 2)
    if file_size == 0:
        raise PdfRejected(RejectReason.EMPTY, "the file is empty (0 bytes)")
    if file_size > limits.max_bytes:
        raise PdfRejected(
            RejectReason.TOO_LARGE,
            f"the file is {_mib(file_size)}; at most {_mib(limits.max_bytes)} can be checked here",
        )
    reader = open_strict_reader(stream)
    if reader.encrypted:
        raise PdfRejected(
            RejectReason.ENCRYPTED, "the PDF is encrypted; its signatures cannot be checked here"
        )
    revisions = reader.xrefs.total_revisions
    if revisions > limits.max_revisions:
        raise PdfRejected(
            RejectReason.TOO_LARGE,
            f"the PDF has {revisions} revisions (incremental updates); at most "
            f"{limits.max_revisions} can be checked here",
        )
    try:
        embedded, unreadable = _collect_signatures(reader, limits.max_signatures)
        certified = _certification(embedded)
    except PdfRejected:
        raise
    except (PdfError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise PdfRejected(RejectReason.MALFORMED, "the PDF's form fields cannot be read") from exc
    tail = _has_unaccounted_tail(stream, reader)
    dss_certs, dss_crls = _dss_material(reader)
    own = trust
    trust = trust.with_extra(dss_certs, dss_crls)
    last_regular = max(
        (i for i, sig in enumerate(embedded) if sig.sig_object_type != "/DocTimeStamp"), default=None
    )
    judge = _Judge(
        embedded,
        trust,
        own,
        certified=certified is not None,
        file_size=file_size,
        unaccounted_tail=tail,
        last_regular=last_regular,
    )
    facts = judge.newest_first(now)[::-1]
    facts = _check_overlays(stream, reader, embedded, facts)
    for offset, name in enumerate(unreadable, start=len(facts) + 1):
        facts.append(_unreadable(offset, name, is_timestamp=False))
    if not facts:
        verdict = Verdict.NO_SIGNATURES
    elif all(f.valid for f in facts):
        verdict = Verdict.VALID
    else:
        verdict = Verdict.INVALID
    return ValidationReport(
        verdict=verdict,
        message=VERDICT_MESSAGES[verdict],
        signatures=facts,
        certified=certified,
        revisions=revisions,
        validated_at=now,
    )


class _Judge:
    """Every signature's facts, judged newest first (PAdES-LTA).

    A valid document timestamp proves that everything before it existed at its time, so what
    has expired since (a signer's certificate, the certificate of an older timestamp's
    authority) is judged as it stood then. A revocation is never judged away like this: the
    appliance's CRLs do not say whether a key was compromised before its revocation.
    One validation context per time, as pyHanko's own validator does: its caches of paths and
    checked CRLs then serve every signature judged at that time.
    """

    def __init__(
        self,
        embedded: list[EmbeddedPdfSignature],
        trust: TrustMaterial,
        own: TrustMaterial,
        *,
        certified: bool,
        file_size: int,
        unaccounted_tail: bool,
        last_regular: int | None,
    ) -> None:
        self._embedded = embedded
        self._trust, self._own = trust, own
        self._certified, self._file_size, self._tail = certified, file_size, unaccounted_tail
        self._last_regular = last_regular
        self._contexts: dict[datetime, ValidationContext] = {}

    def newest_first(self, now: datetime) -> list[SignatureFacts]:
        judged: list[SignatureFacts] = []
        proof: datetime | None = None
        for index in reversed(range(len(self._embedded))):
            facts = self._at(index, now)
            if not facts.valid and proof is not None and facts.revocation is not Revocation.REVOKED:
                then = self._at(index, proof)
                facts = then if then.valid else facts
            if facts.kind == "document_timestamp" and facts.valid and facts.timestamp is not None:
                proof = facts.timestamp.time
            judged.append(facts)
        return judged

    def _at(self, index: int, moment: datetime) -> SignatureFacts:
        context = self._contexts.get(moment)
        if context is None:
            context = self._contexts[moment] = self._trust.validation_context(moment=moment)
        facts = _evaluate(
            self._embedded[index],
            index + 1,
            self._trust,
            self._own,
            context,
            moment,
            certified=self._certified,
            file_size=self._file_size,
            unaccounted_tail=self._tail,
            is_last=index == len(self._embedded) - 1,
            is_last_regular=index == self._last_regular,
            later_signatures=len(self._embedded) - index - 1,
        )
        return replace(facts, judged_at=moment)


def _evaluate(
    sig: EmbeddedPdfSignature,
    index: int,
    trust: TrustMaterial,
    own: TrustMaterial,
    context: ValidationContext,
    now: datetime,
    *,
    certified: bool,
    file_size: int,
    unaccounted_tail: bool,
    is_last: bool,
    is_last_regular: bool,
    later_signatures: int,
) -> SignatureFacts:
    """One signature's facts, its certificates validated at `now` (the injected clock's time).

    `trust` adds the document's own validation data to `own`, the appliance's trust material;
    `context` is made from `trust`, at `now`.
    """
    is_timestamp = sig.sig_object_type == "/DocTimeStamp"
    try:
        field_name = str(sig.field_name)
    except (PdfError, KeyError, TypeError, ValueError):
        field_name = None
    try:
        if is_timestamp:
            status: PdfSignatureStatus | DocumentTimestampStatus = asyncio.run(
                async_validate_pdf_timestamp(
                    sig,
                    validation_context=context,
                    diff_policy=DEFAULT_DIFF_POLICY,
                    skip_diff=False,
                )
            )
        else:
            status = asyncio.run(
                async_validate_pdf_signature(
                    sig,
                    signer_validation_context=context,
                    ts_validation_context=context,
                    diff_policy=DEFAULT_DIFF_POLICY,
                    skip_diff=False,
                )
            )
    except (SignatureValidationError, PdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # a broken /ByteRange or /Contents (universal signature forgery) lands here: fail closed
        log.info("signature %d could not be evaluated: %s", index, exc.__class__.__name__)
        log.debug("signature %d could not be evaluated", index, exc_info=True)
        return _unreadable(index, field_name, is_timestamp)
    return _facts_from_status(
        sig,
        status,
        index,
        field_name,
        _judge_trust(sig, status, trust, now),
        _Names(trust=trust, own=own),
        certified=certified,
        file_size=file_size,
        unaccounted_tail=unaccounted_tail,
        is_timestamp=is_timestamp,
        is_last=is_last,
        is_last_regular=is_last_regular,
        later_signatures=later_signatures,
    )


@dataclass(frozen=True)
class _Trust:
    """The verdict on a signer's chain, apart from the document's bytes."""

    trusted: bool
    problem: str | None
    path: ValidationPath | None
    revocation: RevocationDetails | None


def _judge_trust(
    sig: EmbeddedPdfSignature,
    status: PdfSignatureStatus | DocumentTimestampStatus,
    trust: TrustMaterial,
    now: datetime,
) -> _Trust:
    """Is the signer's chain trusted? pyHanko's own `trusted` is also false when the bytes changed.

    pyHanko validates the chain whenever the signature value verifies, even over changed bytes
    (a digest mismatch), and that verdict is taken as it is. When the value itself does not
    verify, pyHanko skips the chain, so it is validated here, the same way.
    """
    if status.valid:
        path = status.validation_path
        indication = status.trust_problem_indic
        revocation = status.revocation_details
    else:
        context = trust.validation_context(moment=now)
        context.certificate_registry.register_multiple(sig.other_embedded_certs)
        result = asyncio.run(
            validate_cert_usage(
                status.signing_cert,
                context,
                key_usage_settings=type(status).default_usage_constraints(),
                paths=context.path_builder.async_build_paths_lazy(status.signing_cert),
            )
        )
        path = result.success_result or result.error_path
        indication = result.error_subindic
        revocation = result.revo_details
    trusted = indication is None and path is not None
    if trusted:
        problem = None
    elif revocation is not None:
        problem = (
            "a CA certificate in the signer's chain is revoked"
            if revocation.ca_revoked
            else "the signer's certificate is revoked"
        )
    elif indication is not None:
        problem = str(indication.standard_name).lower()
    else:
        problem = "no path to a trusted root of this appliance"
    return _Trust(trusted=trusted, problem=problem, path=path, revocation=revocation)


def _facts_from_status(
    sig: EmbeddedPdfSignature,
    status: PdfSignatureStatus | DocumentTimestampStatus,
    index: int,
    field_name: str | None,
    trust: _Trust,
    names: _Names,
    *,
    certified: bool,
    file_size: int,
    unaccounted_tail: bool,
    is_timestamp: bool,
    is_last: bool,
    is_last_regular: bool,
    later_signatures: int,
) -> SignatureFacts:
    problems: list[str] = []
    cert = status.signing_cert
    coverage = _COVERAGE.get(status.coverage, Coverage.UNCLEAR) if status.coverage else Coverage.UNCLEAR
    level = status.modification_level
    modification = (
        _MODIFICATION.get(level, Modification.UNKNOWN) if level is not None else Modification.UNKNOWN
    )
    docmdp_level = _docmdp_level(sig)

    if not status.intact:
        problems.append("digest_mismatch")
    if not status.valid:
        problems.append("signature_invalid")
    if not trust.trusted:
        problems.append("revoked" if trust.revocation is not None else "untrusted")

    timestamp: TimestampFacts | None = None
    if isinstance(status, DocumentTimestampStatus):
        timestamp = TimestampFacts(
            time=status.timestamp,
            authority=_name(cert),
            intact=status.intact and status.valid,
            trusted=trust.trusted,
        )
    elif status.timestamp_validity is not None:
        timestamp = _timestamp_facts(status.timestamp_validity)
        if not (timestamp.intact and timestamp.trusted):
            problems.append("timestamp_untrusted")
    if isinstance(status, PdfSignatureStatus) and not status.seed_value_ok:
        problems.append("seed_value_violation")

    # Coverage and later changes: the whole file, or a whole revision followed only by
    # what may follow it: validation data / timestamps after the last signature, and
    # further signatures (form filling) after earlier ones.
    if is_last or (is_last_regular and not is_timestamp):
        allowed = ModificationLevel.LTA_UPDATES
    elif later_signatures > 0:
        allowed = ModificationLevel.FORM_FILLING
    else:
        allowed = ModificationLevel.NONE
    if docmdp_level is not None:
        allowed = min(allowed, _DOCMDP_ALLOWS.get(docmdp_level, ModificationLevel.NONE))
    if unaccounted_tail or (_in_last_revision(sig) and _signed_end(sig) != file_size):
        # bytes after the last revision's %%EOF that no revision accounts for: pyHanko
        # tolerates them (and leaves them out of its difference analysis), we (and pdfsig)
        # do not, since nobody signed them
        coverage = Coverage.PARTIAL
    if coverage not in (Coverage.ENTIRE_FILE, Coverage.ENTIRE_REVISION):
        problems.append("partial_coverage")
    if level is None:
        problems.append("modifications_unknown")
    elif level > allowed:
        problems.append("modified_after_signing")
    # DocMDP permissions exist only in a certified document; elsewhere pyHanko's docmdp_ok
    # merely repeats the modification check above. pyHanko judges it for signatures only: a
    # document timestamp sets no permissions and is bound by the earlier signatures' rules.
    # docmdp_ok is None exactly when the changes could not be analysed: modifications_unknown.
    docmdp_ok = status.docmdp_ok if certified and not is_timestamp else None
    if docmdp_ok is False:
        problems.append("docmdp_violation")
    covers_whole = not {
        "partial_coverage",
        "modifications_unknown",
        "modified_after_signing",
        "docmdp_violation",
    } & set(problems)

    if trust.revocation is not None:
        revocation = Revocation.REVOKED
    else:
        revocation = Revocation.GOOD if trust.trusted else Revocation.UNKNOWN
    if trust.trusted and trust.path is not None:
        chain_certs = list(reversed(list(trust.path)))
    else:
        # not pyHanko's failed path: it may pair the signer with a trusted CA of the same name
        chain_certs = _issuers(
            cert, [*sig.other_embedded_certs, *names.trust.roots, *names.trust.other_certs]
        )
    return SignatureFacts(
        index=index,
        field_name=field_name,
        kind="document_timestamp" if is_timestamp else "signature",
        signer=_name(cert),
        signer_subject=cert.subject.human_friendly,
        certificate_serial=format(cert.serial_number, "x"),
        chain=[names.describe(c) for c in chain_certs],
        trusted=trust.trusted,
        trust_problem=trust.problem,
        signing_time=None if isinstance(status, DocumentTimestampStatus) else status.signer_reported_dt,
        timestamp=timestamp,
        intact=status.intact,
        cryptographically_valid=status.intact and status.valid,
        coverage=coverage,
        modification=modification,
        docmdp=docmdp_level.name.lower() if docmdp_level is not None else None,
        docmdp_ok=docmdp_ok,
        revocation=revocation,
        revoked_at=trust.revocation.revocation_date if trust.revocation else None,
        covers_whole_document=covers_whole,
        valid=not problems,
        problems=problems,
    )


def _check_overlays(
    stream: BinaryIO,
    reader: PdfFileReader,
    embedded: list[EmbeddedPdfSignature],
    facts: list[SignatureFacts],
) -> list[SignatureFacts]:
    """Mark each signature whose signed content a later visible signature hides (see overlay)."""
    try:
        check = overlay.OverlayCheck(reader, stream)
        widgets = [check.visible_widgets(sig.sig_field) for sig in embedded]
    except (PdfError, PdfRejected, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.info("signature widgets cannot be read: %s", exc.__class__.__name__)
        return [_with_problem(f, "overlay_unchecked") for f in facts]
    checked: list[SignatureFacts] = []
    for index, (sig, sig_facts) in enumerate(zip(embedded, facts, strict=True)):
        later = [widget for found in widgets[index + 1 :] for widget in found]
        end = _signed_end(sig)
        if not later or end is None:
            checked.append(sig_facts)
            continue
        try:
            hidden = check.hidden_ink(check.current_bytes()[:end], later)
        except (overlay.RenderFailed, PdfError, PdfRejected, ValueError, KeyError, TypeError) as exc:
            log.warning("signature %d: pages under later signatures not compared: %s", index + 1, exc)
            checked.append(_with_problem(sig_facts, "overlay_unchecked"))
            continue
        hidden_content = hidden >= overlay.MIN_HIDDEN_PIXELS
        checked.append(_with_problem(sig_facts, "hidden_by_later_signature") if hidden_content else sig_facts)
    return checked


def _with_problem(facts: SignatureFacts, problem: str) -> SignatureFacts:
    return replace(facts, problems=[*facts.problems, problem], valid=False, covers_whole_document=False)


def _collect_signatures(
    reader: PdfFileReader, max_signatures: int
) -> tuple[list[EmbeddedPdfSignature], list[str | None]]:
    """Every filled signature field; the ones pyHanko cannot even parse are returned by name.

    pyHanko's own collector raises on an unparsable /Contents and silently drops unknown
    SubFilters; a report must show both as invalid signatures instead.
    :raises PdfRejected: more than `max_signatures` filled signature fields.
    """
    readable: list[EmbeddedPdfSignature] = []
    unreadable: list[str | None] = []
    for count, (fq_name, sig_obj, sig_field) in enumerate(
        enumerate_sig_fields(reader, filled_status=True), start=1
    ):
        if count > max_signatures:
            raise PdfRejected(
                RejectReason.TOO_LARGE,
                f"the PDF has more than {max_signatures} signatures; at most {max_signatures} "
                "can be checked here",
            )
        try:
            subfilter = sig_obj.get_object().get("/SubFilter")
            if subfilter not in {s.value for s in SigSeedSubFilter}:
                raise ValueError("unsupported SubFilter")
            readable.append(EmbeddedPdfSignature(reader, sig_field, fq_name))
        except (PdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.info("signature field %s cannot be parsed: %s", fq_name, exc.__class__.__name__)
            unreadable.append(str(fq_name) if fq_name is not None else None)
    readable.sort(key=lambda sig: sig.signed_revision)
    return readable, unreadable


def _has_unaccounted_tail(stream: BinaryIO, reader: PdfFileReader) -> bool:
    """True when anything but white space follows the %%EOF that ends the final revision.

    Whatever the final revision is (a signature, a document timestamp, a DSS update),
    bytes after its end belong to no revision, so no signature and no difference
    analysis covers them. If "%%EOF" occurs inside the final xref data the end is found
    too early, which errs towards "not valid".
    """
    final_revision = reader.xrefs.total_revisions - 1
    stream.seek(reader.xrefs.get_startxref_for_revision(final_revision))
    rest = stream.read()
    end = rest.find(b"%%EOF")
    return end < 0 or rest[end + len(b"%%EOF") :].strip(b" \t\r\n\f\x00") != b""


def _in_last_revision(sig: EmbeddedPdfSignature) -> bool:
    return bool(sig.signed_revision == sig.reader.xrefs.total_revisions - 1)


def _signed_end(sig: EmbeddedPdfSignature) -> int | None:
    try:
        byte_range = [int(value) for value in sig.sig_object["/ByteRange"]]
    except (KeyError, TypeError, ValueError):
        return None
    return byte_range[2] + byte_range[3] if len(byte_range) == 4 else None


def _unreadable(index: int, field_name: str | None, is_timestamp: bool) -> SignatureFacts:
    return SignatureFacts(
        index=index,
        field_name=field_name,
        kind="document_timestamp" if is_timestamp else "signature",
        signer=None,
        signer_subject=None,
        certificate_serial=None,
        chain=[],
        trusted=False,
        trust_problem="the signature could not be evaluated",
        signing_time=None,
        timestamp=None,
        intact=False,
        cryptographically_valid=False,
        coverage=Coverage.UNCLEAR,
        modification=Modification.UNKNOWN,
        docmdp=None,
        docmdp_ok=None,
        revocation=Revocation.UNKNOWN,
        revoked_at=None,
        covers_whole_document=False,
        valid=False,
        problems=["malformed_signature"],
    )


def _timestamp_facts(status: TimestampSignatureStatus) -> TimestampFacts:
    return TimestampFacts(
        time=status.timestamp,
        authority=_name(status.signing_cert),
        intact=status.intact and status.valid,
        trusted=status.trusted,
    )


MAX_CHAIN_LENGTH = 10


def _issuers(
    cert: asn1_x509.Certificate, candidates: list[asn1_x509.Certificate]
) -> list[asn1_x509.Certificate]:
    """`cert` and, up from it, each candidate whose key really signed the one below it."""
    chain = [cert]
    seen = {cert.sha256}
    current = cert
    while len(chain) < MAX_CHAIN_LENGTH and not current.self_issued:
        issuer = next((c for c in candidates if c.sha256 not in seen and _issued_by(current, c)), None)
        if issuer is None:
            break
        chain.append(issuer)
        seen.add(issuer.sha256)
        current = issuer
    return chain


def _issued_by(child: asn1_x509.Certificate, parent: asn1_x509.Certificate) -> bool:
    if child.issuer != parent.subject:
        return False
    try:
        crypto_x509.load_der_x509_certificate(child.dump()).verify_directly_issued_by(
            crypto_x509.load_der_x509_certificate(parent.dump())
        )
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


@dataclass(frozen=True)
class _Names:
    """Certificates by name, to tell the appliance's CAs from copies of their names."""

    trust: TrustMaterial
    """The appliance's trust material plus the document's validation data."""
    own: TrustMaterial
    """The appliance's trust material alone."""

    def describe(self, cert: asn1_x509.Certificate) -> ChainCertificate:
        namesakes = [
            c for c in (*self.own.roots, *self.own.other_certs) if c.ca and c.subject == cert.subject
        ]
        own_key = any(c.public_key.dump() == cert.public_key.dump() for c in namesakes)
        return ChainCertificate(
            name=_name(cert),
            subject=cert.subject.human_friendly,
            sha256=cert.sha256.hex(),
            note=NOT_OUR_CA if namesakes and not own_key else None,
        )


def _docmdp_level(sig: EmbeddedPdfSignature) -> MDPPerm | None:
    try:
        return sig.docmdp_level
    except (PdfError, KeyError, TypeError, ValueError):
        return None


def _certification(embedded: list[EmbeddedPdfSignature]) -> str | None:
    for sig in embedded:
        references = sig.sig_object.get("/Reference", ())
        if any(ref.get_object().get("/TransformMethod") == "/DocMDP" for ref in references):
            level = _docmdp_level(sig)
            return level.name.lower() if level is not None else "unknown"
    return None


def _dss_material(
    reader: PdfFileReader,
) -> tuple[list[asn1_x509.Certificate], list[asn1_crl.CertificateList]]:
    """Certificates and CRLs embedded for offline validation; roots in them are never trusted."""
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except (KeyError, PdfError, ValueError, TypeError):
        return [], []
    try:
        certs = list(dss.load_certs())
        crls = [asn1_crl.CertificateList.load(ref.get_object().data) for ref in dss.crls]
    except (PdfError, ValueError, TypeError, KeyError) as exc:
        log.info("ignoring an unreadable document security store: %s", exc.__class__.__name__)
        return [], []
    return certs, crls


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def _name(cert: asn1_x509.Certificate) -> str:
    try:
        common_name = cert.subject.native.get("common_name")
    except ValueError:
        common_name = None
    if isinstance(common_name, list):
        common_name = common_name[0]
    return str(common_name) if common_name else cert.subject.human_friendly


def _jsonable(value: Any) -> Any:
    # walks the dataclasses by hand: dataclasses.asdict deep-copies, and pyHanko values may
    # hold references to the open file
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, str):
        return str(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)
