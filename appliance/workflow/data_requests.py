"""Requests about personal data: a person files one (correction, deletion where the law allows,
withdrawal of a consent); a system administrator sees the open ones with their deadline and
records the answer; the person sees the status and is told of the answer.

Data that comes from the corporate directory is corrected in the directory, not here: a
correction request of a directory person is marked so, and the answer tells them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.auth.records import ClientInfo, Principal
from appliance.db import transaction
from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.models import DataRequest, DataRequestKind, DataRequestStatus, User, UserSource
from appliance.notify import notify_user
from appliance.permissions import Action, require, roles_for
from appliance.workflow.access import active_user
from appliance.workflow.context import WorkflowContext
from appliance.workflow.store import log_user_action

MAX_TEXT = 2000
ANSWERERS = roles_for(Action.ANSWER_DATA_REQUESTS)
OPEN_PER_PERSON = 10
"""Open requests one person may have at a time: enough for any need, not a flood."""


@dataclass(frozen=True)
class DataRequestView:
    id: int
    kind: DataRequestKind
    text: str
    status: DataRequestStatus
    created_at: datetime
    due_at: datetime
    answered_at: datetime | None
    answer: str | None
    requester_name: str
    from_directory: bool
    """The requester's profile comes from the directory: a correction is made there."""


def add_working_days(start: datetime, days: int) -> datetime:
    """`start` moved on by `days` working days (Monday to Friday; public holidays are not known here)."""
    moment = start
    left = days
    while left > 0:
        moment += timedelta(days=1)
        if moment.weekday() < 5:
            left -= 1
    return moment


def file_request(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, kind: DataRequestKind, text: str
) -> DataRequestView:
    """:raises InvalidInput: no text, or too long. :raises Conflict: too many open already."""
    text = _text(text)
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        user = active_user(session, principal.user_id)
        open_ones = session.scalars(
            select(DataRequest.id).where(
                DataRequest.user_id == user.id, DataRequest.status == DataRequestStatus.OPEN
            )
        ).all()
        if len(open_ones) >= OPEN_PER_PERSON:
            raise Conflict(f"You have {len(open_ones)} open requests; wait for their answers first.")
        row = DataRequest(
            user_id=user.id,
            kind=kind,
            text=text,
            status=DataRequestStatus.OPEN,
            created_at=now,
            due_at=add_working_days(now, ctx.config.privacy.request_working_days),
        )
        session.add(row)
        session.flush()
        _log(session, "personal_data.request_filed", user, client, now, row)
        return _view(row, user)


def my_requests(ctx: WorkflowContext, principal: Principal) -> tuple[DataRequestView, ...]:
    with ctx.sessions() as session:
        user = active_user(session, principal.user_id)
        rows = session.scalars(
            select(DataRequest).where(DataRequest.user_id == user.id).order_by(DataRequest.id.desc())
        )
        return tuple(_view(row, user) for row in rows)


def open_requests(ctx: WorkflowContext, principal: Principal) -> tuple[DataRequestView, ...]:
    """The queue, the most urgent first. :raises Forbidden: not a system administrator."""
    with ctx.sessions() as session:
        _require_answerer(session, principal)
        rows = session.execute(
            select(DataRequest, User)
            .join(User, User.id == DataRequest.user_id)
            .where(DataRequest.status == DataRequestStatus.OPEN)
            .order_by(DataRequest.due_at, DataRequest.id)
        ).all()
        return tuple(_view(row, user) for row, user in rows)


def answer_request(
    ctx: WorkflowContext,
    principal: Principal,
    client: ClientInfo,
    request_id: int,
    outcome: DataRequestStatus,
    answer: str,
) -> DataRequestView:
    """Record the answer and tell the person.

    :raises Forbidden: not a system administrator. :raises NotFound: no such request.
    :raises Conflict: already answered. :raises InvalidInput: no answer text, or an open outcome.
    """
    if outcome is DataRequestStatus.OPEN:
        raise InvalidInput("Answer with done or refused.")
    answer = _text(answer)
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        admin = _require_answerer(session, principal)
        row = session.scalars(
            select(DataRequest).where(DataRequest.id == request_id).with_for_update()
        ).one_or_none()
        if row is None:
            raise NotFound("There is no request with that id.")
        if row.status is not DataRequestStatus.OPEN:
            raise Conflict("This request has been answered already.")
        requester = session.get(User, row.user_id)
        assert requester is not None  # a foreign key
        row.status, row.answer, row.answered_at = outcome, answer, now
        row.answered_by_id, row.answered_by_name = admin.id, admin.display_name
        view = _view(row, requester)
        notify_user(
            session,
            requester,
            "data_request_answered",
            {
                "outcome": outcome.value,
                "answer": answer,
                "directory": view.from_directory and row.kind is DataRequestKind.CORRECTION,
                "link": f"{ctx.config.private_cloud_address}/me",
            },
            now=now,
            mail=ctx.mail,
        )
        _log(session, "personal_data.request_answered", admin, client, now, row)
        return view


def _require_answerer(session: Session, principal: Principal) -> User:
    user = active_user(session, principal.user_id)
    require(
        user.role_set(),
        Action.ANSWER_DATA_REQUESTS,
        "Only a system administrator answers requests about personal data.",
    )
    return user


def _text(text: str) -> str:
    text = (text or "").strip()
    if not text or len(text) > MAX_TEXT:
        raise InvalidInput(f"Write 1 to {MAX_TEXT} characters.")
    return text


def _view(row: DataRequest, requester: User) -> DataRequestView:
    return DataRequestView(
        id=row.id,
        kind=row.kind,
        text=row.text,
        status=row.status,
        created_at=row.created_at,
        due_at=row.due_at,
        answered_at=row.answered_at,
        answer=row.answer,
        requester_name=requester.display_name,
        from_directory=requester.source is UserSource.DIRECTORY,
    )


def _log(
    session: Session, action: str, actor: User, client: ClientInfo, now: datetime, row: DataRequest
) -> None:
    # what was asked or answered stays out of the log: it is personal data itself
    details = {"kind": row.kind.value, "status": row.status.value, "due_at": row.due_at.isoformat()}
    log_user_action(session, action, actor, client, now, "data_request", row.id, details)
