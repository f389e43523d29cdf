"""Standing authorisations to apply a seal automatically: no keeper, no approval.

A seal's organisation admin names initiators and templates (`set_seal_automation`). When a
contract of a named initiator, or started from a named template, reaches the seal's turn, the
appliance applies the seal itself (appliance.workflow.automatic_seals) and the seal's approvers
are not asked. Every other contract that uses the seal follows its approvers and keepers.

A template's authorisation covers only the template's own file: a contract started from it
keeps the template's PDF as its original, which nobody can replace.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from appliance.auth.records import ClientInfo, Principal
from appliance.db import transaction
from appliance.errors import InvalidInput
from appliance.models import (
    Contract,
    ContractTemplate,
    Party,
    PartyKind,
    Seal,
    SealAutomation,
    TemplateRole,
    User,
)
from appliance.workflow.access import admins_seal, seal_colleague
from appliance.workflow.context import WorkflowContext
from appliance.workflow.store import log_user_action

MAX_AUTHORISATIONS = 50


class AutomaticFor(StrEnum):
    """What authorised an automatic use of a seal (kept in the usage log and the evidence)."""

    INITIATOR = "initiator"
    TEMPLATE = "template"


@dataclass(frozen=True)
class SealAutomationView:
    initiators: tuple[str, ...]
    """Login names of the initiators whose contracts get the seal automatically."""
    templates: tuple[tuple[int, str], ...]
    """(id, name) of the templates whose contracts get the seal automatically."""


def automatic_authorisation(session: Session, contract: Contract, party: Party) -> AutomaticFor | None:
    """What lets the appliance apply `party`'s seal to `contract` itself, or None."""
    if party.kind is not PartyKind.SEAL or party.seal_id is None:
        return None
    rows = session.scalars(select(SealAutomation).where(SealAutomation.seal_id == party.seal_id)).all()
    if any(row.initiator_id == contract.initiator_id for row in rows):
        return AutomaticFor.INITIATOR
    if contract.template_id is not None and any(row.template_id == contract.template_id for row in rows):
        template = session.get(ContractTemplate, contract.template_id)
        original = contract.versions[0] if contract.versions else None
        if template is not None and original is not None and original.sha256 == template.sha256:
            return AutomaticFor.TEMPLATE
    return None


def seal_automation(session: Session, seal_id: int) -> SealAutomationView:
    rows = session.execute(
        select(SealAutomation.id, User.username, ContractTemplate.id, ContractTemplate.name)
        .outerjoin(User, User.id == SealAutomation.initiator_id)
        .outerjoin(ContractTemplate, ContractTemplate.id == SealAutomation.template_id)
        .where(SealAutomation.seal_id == seal_id)
        .order_by(SealAutomation.id)
    ).all()
    return SealAutomationView(
        initiators=tuple(username for _, username, _, _ in rows if username is not None),
        templates=tuple((tid, name) for _, _, tid, name in rows if tid is not None),
    )


def set_seal_automation(
    ctx: WorkflowContext,
    principal: Principal,
    client: ClientInfo,
    seal_id: int,
    *,
    initiators: list[str],
    template_ids: list[int],
) -> SealAutomationView:
    """Replace who and what gets the seal automatically (both empty: nobody, nothing).

    :raises NotFound: no seal of the admin's organisation with that id.
    :raises Forbidden: not the organisation's admin.
    :raises InvalidInput: a name or template twice, too many, someone who has not signed in
        here or is of another organisation, or a template that does not use this seal.
    """
    now = ctx.clock.now()
    if len(initiators) + len(template_ids) > MAX_AUTHORISATIONS:
        raise InvalidInput(f"Authorise at most {MAX_AUTHORISATIONS} initiators and templates together.")
    if len(set(initiators)) != len(initiators) or len(set(template_ids)) != len(template_ids):
        raise InvalidInput("Name each initiator and each template once.")
    with transaction(ctx.sessions) as session:
        admin, seal = admins_seal(session, principal, seal_id)
        refusal = "has not signed in here, or cannot start contracts."
        people = [seal_colleague(session, seal, name, refusal=refusal) for name in initiators]
        templates = [_template(session, seal, template_id) for template_id in template_ids]
        session.execute(delete(SealAutomation).where(SealAutomation.seal_id == seal.id))
        session.add_all(SealAutomation(seal_id=seal.id, initiator_id=p.id, created_at=now) for p in people)
        session.add_all(SealAutomation(seal_id=seal.id, template_id=t.id, created_at=now) for t in templates)
        session.flush()
        log_user_action(
            session,
            "seal.automation_set",
            admin,
            client,
            now,
            "seal",
            seal.id,
            {
                "initiators": ",".join(p.username for p in people),
                "templates": ",".join(str(t.id) for t in templates),
            },
        )
        return seal_automation(session, seal.id)


def _template(session: Session, seal: Seal, template_id: int) -> ContractTemplate:
    template = session.get(ContractTemplate, template_id)
    if template is None or template.organisation_id != seal.organisation_id or template.retired_at:
        raise InvalidInput(f"The organisation has no template in use with the id {template_id}.")
    uses_seal = session.scalars(
        select(TemplateRole.id).where(
            TemplateRole.template_id == template.id, TemplateRole.seal_id == seal.id
        )
    ).first()
    if uses_seal is None:
        raise InvalidInput(f"The template {template.name} does not use the seal {seal.name}.")
    return template
