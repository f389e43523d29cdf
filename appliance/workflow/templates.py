"""Contract templates: a draft's PDF, fields and party roles, saved to start contracts from.

An initiator saves one of their drafts as a template (`save_template`): its PDF, routing and
message, and one role per party. A person role is filled in with someone when a contract
starts; a seal role keeps its seal. A template belongs to the organisation of whoever saved
it: that organisation's people list it and start contracts from it (`start_from_template`,
in one transaction, sent at once when asked); the person who saved it and the
organisation's admins retire it (`retire_template`). A template is never deleted: contracts
started from it name it, and a seal's admin may have authorised it for automatic sealing
(appliance.workflow.seal_policy). Anyone else asking for a template's id is told it does
not exist, as for an id that does not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.auth.records import ClientInfo, Principal
from appliance.db import transaction
from appliance.errors import Conflict, Forbidden, InvalidInput, NotFound
from appliance.models import (
    ContractState,
    ContractTemplate,
    DocumentVersion,
    PartyKind,
    Routing,
    Seal,
    TemplateRole,
    User,
)
from appliance.permissions import Action, scope_of
from appliance.workflow.access import active_user, load_visible, require_initiator
from appliance.workflow.approvals import send_out
from appliance.workflow.context import WorkflowContext
from appliance.workflow.drafts import (
    EXCLUDED_KINDS,
    MAX_MESSAGE,
    MAX_TITLE,
    NewField,
    NewParty,
    attach_party,
    check_ready,
    confirm_not_excluded,
    deadline_from,
    open_draft,
    optional_text,
    required_text,
)
from appliance.workflow.store import current_version, log_user_action, record
from appliance.workflow.views import ContractView, contract_view

MAX_NAME = 200
MAX_LABEL = 100
MAX_TEMPLATES = 500
"""Listed at once; far more than an organisation keeps in use."""
TEMPLATE_NOT_FOUND = "There is no template of your organisation with that id."


@dataclass(frozen=True)
class RoleView:
    id: int
    number: int
    label: str
    kind: PartyKind
    seal_id: int | None
    seal_name: str | None
    routing_order: int
    fields: tuple[NewField, ...]
    """Where the role's stamps go (1-based pages)."""


@dataclass(frozen=True)
class TemplateView:
    id: int
    name: str
    filename: str
    sha256: str
    size: int
    routing: Routing
    message: str | None
    created_by: str
    created_at: datetime
    retired_at: datetime | None
    roles: tuple[RoleView, ...]
    page_sizes: tuple[tuple[float, float], ...]
    yours_to_retire: bool


@dataclass(frozen=True)
class StartFromTemplate:
    title: str
    not_excluded: bool
    """The initiator's confirmation, as for an uploaded contract (drafts.EXCLUDED_KINDS)."""
    people: Mapping[int, str]
    """Login name of the person for each person role, by role id."""
    deadline: datetime | None = None
    message: str | None = None
    """None: the template's message."""
    send: bool = False
    """Send it at once (for signing, or to its seals' approvers) instead of leaving a draft."""


def save_template(
    ctx: WorkflowContext,
    principal: Principal,
    client: ClientInfo,
    contract_id: int,
    name: str,
    labels: Mapping[int, str] | None = None,
) -> TemplateView:
    """Save the initiator's draft as a template of their organisation; `labels` names the role
    of each party by party id (default: "Signer 1", "Signer 2", ...; a seal keeps its name).

    :raises NotFound: no draft of theirs with that id.
    :raises Conflict: the contract is no longer a draft, or has no parties.
    """
    now = ctx.clock.now()
    clean_name = required_text(name, "template name", MAX_NAME)
    labels = labels or {}
    with transaction(ctx.sessions) as session:
        user = active_user(session, principal.user_id)
        if user.organisation_id is None:
            raise Forbidden("Templates belong to an organisation, and the directory puts you in none.")
        contract = load_visible(session, user, contract_id)
        require_initiator(user, contract)
        if contract.state is not ContractState.DRAFT:
            raise Conflict("Only a draft can be saved as a template.")
        if not contract.parties:
            raise Conflict("Add the parties and their fields before saving the draft as a template.")
        unknown = set(labels) - {p.id for p in contract.parties}
        if unknown:
            raise InvalidInput(f"The draft has no party with the id {min(unknown)}.")
        original = current_version(contract)
        template = ContractTemplate(
            organisation_id=user.organisation_id,
            name=clean_name,
            created_by_id=user.id,
            sha256=original.sha256,
            size=original.size,
            filename=original.filename,
            page_sizes=original.page_sizes,
            routing=contract.routing,
            message=contract.message,
            created_at=now,
        )
        signers = 0
        for number, party in enumerate(contract.parties, 1):
            if party.kind is PartyKind.PERSON:
                signers += 1
                default = f"Signer {signers}"
            else:
                default = party.display_name
            label = required_text(labels.get(party.id) or default, "role name", MAX_LABEL)
            template.roles.append(
                TemplateRole(
                    number=number,
                    label=label,
                    kind=party.kind,
                    seal_id=party.seal_id if party.kind is PartyKind.SEAL else None,
                    routing_order=party.routing_order,
                    fields=json.dumps([[f.page, f.x, f.y, f.width, f.height] for f in party.fields]),
                )
            )
        session.add(template)
        session.flush()
        log_user_action(
            session,
            "template.saved",
            user,
            client,
            now,
            "template",
            template.id,
            {"from_contract": contract.id, "sha256": template.sha256, "roles": len(template.roles)},
        )
        return _view(session, template, user)


def list_templates(
    ctx: WorkflowContext, principal: Principal, *, include_retired: bool = False
) -> tuple[TemplateView, ...]:
    """The templates of the person's organisation, by name."""
    with ctx.sessions() as session:
        user = active_user(session, principal.user_id)
        if user.organisation_id is None:
            return ()
        query = select(ContractTemplate).where(ContractTemplate.organisation_id == user.organisation_id)
        if not include_retired:
            query = query.where(ContractTemplate.retired_at.is_(None))
        templates = session.scalars(
            query.order_by(ContractTemplate.name, ContractTemplate.id).limit(MAX_TEMPLATES)
        ).all()
        return tuple(_view(session, template, user) for template in templates)


def get_template(ctx: WorkflowContext, principal: Principal, template_id: int) -> TemplateView:
    with ctx.sessions() as session:
        user = active_user(session, principal.user_id)
        return _view(session, _template_of(session, user, template_id), user)


def retire_template(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, template_id: int
) -> TemplateView:
    """No new contracts start from the template; those started already are unchanged.

    :raises Forbidden: neither the person who saved it nor an admin of its organisation.
    """
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        user = active_user(session, principal.user_id)
        template = _template_of(session, user, template_id)
        if not _may_retire(user, template):
            raise Forbidden("Only the person who saved the template or an organisation admin can retire it.")
        if template.retired_at is None:
            template.retired_at = now
            log_user_action(session, "template.retired", user, client, now, "template", template.id, {})
        return _view(session, template, user)


def start_from_template(
    ctx: WorkflowContext,
    principal: Principal,
    client: ClientInfo,
    template_id: int,
    spec: StartFromTemplate,
) -> ContractView:
    """A new contract with the template's PDF, fields and seals, and `spec.people` in its
    person roles; a draft, or sent at once with `spec.send`. All of it or nothing.

    :raises NotFound: no template in use of the person's organisation with that id.
    :raises InvalidInput: a person role left empty, or filled for a role it does not have.
    """
    now = ctx.clock.now()
    confirm_not_excluded(spec.not_excluded)
    title = required_text(spec.title, "title", MAX_TITLE)
    deadline = deadline_from(ctx, spec.deadline, now)
    with transaction(ctx.sessions) as session:
        user = active_user(session, principal.user_id)
        template = _template_of(session, user, template_id)
        if template.retired_at is not None:
            raise Conflict("This template is retired: start the contract from another one.")
        person_roles = {r.id for r in template.roles if r.kind is PartyKind.PERSON}
        strangers = set(spec.people) - person_roles
        if strangers:
            raise InvalidInput(f"The template has no person role with the id {min(strangers)}.")
        missing = [r.label for r in template.roles if r.id in person_roles and not spec.people.get(r.id)]
        if missing:
            raise InvalidInput(f"Name the person for: {', '.join(missing)}.")
        message = optional_text(spec.message, "message", MAX_MESSAGE) if spec.message else template.message
        contract = open_draft(
            session,
            user,
            title=title,
            routing=template.routing,
            message=message,
            deadline=deadline,
            original=DocumentVersion(
                number=1,
                sha256=template.sha256,
                size=template.size,
                filename=template.filename,
                page_sizes=template.page_sizes,
                produced_by_id=user.id,
                created_at=now,
            ),
            now=now,
            template_id=template.id,
        )
        record(
            session,
            contract,
            "created",
            actor=user,
            client=client,
            now=now,
            details={
                "sha256": template.sha256,
                "size": template.size,
                "template_id": template.id,
                "template": template.name,
                "confirmed_not_excluded": list(EXCLUDED_KINDS),
            },
        )
        for role in template.roles:
            attach_party(
                ctx, session, contract, _party_of(role, spec.people), actor=user, client=client, now=now
            )
        if spec.send:
            check_ready(session, contract, now)
            send_out(ctx, session, contract, actor=user, client=client, now=now)
        return contract_view(session, contract, user)


def _party_of(role: TemplateRole, people: Mapping[int, str]) -> NewParty:
    fields = _fields_of(role)
    if role.kind is PartyKind.PERSON:
        return NewParty(
            kind=role.kind, fields=fields, username=people[role.id], routing_order=role.routing_order
        )
    return NewParty(kind=role.kind, fields=fields, seal_id=role.seal_id, routing_order=role.routing_order)


def _fields_of(role: TemplateRole) -> tuple[NewField, ...]:
    return tuple(
        NewField(page=page + 1, x=x, y=y, width=width, height=height)
        for page, x, y, width, height in json.loads(role.fields)
    )


def _template_of(session: Session, user: User, template_id: int) -> ContractTemplate:
    template = session.get(ContractTemplate, template_id)
    if template is None or user.organisation_id is None or template.organisation_id != user.organisation_id:
        raise NotFound(TEMPLATE_NOT_FOUND)
    return template


def _may_retire(user: User, template: ContractTemplate) -> bool:
    return template.created_by_id == user.id or scope_of(user.role_set(), Action.MANAGE_TEMPLATES) is not None


def _view(session: Session, template: ContractTemplate, viewer: User) -> TemplateView:
    seal_names: dict[int, str] = {
        seal_id: name
        for seal_id, name in session.execute(
            select(Seal.id, Seal.name).where(Seal.id.in_([r.seal_id for r in template.roles if r.seal_id]))
        )
    }
    author = session.get(User, template.created_by_id)
    return TemplateView(
        id=template.id,
        name=template.name,
        filename=template.filename,
        sha256=template.sha256,
        size=template.size,
        routing=template.routing,
        message=template.message,
        created_by=author.display_name if author else "",
        created_at=template.created_at,
        retired_at=template.retired_at,
        roles=tuple(
            RoleView(
                id=role.id,
                number=role.number,
                label=role.label,
                kind=role.kind,
                seal_id=role.seal_id,
                seal_name=seal_names.get(role.seal_id) if role.seal_id else None,
                routing_order=role.routing_order,
                fields=_fields_of(role),
            )
            for role in template.roles
        ),
        page_sizes=tuple((w, h) for w, h in json.loads(template.page_sizes)),
        yours_to_retire=_may_retire(viewer, template),
    )
