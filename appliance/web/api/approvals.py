"""/api/v1/approvals and the approvals of contracts' seals: who approves a seal (org admins
set it), the approvals waiting for you and your decisions, and each seal's usage log."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, Field

from appliance.web.api.models import ContractOut, RequestBody, contract_out
from appliance.web.api.spec import responses, spec
from appliance.web.api.transport import api_blueprint, api_principal
from appliance.web.auth.principal import client_info
from appliance.web.context import current_services
from appliance.web.files import ID
from appliance.workflow.approvals import (
    MAX_APPROVERS,
    MAX_COMMENT,
    decide_approval,
    list_my_approvals,
    seal_usage_log,
    set_seal_approvers,
)

bp = api_blueprint("approvals_api", __name__)
CONTRACT_APPROVAL = f"/contracts/<{ID}:contract_id>/approvals/<{ID}:approval_id>"


def _one_line(value: str) -> str:
    if not value.isprintable():
        raise ValueError("a login name is one line of text")
    return value


class ApprovalItemOut(BaseModel):
    approval_id: int
    contract_id: int
    title: str
    seal_name: str
    initiator_name: str
    deadline: AwareDatetime | None


class ApprovalsOut(BaseModel):
    items: list[ApprovalItemOut]


class DecisionIn(RequestBody):
    comment: str = Field("", max_length=MAX_COMMENT, description="Why; required to reject.")


class ApproversIn(RequestBody):
    usernames: list[Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_one_line)]] = Field(
        max_length=MAX_APPROVERS,
        description="Login names of people of the seal's organisation, in the order they decide; "
        "empty: the seal needs no approval.",
    )


class ApproversOut(BaseModel):
    usernames: list[str]


class SealUsageOut(BaseModel):
    applied_at: AwareDatetime
    contract_id: int
    contract_title: str
    applied_by: str
    document_sha256: str = Field(description="The signed version the seal produced.")
    approval_ids: list[int]


class SealUsageLogOut(BaseModel):
    items: list[SealUsageOut]


@bp.get("/approvals")
@spec.validate(resp=responses(200, ApprovalsOut), tags=["approvals"], operation_id="my_approvals")
def mine() -> ApprovalsOut:
    """The uses of seals waiting for your approval, soonest deadline first"""
    items = list_my_approvals(current_services().workflow, api_principal())
    return ApprovalsOut(
        items=[
            ApprovalItemOut(
                approval_id=i.approval_id,
                contract_id=i.contract_id,
                title=i.title,
                seal_name=i.seal_name,
                initiator_name=i.initiator_name,
                deadline=i.deadline,
            )
            for i in items
        ]
    )


@bp.post(f"{CONTRACT_APPROVAL}/approve")
@spec.validate(
    resp=responses(200, ContractOut, 404, 409), tags=["approvals"], operation_id="approve_seal_use"
)
def approve(contract_id: int, approval_id: int, json: DecisionIn) -> ContractOut:
    """Approve the use of a seal; the last approval sends the contract out for signing"""
    return _decide(contract_id, approval_id, json, approve=True)


@bp.post(f"{CONTRACT_APPROVAL}/reject")
@spec.validate(resp=responses(200, ContractOut, 404, 409), tags=["approvals"], operation_id="reject_seal_use")
def reject(contract_id: int, approval_id: int, json: DecisionIn) -> ContractOut:
    """Reject the use of a seal, saying why: the contract is rejected and its initiator told"""
    return _decide(contract_id, approval_id, json, approve=False)


@bp.put(f"/seals/<{ID}:seal_id>/approvers")
@spec.validate(resp=responses(200, ApproversOut, 404), tags=["seals"], operation_id="set_seal_approvers")
def approvers(seal_id: int, json: ApproversIn) -> ApproversOut:
    """Set who approves the use of a seal, in order (org admins of its organisation)

    Contracts already sent keep the approvers they were sent with.
    """
    names = set_seal_approvers(
        current_services().workflow, api_principal(), client_info(), seal_id, list(json.usernames)
    )
    return ApproversOut(usernames=list(names))


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
                document_sha256=u.document_sha256,
                approval_ids=list(u.approval_ids),
            )
            for u in rows
        ]
    )


def _decide(contract_id: int, approval_id: int, body: DecisionIn, *, approve: bool) -> ContractOut:
    view = decide_approval(
        current_services().workflow,
        api_principal(),
        client_info(),
        contract_id,
        approval_id,
        approve=approve,
        comment=body.comment,
    )
    return contract_out(view)
