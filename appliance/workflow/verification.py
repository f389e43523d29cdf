"""Checking any PDF, the appliance's or a foreign one, against what the appliance trusts."""

from __future__ import annotations

from dataclasses import replace
from typing import BinaryIO

from appliance.auth.records import Principal
from appliance.masking import mask_text
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
    report = validate_pdf(stream, trust, ctx.clock, ValidationLimits(max_bytes=ctx.config.uploads.max_bytes))
    return _masked(report)


def _masked(report: ValidationReport) -> ValidationReport:
    """The report with the signers' e-mail addresses (in their certificates' subjects) masked:
    whoever checks a file is seldom the person who signed it."""
    signatures = [
        replace(
            facts,
            signer_subject=mask_text(facts.signer_subject) if facts.signer_subject else None,
            chain=[replace(c, subject=mask_text(c.subject), name=mask_text(c.name)) for c in facts.chain],
        )
        for facts in report.signatures
    ]
    return replace(report, signatures=signatures)
