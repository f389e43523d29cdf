"""System admins register webhook endpoints per organisation, read their delivery logs and
redeliver by hand (the events and their delivery: appliance.notify.webhooks)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from appliance.auth.records import ClientInfo, Principal
from appliance.db import transaction
from appliance.errors import Conflict, InvalidInput, NotFound, Unavailable
from appliance.models import DeliveryStatus, Organisation, User, WebhookDelivery, WebhookEndpoint
from appliance.notify.webhook_transport import AllowList
from appliance.notify.webhooks import EVENT_TYPES
from appliance.permissions import Action, require
from appliance.workflow.access import active_user
from appliance.workflow.context import WorkflowContext
from appliance.workflow.store import log_user_action

MAX_ENDPOINTS_PER_ORGANISATION = 20
MAX_DESCRIPTION = 200
NOT_A_WEBHOOK_ADMIN = "Only a system admin manages webhooks."
NO_SUCH_ENDPOINT = "There is no webhook endpoint with that id."


@dataclass(frozen=True)
class EndpointView:
    id: int
    organisation_id: int
    organisation_name: str
    url: str
    event_types: tuple[str, ...]
    description: str
    created_at: datetime
    disabled_at: datetime | None
    pending: int
    failed: int


@dataclass(frozen=True)
class RegisteredEndpoint:
    endpoint: EndpointView
    secret: str
    """The signing key: shown this once, never again."""


@dataclass(frozen=True)
class DeliveryView:
    id: int
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None


def register_endpoint(
    ctx: WorkflowContext,
    principal: Principal,
    client: ClientInfo,
    organisation_id: int,
    url: str,
    event_types: Sequence[str],
    description: str = "",
) -> RegisteredEndpoint:
    """:raises InvalidInput: an URL outside `webhooks.allowed_hosts`, an unknown event type...
    :raises Conflict: the organisation has MAX_ENDPOINTS_PER_ORGANISATION already."""
    allowed = AllowList(ctx.config.webhooks)
    target = allowed.target(url)
    try:
        allowed.addresses(target)  # a name not listed must resolve into the allowed networks
    except Unavailable as exc:
        raise InvalidInput(
            f"{exc.public}: {exc.detail}. Check the URL, or ask IT to allow the host."
        ) from exc
    chosen = _event_types(event_types)
    description = description.strip()
    if len(description) > MAX_DESCRIPTION or not description.isprintable():
        raise InvalidInput(f"The description must be up to {MAX_DESCRIPTION} characters of text.")
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        admin = _admin(session, principal)
        if session.get(Organisation, organisation_id) is None:
            raise InvalidInput("There is no organisation with that id.")
        count = session.scalar(
            select(func.count(WebhookEndpoint.id)).where(
                WebhookEndpoint.organisation_id == organisation_id, WebhookEndpoint.disabled_at.is_(None)
            )
        )
        if (count or 0) >= MAX_ENDPOINTS_PER_ORGANISATION:
            raise Conflict(
                f"The organisation has {MAX_ENDPOINTS_PER_ORGANISATION} endpoints: disable one first."
            )
        secret = secrets.token_urlsafe(32)
        endpoint = WebhookEndpoint(
            organisation_id=organisation_id,
            url=url.strip(),
            event_types=json.dumps(chosen),
            secret=secret,
            description=description,
            created_by_id=admin.id,
            created_at=now,
        )
        session.add(endpoint)
        session.flush()
        facts = {"organisation_id": organisation_id, "url": endpoint.url, "event_types": chosen}
        log_user_action(
            session, "webhook.registered", admin, client, now, "webhook_endpoint", endpoint.id, facts
        )
        return RegisteredEndpoint(_view(session, endpoint), secret)


def list_endpoints(ctx: WorkflowContext, principal: Principal) -> tuple[EndpointView, ...]:
    with ctx.sessions() as session:
        _admin(session, principal)
        rows = session.scalars(
            select(WebhookEndpoint).order_by(WebhookEndpoint.disabled_at.is_not(None), WebhookEndpoint.id)
        )
        return tuple(_view(session, row) for row in rows)


def organisations(ctx: WorkflowContext, principal: Principal) -> tuple[tuple[int, str], ...]:
    """(id, name) of every organisation, by name: what an endpoint may be registered for."""
    with ctx.sessions() as session:
        _admin(session, principal)
        return tuple(
            (row.id, row.name) for row in session.scalars(select(Organisation).order_by(Organisation.name))
        )


def webhook_endpoint(ctx: WorkflowContext, principal: Principal, endpoint_id: int) -> EndpointView:
    with ctx.sessions() as session:
        _admin(session, principal)
        return _view(session, _endpoint(session, endpoint_id))


def disable_endpoint(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, endpoint_id: int
) -> EndpointView:
    """Queue nothing more for it (what is queued still goes out). Idempotent."""
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        admin = _admin(session, principal)
        endpoint = _endpoint(session, endpoint_id, lock=True)
        if endpoint.disabled_at is None:
            endpoint.disabled_at = now
            log_user_action(
                session, "webhook.disabled", admin, client, now, "webhook_endpoint", endpoint.id, {}
            )
        return _view(session, endpoint)


def deliveries(
    ctx: WorkflowContext, principal: Principal, endpoint_id: int, *, limit: int = 100
) -> tuple[DeliveryView, ...]:
    """The endpoint's delivery log, newest first."""
    with ctx.sessions() as session:
        _admin(session, principal)
        _endpoint(session, endpoint_id)
        rows = session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
        return tuple(_delivery_view(row) for row in rows)


def redeliver(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, endpoint_id: int, delivery_id: int
) -> DeliveryView:
    """Send a delivery again at the next run of the delivery job, with a fresh retry schedule.

    :raises Conflict: it is on its way already.
    """
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        admin = _admin(session, principal)
        _endpoint(session, endpoint_id)
        row = session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if row is None or row.endpoint_id != endpoint_id:
            raise NotFound("There is no such delivery of this endpoint.")
        if row.status is DeliveryStatus.PENDING:
            raise Conflict("The delivery is still being tried; it goes out at its next attempt.")
        row.status, row.attempts, row.next_attempt_at = DeliveryStatus.PENDING, 0, now
        facts = {"endpoint_id": endpoint_id, "event_id": row.event_id}
        log_user_action(session, "webhook.redelivered", admin, client, now, "webhook_delivery", row.id, facts)
        return _delivery_view(row)


def _admin(session: Session, principal: Principal) -> User:
    user = active_user(session, principal.user_id)
    require(user.role_set(), Action.MANAGE_WEBHOOKS, NOT_A_WEBHOOK_ADMIN)
    return user


def _endpoint(session: Session, endpoint_id: int, *, lock: bool = False) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id, with_for_update=lock)
    if endpoint is None:
        raise NotFound(NO_SUCH_ENDPOINT)
    return endpoint


def _event_types(chosen: Sequence[str]) -> list[str]:
    unknown = sorted(set(chosen) - set(EVENT_TYPES))
    if unknown:
        raise InvalidInput(
            f"Unknown event types: {', '.join(unknown)}. Choose from: {', '.join(EVENT_TYPES)}."
        )
    if not chosen:
        raise InvalidInput("Choose at least one event type.")
    return [t for t in EVENT_TYPES if t in chosen]


def _view(session: Session, endpoint: WebhookEndpoint) -> EndpointView:
    counts = dict(
        session.execute(
            select(WebhookDelivery.status, func.count(WebhookDelivery.id))
            .where(WebhookDelivery.endpoint_id == endpoint.id)
            .group_by(WebhookDelivery.status)
        ).all()
    )
    organisation = session.get_one(Organisation, endpoint.organisation_id)
    return EndpointView(
        id=endpoint.id,
        organisation_id=endpoint.organisation_id,
        organisation_name=organisation.name,
        url=endpoint.url,
        event_types=tuple(json.loads(endpoint.event_types)),
        description=endpoint.description,
        created_at=endpoint.created_at,
        disabled_at=endpoint.disabled_at,
        pending=counts.get(DeliveryStatus.PENDING, 0),
        failed=counts.get(DeliveryStatus.FAILED, 0),
    )


def _delivery_view(row: WebhookDelivery) -> DeliveryView:
    return DeliveryView(
        id=row.id,
        event_id=row.event_id,
        event_type=row.event_type,
        status=row.status,
        attempts=row.attempts,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        created_at=row.created_at,
        last_attempt_at=row.last_attempt_at,
        next_attempt_at=row.next_attempt_at,
        delivered_at=row.delivered_at,
    )
