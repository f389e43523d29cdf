"""Errors of the signing package; every message is public and says what to fix."""

from __future__ import annotations

from enum import StrEnum

from appliance.errors import ApplianceError, InvalidInput
from appliance.pki.errors import CertificateNotUsable

__all__ = ["CertificateNotUsable", "PdfRejected", "RejectReason", "SigningFailed"]


class RejectReason(StrEnum):
    """Why a file cannot be signed (or read for validation); stable codes for the API."""

    EMPTY = "empty"
    NOT_PDF = "not_pdf"
    ENCRYPTED = "encrypted"
    MALFORMED = "malformed"
    TOO_MANY_PAGES = "too_many_pages"
    TOO_LARGE = "too_large"
    """More bytes, revisions or signatures than the validator examines."""
    LOCKED = "locked"
    """An earlier certification or field lock forbids further changes."""
    BAD_PLACEMENT = "bad_placement"
    BAD_IMAGE = "bad_image"


class PdfRejected(InvalidInput):
    """The input PDF (or a signing parameter about it) is unacceptable."""

    code = "pdf_rejected"

    def __init__(self, reason: RejectReason, public: str) -> None:
        super().__init__(public)
        self.reason = reason


class SigningFailed(ApplianceError):
    """pyHanko could not produce the signature for a reason that is not the input's fault."""

    code = "signing_failed"
