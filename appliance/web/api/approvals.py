"""/api/v1/approvals and the approvals of contracts' seals: the uses of seals waiting for
your approval, and your decisions."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, Field

from appliance.web.after_response import follow_up
from appliance.web.api.models import ContractOut, RequestBody, contract_out
from appliance.web.api.spec import responses, spec
from appliance.web.api.transport import api_blueprint, api_principal
from appliance.web.auth.principal import client_info
from appliance.web.context import current_services
from appliance.web.files import ID
from appliance.workflow.approvals import (
    MAX_COMMENT,
    decide_approval,
    list_my_approvals,
)

bp = api_blueprint("approvals_api", __name__)
CONTRACT_APPROVAL = f"/contracts/<{ID}:contract_id>/approvals/<{ID}:approval_id>"


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


def _decide(contract_id: int, approval_id: int, body: DecisionIn, *, approve: bool) -> ContractOut:
    workflow = current_services().workflow
    view = decide_approval(
        workflow,
        api_principal(),
        client_info(),
        contract_id,
        approval_id,
        approve=approve,
        comment=body.comment,
    )
    follow_up(workflow, view)
    return contract_out(view)
