"""/api/v1/webhooks: the integrations' webhook endpoints (system admins). Register one for an
organisation and its event types (the secret is in the answer, once), read its delivery log,
redeliver an event, disable it. docs/integrations.md says how deliveries are signed."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, Field, Strict

from appliance.models import DeliveryStatus
from appliance.notify.webhook_transport import MAX_URL_LENGTH
from appliance.notify.webhooks import EVENT_TYPES
from appliance.web.api.models import Id, RequestBody
from appliance.web.api.spec import responses, spec
from appliance.web.api.transport import api_blueprint, api_principal
from appliance.web.auth.principal import client_info
from appliance.web.context import current_services
from appliance.web.files import ID
from appliance.workflow.webhooks import (
    MAX_DESCRIPTION,
    DeliveryView,
    EndpointView,
    deliveries,
    disable_endpoint,
    list_endpoints,
    redeliver,
    register_endpoint,
    webhook_endpoint,
)

bp = api_blueprint("webhooks_api", __name__)
ENDPOINT = f"/webhooks/<{ID}:endpoint_id>"

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]


class EndpointOut(BaseModel):
    id: int
    organisation_id: int
    organisation_name: str
    url: str
    event_types: list[str]
    description: str
    created_at: AwareDatetime
    disabled_at: AwareDatetime | None
    pending: int = Field(description="Deliveries still being tried.")
    failed: int = Field(description="Deliveries given up, to redeliver by hand.")


class RegisteredEndpointOut(EndpointOut):
    secret: str = Field(description="The HMAC-SHA256 key deliveries are signed with: shown this once.")


class EndpointsOut(BaseModel):
    items: list[EndpointOut]


class NewEndpointIn(RequestBody):
    organisation_id: Id
    url: Annotated[str, Strict(), Field(min_length=1, max_length=MAX_URL_LENGTH)] = Field(
        description="https:// on a host of webhooks.allowed_hosts."
    )
    event_types: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES))
    description: Annotated[str, Strict(), Field(max_length=MAX_DESCRIPTION)] = ""


class DeliveryOut(BaseModel):
    id: int
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: AwareDatetime
    last_attempt_at: AwareDatetime | None
    next_attempt_at: AwareDatetime | None
    delivered_at: AwareDatetime | None


class DeliveriesOut(BaseModel):
    items: list[DeliveryOut]


@bp.get("/webhooks")
@spec.validate(resp=responses(200, EndpointsOut, 403), tags=["webhooks"], operation_id="list_webhooks")
def endpoints() -> EndpointsOut:
    """Every webhook endpoint, active ones first"""
    views = list_endpoints(current_services().workflow, api_principal())
    return EndpointsOut(items=[_endpoint_out(v) for v in views])


@bp.post("/webhooks")
@spec.validate(
    resp=responses(201, RegisteredEndpointOut, 400, 403, 409),
    tags=["webhooks"],
    operation_id="register_webhook",
)
def register(json: NewEndpointIn) -> tuple[RegisteredEndpointOut, int]:
    """Register an endpoint for an organisation's events; the answer holds its secret, once"""
    registered = register_endpoint(
        current_services().workflow,
        api_principal(),
        client_info(),
        json.organisation_id,
        json.url,
        list(json.event_types),
        json.description,
    )
    body = _endpoint_out(registered.endpoint).model_dump()
    return RegisteredEndpointOut(**body, secret=registered.secret), 201


@bp.get(ENDPOINT)
@spec.validate(resp=responses(200, EndpointOut, 403, 404), tags=["webhooks"], operation_id="get_webhook")
def endpoint(endpoint_id: int) -> EndpointOut:
    """One webhook endpoint"""
    return _endpoint_out(webhook_endpoint(current_services().workflow, api_principal(), endpoint_id))


@bp.post(f"{ENDPOINT}/disable")
@spec.validate(resp=responses(200, EndpointOut, 403, 404), tags=["webhooks"], operation_id="disable_webhook")
def disable(endpoint_id: int) -> EndpointOut:
    """Queue nothing more for the endpoint (what is queued still goes out)"""
    view = disable_endpoint(current_services().workflow, api_principal(), client_info(), endpoint_id)
    return _endpoint_out(view)


@bp.get(f"{ENDPOINT}/deliveries")
@spec.validate(
    resp=responses(200, DeliveriesOut, 403, 404), tags=["webhooks"], operation_id="list_webhook_deliveries"
)
def delivery_log(endpoint_id: int) -> DeliveriesOut:
    """The endpoint's delivery log, newest first: status, attempts, the last answer"""
    views = deliveries(current_services().workflow, api_principal(), endpoint_id)
    return DeliveriesOut(items=[_delivery_out(v) for v in views])


@bp.post(f"{ENDPOINT}/deliveries/<{ID}:delivery_id>/redeliver")
@spec.validate(
    resp=responses(200, DeliveryOut, 403, 404, 409), tags=["webhooks"], operation_id="redeliver_webhook"
)
def redeliver_one(endpoint_id: int, delivery_id: int) -> DeliveryOut:
    """Send an event again at the delivery job's next run, with a fresh retry schedule"""
    view = redeliver(current_services().workflow, api_principal(), client_info(), endpoint_id, delivery_id)
    return _delivery_out(view)


def _endpoint_out(view: EndpointView) -> EndpointOut:
    return EndpointOut(
        id=view.id,
        organisation_id=view.organisation_id,
        organisation_name=view.organisation_name,
        url=view.url,
        event_types=list(view.event_types),
        description=view.description,
        created_at=view.created_at,
        disabled_at=view.disabled_at,
        pending=view.pending,
        failed=view.failed,
    )


def _delivery_out(view: DeliveryView) -> DeliveryOut:
    return DeliveryOut(
        id=view.id,
        event_id=view.event_id,
        event_type=view.event_type,
        status=view.status,
        attempts=view.attempts,
        last_status_code=view.last_status_code,
        last_error=view.last_error,
        created_at=view.created_at,
        last_attempt_at=view.last_attempt_at,
        next_attempt_at=view.next_attempt_at,
        delivered_at=view.delivered_at,
    )
