"""Refusals of the workflow in the reader's language, chosen by their stable code.

The workflow's `.public` text is English; a code without a translation here falls back to it.
"""

from __future__ import annotations

from flask_babel import LazyString
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from appliance.errors import ApplianceError
from appliance.signing.errors import PdfRejected, RejectReason
from appliance.workflow.codes import CodeProblem, CodeRejected

TEXTS: dict[str, LazyString] = {
    CodeProblem.REQUIRED.value: _l("Enter the verification code, or send yourself one first."),
    CodeProblem.WRONG.value: _l("The verification code is not correct. Check it and try again."),
    CodeProblem.EXPIRED.value: _l("The verification code has expired. Send yourself a new one."),
    CodeProblem.USED.value: _l("The verification code was already used. Send yourself a new one."),
    CodeProblem.SUPERSEDED.value: _l("A newer verification code was sent. Enter the latest one."),
    CodeProblem.EXHAUSTED.value: _l("Too many wrong verification codes. Send yourself a new one."),
    CodeProblem.BINDING_MISMATCH.value: _l(
        "The document changed after your code was sent. "
        "Check the document again and send yourself a new code."
    ),
    "rate_limited": _l("Too many codes were sent in the last hour. Wait a while and try again."),
    "invalid_state": _l("This cannot be done in the contract's current state; reload the page to see it."),
    "not_your_turn": _l("It is not your turn yet: earlier parties sign first."),
    "certificate_required": _l("You need a valid signing certificate first."),
    "document_integrity_failed": _l(
        "An earlier signature on this document no longer verifies, so nothing was signed. "
        "Ask your administrator to check the contract."
    ),
    "forbidden": _l("You cannot do that on this contract."),
}


def problem_text(error: ApplianceError) -> str:
    text = str(TEXTS[error.code]) if error.code in TEXTS else error.public
    if (
        isinstance(error, CodeRejected)
        and error.attempts_left is not None
        and error.problem is not CodeProblem.EXHAUSTED
    ):
        if error.attempts_left:
            text += " " + _("Attempts left: %(count)d.", count=error.attempts_left)
        else:
            text += " " + _("No attempts are left: send yourself a new code.")
    return text


REJECTIONS: dict[RejectReason, LazyString] = {
    RejectReason.EMPTY: _l("the file is empty"),
    RejectReason.NOT_PDF: _l("it is not a PDF"),
    RejectReason.ENCRYPTED: _l("the PDF is encrypted"),
    RejectReason.MALFORMED: _l("the PDF is damaged and cannot be read"),
    RejectReason.TOO_LARGE: _l("it is larger than this appliance checks"),
}


def rejection_text(error: PdfRejected) -> str:
    """Why a PDF cannot be read, in words; a reason without a translation falls back to English."""
    return str(REJECTIONS[error.reason]) if error.reason in REJECTIONS else error.public
