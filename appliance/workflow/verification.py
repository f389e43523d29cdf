"""Checking any PDF, the appliance's or a foreign one, against what the appliance trusts."""

from __future__ import annotations

from typing import BinaryIO

from appliance.auth.records import Principal
from appliance.signing.trust import load_trust_material
from appliance.signing.validate import ValidationLimits, ValidationReport, validate_pdf
from appliance.workflow.access import active_user
from appliance.workflow.context import WorkflowContext


def verify_document(ctx: WorkflowContext, principal: Principal, stream: BinaryIO) -> ValidationReport:
    """The validation report of any PDF (the appliance's or a foreign one) against the
    appliance's trust roots and CRLs; nothing about the file is kept.

    :raises PdfRejected: not a PDF, encrypted, unreadable or too large to check.
    """
    with ctx.sessions() as session:
        active_user(session, principal.user_id)
        trust = load_trust_material(session)
    return validate_pdf(stream, trust, ctx.clock, ValidationLimits(max_bytes=ctx.config.uploads.max_bytes))
