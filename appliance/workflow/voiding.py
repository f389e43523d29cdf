"""Voiding a completed contract: the initiator starts a voiding agreement generated from the
original, every party of the original signs it (its seals after their approvers, as on any
contract), and its completion voids the original (appliance.workflow.completion).
"""

from __future__ import annotations

import json
import tempfile
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.auth.records import ClientInfo, Principal
from appliance.db import transaction
from appliance.models import (
    Contract,
    ContractState,
    DocumentVersion,
    Party,
    PartyStatus,
    Routing,
    SignatureField,
)
from appliance.signing.completion import VoidingFacts, render_voiding_agreement
from appliance.signing.normalise import normalise_upload
from appliance.workflow.access import active_user, load_visible, require_initiator
from appliance.workflow.approvals import send_out
from appliance.workflow.closing import checked_reason
from appliance.workflow.context import WorkflowContext
from appliance.workflow.drafts import check_ready
from appliance.workflow.errors import InvalidState
from appliance.workflow.states import Transition, next_state
from appliance.workflow.store import current_version, record
from appliance.workflow.views import ContractView, contract_view


def start_voiding(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, contract_id: int, reason: str
) -> ContractView:
    """Generate a voiding agreement for a completed contract and send it to all its parties."""
    reason = checked_reason(reason)
    now = ctx.clock.now()
    with ctx.sessions() as session:
        user = active_user(session, principal.user_id)
        original = load_visible(session, user, contract_id)
        require_initiator(user, original)
        next_state(original, Transition.VOID)  # refuses early what cannot be voided
        assert original.completed_at is not None
        facts = VoidingFacts(
            contract_id=original.id,
            title=original.title,
            final_sha256=current_version(original).sha256,
            completed_at=original.completed_at,
            parties=tuple(p.display_name for p in original.parties),
            requested_by=user.display_name,
            reason=reason,
            created_at=now,
        )
    with tempfile.TemporaryFile() as rendered, tempfile.TemporaryFile() as normalised:
        boxes = render_voiding_agreement(facts, rendered)
        rendered.seek(0)
        upload = normalise_upload(rendered, normalised, ctx.config.uploads)
        normalised.seek(0)
        sha256 = ctx.blobs.put(normalised)
    # an agreement that fails to commit leaves its PDF to the sweep (appliance.workflow.sweep)
    with transaction(ctx.sessions) as session:
        user = active_user(session, principal.user_id)
        original = load_visible(session, user, contract_id, lock=True)
        next_state(original, Transition.VOID)
        if _open_voiding(session, original.id):
            raise InvalidState("A voiding agreement for this contract is already out for signing.")
        agreement = Contract(
            title=f"Voiding agreement: {original.title}"[:300],
            organisation_id=original.organisation_id,
            initiator_id=user.id,
            state=ContractState.DRAFT,
            routing=Routing.PARALLEL,
            message=reason,
            deadline=now + timedelta(days=ctx.config.contracts.default_deadline_days),
            created_at=now,
            updated_at=now,
            state_changed_at=now,
            voids_contract_id=original.id,
        )
        session.add(agreement)
        session.flush()
        agreement.versions.append(
            DocumentVersion(
                number=1,
                sha256=sha256,
                size=upload.size,
                filename=f"voiding-agreement-{original.id}.pdf",
                page_sizes=json.dumps(upload.page_sizes),
                produced_by_id=None,
                created_at=now,
            )
        )
        for order, (party, box) in enumerate(zip(original.parties, boxes, strict=True), start=1):
            x1, y1, x2, y2 = box
            agreement.parties.append(
                Party(
                    kind=party.kind,
                    user_id=party.user_id if party.seal_id is None else None,
                    seal_id=party.seal_id,
                    routing_order=order,
                    status=PartyStatus.WAITING,
                    display_name=party.display_name,
                    fields=[SignatureField(page=0, x=x1, y=y1, width=x2 - x1, height=y2 - y1)],
                )
            )
        session.flush()
        record(
            session,
            agreement,
            "created",
            actor=user,
            client=client,
            now=now,
            details={"sha256": sha256, "voids_contract_id": original.id, "reason": reason},
        )
        # every party of the original signs it: one who no longer can (a disabled seal, a
        # cancelled account) makes it impossible, said before anything is sent
        check_ready(session, agreement, now)
        # its seals are approved as on any contract, then it goes out to every party at once
        send_out(ctx, session, agreement, actor=user, client=client, now=now)
        record(
            session,
            original,
            "voiding_started",
            actor=user,
            client=client,
            now=now,
            details={"voiding_agreement_id": agreement.id, "reason": reason},
        )
        return contract_view(session, agreement, user)


def _open_voiding(session: Session, original_id: int) -> bool:
    return (
        session.scalars(
            select(Contract.id).where(
                Contract.voids_contract_id == original_id,
                Contract.state.in_((ContractState.PENDING_APPROVAL, ContractState.SIGNING)),
            )
        ).first()
        is not None
    )
