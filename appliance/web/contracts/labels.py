"""Words for the workflow's enums and evidence actions, in the reader's language (Jinja filters)."""

from __future__ import annotations

from flask import Flask
from flask_babel import LazyString
from flask_babel import lazy_gettext as _l

from appliance.models import ApprovalStatus, ContractState, PartyStatus

STATES: dict[ContractState, LazyString] = {
    ContractState.DRAFT: _l("Draft"),
    ContractState.PENDING_APPROVAL: _l("Waiting for approval"),
    ContractState.SIGNING: _l("Out for signing"),
    ContractState.COMPLETED: _l("Completed"),
    ContractState.WITHDRAWN: _l("Withdrawn"),
    ContractState.REJECTED: _l("Rejected"),
    ContractState.EXPIRED: _l("Expired"),
    ContractState.VOIDED: _l("Voided"),
    ContractState.ENDED: _l("Ended"),
}
PARTY_STATUSES: dict[PartyStatus, LazyString] = {
    PartyStatus.WAITING: _l("Waiting for earlier parties"),
    PartyStatus.PENDING: _l("To sign now"),
    PartyStatus.SIGNED: _l("Signed"),
    PartyStatus.REJECTED: _l("Rejected"),
}
APPROVAL_STATUSES: dict[ApprovalStatus, LazyString] = {
    ApprovalStatus.WAITING: _l("Waiting for earlier approvers"),
    ApprovalStatus.PENDING: _l("To decide now"),
    ApprovalStatus.APPROVED: _l("Approved"),
    ApprovalStatus.REJECTED: _l("Rejected"),
    ApprovalStatus.CANCELLED: _l("No longer needed"),
}
ACTIONS: dict[str, LazyString] = {
    "created": _l("Created"),
    "party_added": _l("Party added"),
    "party_removed": _l("Party removed"),
    "sent": _l("Sent for signing"),
    "submitted_for_approval": _l("Sent for seal approval"),
    "seal_approved": _l("Use of the seal approved"),
    "seal_approval_rejected": _l("Use of the seal rejected"),
    "approved": _l("Approved: sent for signing"),
    "viewed": _l("Opened by a signer"),
    "code_sent": _l("Verification code sent"),
    "code_verified": _l("Verification code confirmed"),
    "code_failed": _l("Verification code refused"),
    "integrity_failed": _l("Document check failed"),
    "signed": _l("Signed"),
    "rejected": _l("Rejected"),
    "withdrawn": _l("Withdrawn"),
    "expired": _l("Expired"),
    "reminded": _l("Reminder sent"),
    "completed": _l("Completed"),
    "completion_certificate": _l("Certificate of completion made"),
    "voiding_started": _l("Voiding started"),
    "voided": _l("Voided"),
    "ended": _l("Ended"),
    "downloaded": _l("Downloaded"),
    "deletion_announced": _l("Deletion announced"),
    "archived": _l("Archived"),
    "archive_timestamp_renewed": _l("Archive timestamp renewed"),
}

PROBLEMS: dict[str, LazyString] = {
    "digest_mismatch": _l("The signed bytes were changed after signing."),
    "signature_invalid": _l("The signature does not match the signed data and the signer's key."),
    "untrusted": _l("The signer's certificate is not from an authority this appliance trusts."),
    "revoked": _l("The signer's certificate is revoked."),
    "timestamp_untrusted": _l("The signature's timestamp is damaged or not from a trusted authority."),
    "seed_value_violation": _l("The signature breaks the rules its signature field sets."),
    "partial_coverage": _l("The signature does not cover the whole file."),
    "modifications_unknown": _l("The changes made after signing could not be analysed."),
    "modified_after_signing": _l("The document was changed after signing beyond what is allowed."),
    "docmdp_violation": _l("The changes after signing break the certification's permissions."),
    "hidden_by_later_signature": _l("A later signature's stamp hides content this signature covers."),
    "overlay_unchecked": _l("Whether later stamps hide signed content could not be checked."),
    "malformed_signature": _l("The signature cannot be read."),
}
"""The validator's problem codes (appliance.signing.validate.PROBLEM_MESSAGES) in the reader's language."""


def state_label(state: ContractState) -> str:
    return str(STATES[state])


def party_status_label(status: PartyStatus) -> str:
    return str(PARTY_STATUSES[status])


def approval_status_label(status: ApprovalStatus) -> str:
    return str(APPROVAL_STATUSES[status])


def action_label(action: str) -> str:
    """An evidence action in words; one added later shows as its code until it gets a label."""
    return str(ACTIONS.get(action, action))


def validation_problem(code: str) -> str:
    return str(PROBLEMS.get(code, code))


def install_labels(app: Flask) -> None:
    app.add_template_filter(state_label, "state_label")
    app.add_template_filter(party_status_label, "party_status_label")
    app.add_template_filter(approval_status_label, "approval_status_label")
    app.add_template_filter(action_label, "action_label")
    app.add_template_filter(validation_problem, "validation_problem")
