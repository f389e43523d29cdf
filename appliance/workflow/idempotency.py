"""Idempotency keys: a retried create or sign returns the first answer and never acts twice.

The answer is stored in the transaction of the change it reports, so after a crash there
is either both or neither. A retry that arrives while the first is still running finds the
stored answer once it holds the contract's row lock; a sign retry checks again when it is about
to record its signature, and answers with the first one's result instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import TypeAdapter
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from appliance.db import rows_changed
from appliance.errors import InvalidInput, Unprocessable
from appliance.models import IdempotentResult

KEEP_FOR = timedelta(hours=24)
MAX_KEY = 200
T = TypeVar("T")


@dataclass(frozen=True)
class IdempotencyKey:
    key: str
    operation: str
    """What the request does, e.g. "sign:12:34": the same key for another request is refused."""
    request_sha256: str
    """Hash of the request's content (body and parameters)."""

    def __post_init__(self) -> None:
        if not 1 <= len(self.key) <= MAX_KEY or not self.key.isascii() or not self.key.isprintable():
            raise InvalidInput(f"The Idempotency-Key must be 1 to {MAX_KEY} printable ASCII characters.")


def replay(session: Session, user_id: int, key: IdempotencyKey | None, result_type: type[T]) -> T | None:
    """The stored answer to this key, or None; refuses a key used for a different request."""
    if key is None:
        return None
    row = session.scalars(
        select(IdempotentResult).where(IdempotentResult.user_id == user_id, IdempotentResult.key == key.key)
    ).one_or_none()
    if row is None:
        return None
    if row.operation != key.operation or row.request_sha256 != key.request_sha256:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used for a different request; use a new key."
        )
    return _adapter(result_type).validate_json(row.result)


def remember(
    session: Session, user_id: int, key: IdempotencyKey | None, result: T, result_type: type[T], now: datetime
) -> None:
    if key is None:
        return
    session.add(
        IdempotentResult(
            user_id=user_id,
            key=key.key,
            operation=key.operation,
            request_sha256=key.request_sha256,
            result=_adapter(result_type).dump_json(result).decode(),
            created_at=now,
        )
    )
    session.flush()


def purge_expired(session: Session, now: datetime) -> int:
    return rows_changed(session, delete(IdempotentResult).where(IdempotentResult.created_at < now - KEEP_FOR))


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(result_type: type[T]) -> TypeAdapter[T]:
    # building one walks the whole type (a contract view and its parties): once per type
    adapter = _ADAPTERS.get(result_type)
    if adapter is None:
        adapter = _ADAPTERS[result_type] = TypeAdapter(result_type)
    return adapter


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency_key_reused"
