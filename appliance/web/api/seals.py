"""/api/v1/seals for organisation admins: their organisation's seals (kind, state, certificate,
approvers), enabling, disabling and retiring them, who approves their use, whose contracts
the appliance seals itself, and each seal's
usage log (which its organisation's auditors read too). Creating a seal and its certificate
are in the certificates module."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, Field

from appliance.auth.provisioning import MAX_GROUP_DN
from appliance.models import SealKind
from appliance.web.api.models import CertificateOut, Id, RequestBody, certificate_out
from appliance.web.api.spec import responses, spec
from appliance.web.api.transport import api_blueprint, api_principal
from appliance.web.auth.principal import client_info
from appliance.web.context import current_services
from appliance.web.files import ID
from appliance.workflow.approvals import MAX_APPROVERS, set_seal_approvers
from appliance.workflow.seal_keepers import MAX_KEEPERS, set_seal_keepers
from appliance.workflow.seal_policy import MAX_AUTHORISATIONS, AutomaticFor, set_seal_automation
from appliance.workflow.seal_usage import seal_usage_log
from appliance.workflow.seals import (
    SealState,
    SealView,
    list_organisation_seals,
    organisation_seal,
    set_seal_state,
)

bp = api_blueprint("seals_api", __name__)


def _one_line(value: str) -> str:
    if not value.isprintable():
        raise ValueError("a login name is one line of text")
    return value


LoginName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_one_line)]


class TemplateRefOut(BaseModel):
    id: int
    name: str


class AutomationOut(BaseModel):
    """Whose contracts, and contracts of which templates, the appliance seals itself: no keeper,
    no approval."""

    initiators: list[str]
    templates: list[TemplateRefOut]


class AutomationIn(RequestBody):
    initiators: list[LoginName] = Field(
        max_length=MAX_AUTHORISATIONS,
        description="Login names of people of the seal's organisation whose contracts get the seal.",
    )
    template_ids: list[Id] = Field(
        max_length=MAX_AUTHORISATIONS,
        description="Templates of the organisation, each using this seal, whose contracts get it.",
    )


class KeepersIn(RequestBody):
    usernames: list[LoginName] = Field(
        max_length=MAX_KEEPERS, description="People of the seal's organisation who apply it."
    )
    groups: list[Annotated[str, Field(min_length=1, max_length=MAX_GROUP_DN)]] = Field(
        max_length=MAX_KEEPERS,
        description="Directory groups (DNs) whose members of the organisation apply it. Both lists "
        "empty: the organisation's seal keepers (the role) apply it.",
    )


class KeepersOut(BaseModel):
    usernames: list[str]
    groups: list[str] = Field(description="Normalised DNs.")


class SealDetailOut(BaseModel):
    id: int
    name: str
    kind: SealKind
    state: SealState = Field(description="active; disabled (enabled again at will); retired (for good).")
    has_image: bool
    certificate: CertificateOut | None
    certificate_usable: bool = Field(description="Its certificate may sign now.")
    renewable_from: AwareDatetime | None = Field(description="From when its certificate may be renewed.")
    approvers: list[str] = Field(
        description="Who approves its use, in order (login names, group DNs); empty: no approval."
    )
    keepers: KeepersOut = Field(description="Who applies it; none named: the organisation's seal keepers.")
    automation: AutomationOut
    created_at: AwareDatetime


class SealsOut(BaseModel):
    items: list[SealDetailOut]


class SealStateIn(RequestBody):
    state: SealState


class ApproversIn(RequestBody):
    approvers: list[
        Annotated[str, Field(min_length=1, max_length=MAX_GROUP_DN), AfterValidator(_one_line)]
    ] = Field(
        max_length=MAX_APPROVERS,
        description="In the order they decide: login names of people of the seal's organisation, or "
        "DNs of directory groups any of whose members of it decides that step; empty: no approval.",
    )


class ApproversOut(BaseModel):
    approvers: list[str] = Field(description="Login names, and normalised DNs of groups, in order.")


class SealUsageOut(BaseModel):
    applied_at: AwareDatetime
    contract_id: int
    contract_title: str
    applied_by: str = Field(description='Who applied it; "" when the appliance did.')
    automatic: str | None = Field(
        description="What authorised the appliance to apply it: initiator, template."
    )
    document_sha256: str = Field(description="The signed version the seal produced.")
    approval_ids: list[int]


class SealUsageLogOut(BaseModel):
    items: list[SealUsageOut]


@bp.get("/seals")
@spec.validate(resp=responses(200, SealsOut), tags=["seals"], operation_id="list_seals")
def seals() -> SealsOut:
    """Your organisation's seals (org admins), in use first"""
    return SealsOut(
        items=[_seal_out(v) for v in list_organisation_seals(current_services().workflow, api_principal())]
    )


@bp.get(f"/seals/<{ID}:seal_id>")
@spec.validate(resp=responses(200, SealDetailOut, 404), tags=["seals"], operation_id="get_seal")
def seal(seal_id: int) -> SealDetailOut:
    """One seal of your organisation (org admins)"""
    return _seal_out(organisation_seal(current_services().workflow, api_principal(), seal_id))


@bp.put(f"/seals/<{ID}:seal_id>/state")
@spec.validate(resp=responses(200, SealDetailOut, 404, 409), tags=["seals"], operation_id="set_seal_state")
def state(seal_id: int, json: SealStateIn) -> SealDetailOut:
    """Enable, disable or retire a seal (org admins)

    A disabled or retired seal is neither offered nor applied, on contracts already sent too.
    Retiring is for good (409 afterwards); seals are never deleted.
    """
    return _seal_out(
        set_seal_state(current_services().workflow, api_principal(), client_info(), seal_id, json.state)
    )


@bp.put(f"/seals/<{ID}:seal_id>/approvers")
@spec.validate(resp=responses(200, ApproversOut, 404), tags=["seals"], operation_id="set_seal_approvers")
def approvers(seal_id: int, json: ApproversIn) -> ApproversOut:
    """Set who approves the use of a seal, in order (org admins of its organisation)

    Contracts already sent keep the approvers they were sent with.
    """
    names = set_seal_approvers(
        current_services().workflow, api_principal(), client_info(), seal_id, list(json.approvers)
    )
    return ApproversOut(approvers=list(names))


@bp.put(f"/seals/<{ID}:seal_id>/keepers")
@spec.validate(resp=responses(200, KeepersOut, 404), tags=["seals"], operation_id="set_seal_keepers")
def keepers(seal_id: int, json: KeepersIn) -> KeepersOut:
    """Set who applies a seal: named people and directory groups (org admins)

    Applies to contracts already sent too. Group members are known from their last sign-in.
    """
    view = set_seal_keepers(
        current_services().workflow,
        api_principal(),
        client_info(),
        seal_id,
        usernames=list(json.usernames),
        groups=list(json.groups),
    )
    return KeepersOut(usernames=list(view.usernames), groups=list(view.groups))


@bp.put(f"/seals/<{ID}:seal_id>/automation")
@spec.validate(resp=responses(200, AutomationOut, 404), tags=["seals"], operation_id="set_seal_automation")
def automation(seal_id: int, json: AutomationIn) -> AutomationOut:
    """Set whose contracts, and which templates' contracts, the appliance seals itself (org admins)

    Those contracts skip the seal's approvers and need no keeper; the usage log says what
    authorised each such use. Empty lists: none.
    """
    view = set_seal_automation(
        current_services().workflow,
        api_principal(),
        client_info(),
        seal_id,
        initiators=list(json.initiators),
        template_ids=list(json.template_ids),
    )
    return AutomationOut(
        initiators=list(view.initiators), templates=[TemplateRefOut(id=i, name=n) for i, n in view.templates]
    )


@bp.get(f"/seals/<{ID}:seal_id>/usage")
@spec.validate(resp=responses(200, SealUsageLogOut, 404), tags=["seals"], operation_id="seal_usage_log")
def usage(seal_id: int) -> SealUsageLogOut:
    """The seal's usage log, newest first (admins and auditors of its organisation)"""
    rows = seal_usage_log(current_services().workflow, api_principal(), seal_id)
    return SealUsageLogOut(
        items=[
            SealUsageOut(
                applied_at=u.applied_at,
                contract_id=u.contract_id,
                contract_title=u.contract_title,
                applied_by=u.applied_by,
                automatic=AutomaticFor(u.automatic) if u.automatic else None,
                document_sha256=u.document_sha256,
                approval_ids=list(u.approval_ids),
            )
            for u in rows
        ]
    )


def _seal_out(view: SealView) -> SealDetailOut:
    return SealDetailOut(
        id=view.id,
        name=view.name,
        kind=view.kind,
        state=view.state,
        has_image=view.image_sha256 is not None,
        certificate=certificate_out(view.certificate) if view.certificate else None,
        certificate_usable=view.certificate_usable,
        renewable_from=view.renewable_from,
        approvers=list(view.approvers),
        keepers=KeepersOut(usernames=list(view.keepers.usernames), groups=list(view.keepers.groups)),
        automation=AutomationOut(
            initiators=list(view.automatic_initiators),
            templates=[TemplateRefOut(id=i, name=n) for i, n in view.automatic_templates],
        ),
        created_at=view.created_at,
    )
