"""/api/v1/me/cancellation: cancelling your own account, confirmed with an e-mailed code.

GET says what stands in the way; POST e-mails the code (409 with the list while contracts
wait for you or ones you sent are still open); POST /me/cancellation/confirm with the code
cancels the account for good: the token used stops working with it.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, Field

from appliance.web.api.models import Code, RequestBody
from appliance.web.api.spec import responses, spec
from appliance.web.api.transport import api_blueprint, api_principal
from appliance.web.auth.principal import client_info
from appliance.web.context import current_services
from appliance.workflow.cancellation import (
    BlockerKind,
    check_cancellation,
    confirm_cancellation,
    start_cancellation,
)

bp = api_blueprint("cancellation_api", __name__)


class BlockerOut(BaseModel):
    kind: BlockerKind = Field(
        description="to_sign: the contract waits for your signature or seal; to_approve: for your "
        "approval of a seal; initiated_open: you sent it and it is still out for approval or signing."
    )
    contract_id: int
    title: str


class CancellationCheckOut(BaseModel):
    blockers: list[BlockerOut] = Field(description="Empty when the account may be cancelled now.")
    pending_until: AwareDatetime | None = Field(
        description="A code was e-mailed and is good until then; confirm with it."
    )


class CancellationStartedOut(BaseModel):
    destination: str = Field(description="Where the code went, masked.")
    expires_at: datetime


class ConfirmCancellationIn(RequestBody):
    email_code: Code = Field(description="The code e-mailed to you when you started the cancellation.")


class CancelledOut(BaseModel):
    pseudonym: str = Field(description="What records call the cancelled account from now on.")


@bp.get("/me/cancellation")
@spec.validate(resp=responses(200, CancellationCheckOut), tags=["people"], operation_id="cancellation_check")
def check() -> CancellationCheckOut:
    """What stands in the way of cancelling your account now"""
    found = check_cancellation(current_services().workflow, api_principal())
    return CancellationCheckOut(
        blockers=[BlockerOut(kind=b.kind, contract_id=b.contract_id, title=b.title) for b in found.blockers],
        pending_until=found.pending_until,
    )


@bp.post("/me/cancellation")
@spec.validate(
    resp=responses(201, CancellationStartedOut, 409, 429, 503),
    tags=["people"],
    operation_id="start_cancellation",
)
def start() -> tuple[CancellationStartedOut, int]:
    """Start cancelling your account; a confirmation code is e-mailed to you

    409 (`cancellation_blocked`) while contracts wait for you or ones you sent are still open:
    GET lists them. Starting again replaces the code.
    """
    started = start_cancellation(current_services().workflow, api_principal(), client_info())
    return CancellationStartedOut(destination=started.destination, expires_at=started.expires_at), 201


@bp.post("/me/cancellation/confirm")
@spec.validate(
    resp=responses(200, CancelledOut, 400, 409), tags=["people"], operation_id="confirm_cancellation"
)
def confirm(json: ConfirmCancellationIn) -> CancelledOut:
    """Cancel your account for good with the e-mailed code

    Your personal data is removed, your sessions, tokens and certificates end, and signed
    contracts stay with their evidence. Wrong codes are counted; after too many, start again.
    """
    name = confirm_cancellation(current_services().workflow, api_principal(), client_info(), json.email_code)
    return CancelledOut(pseudonym=name)
