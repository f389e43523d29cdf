"""Showing a cancelled person's pseudonym where the records name them.

Evidence events and operation-log records are hash-chained, so account cancellation cannot
rewrite the names, login names and addresses they hold. Instead it keeps the sha256 of each
such value (`FormerIdentity`), and whatever shows records (pages, API answers, exports) passes
them through `Pseudonyms`, which puts the person's pseudonym in place of:

* the actor of a record made by the cancelled person (by user id), and
* every string that equals one of their former values in a record made before the
  cancellation (names typed into a failed login, a party's name in the details).

A value is replaced only when it is whole: free text that mentions a name in passing (a
rejection reason) is shown as written, like the signed documents themselves.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from hashlib import sha256
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.audit.log import canonical_details
from appliance.models import FormerIdentity, User


def value_sha256(value: str) -> str:
    """What `FormerIdentity` keeps of a value: its sha256, over the value as written."""
    return sha256(value.encode()).hexdigest()


def remember_former_identity(session: Session, user_id: int, values: Iterable[str]) -> None:
    """Keep the hashes of the values that named a person, before cancellation overwrites them."""
    for digest in sorted({value_sha256(v) for v in values if v}):
        session.add(FormerIdentity(value_sha256=digest, user_id=user_id))


@dataclass(frozen=True)
class _Cancelled:
    pseudonym: str
    cancelled_at: datetime


@dataclass
class Pseudonyms:
    """The pseudonyms of the cancelled people that a batch of records may name."""

    by_user: dict[int, _Cancelled] = field(default_factory=dict)
    by_value: dict[str, _Cancelled] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        session: Session,
        user_ids: Iterable[int | None],
        values: Iterable[str],
        *,
        among: Collection[int] | None = None,
    ) -> Pseudonyms:
        """For records by `user_ids` that hold the strings `values` (read only when someone's
        account was cancelled at all: pass a generator). `among`: only these people's former
        values are looked for (a contract's people, so that a colleague of the same name on
        another contract keeps theirs)."""
        found = cls()
        if session.scalar(select(FormerIdentity.user_id).limit(1)) is None:
            return found
        ids = {i for i in user_ids if i is not None}
        digests = {value_sha256(v) for v in values if v}
        if ids:
            for user in session.scalars(
                select(User).where(User.id.in_(ids), User.anonymised_at.is_not(None))
            ):
                found.by_user[user.id] = _cancelled(user)
        if digests:
            query = (
                select(FormerIdentity.value_sha256, User)
                .join(User, User.id == FormerIdentity.user_id)
                .where(FormerIdentity.value_sha256.in_(digests), User.anonymised_at.is_not(None))
                # two cancelled people with one name: either pseudonym hides it, so keep the first
                .order_by(User.id)
            )
            if among is not None:
                query = query.where(User.id.in_(among))
            rows = session.execute(query).all()
            for digest, user in rows:
                found.by_value.setdefault(digest, _cancelled(user))
        return found

    def actor(self, user_id: int | None, name: str | None, at: datetime) -> str | None:
        """The name to show for a record's actor."""
        if user_id is not None:
            # a record of a known person is theirs: a colleague of the same name is not hidden
            return self.by_user[user_id].pseudonym if user_id in self.by_user else name
        return self.text(name, at) if name is not None else None

    def text(self, value: str, at: datetime) -> str:
        """`value`, or the pseudonym of the cancelled person it named at `at`."""
        if not self.by_value:
            return value
        cancelled = self.by_value.get(value_sha256(value))
        if cancelled is None or at >= cancelled.cancelled_at:
            return value
        return cancelled.pseudonym

    def values(self, value: Any, at: datetime) -> Any:
        """`text` over every string in a JSON-like value."""
        if isinstance(value, str):
            return self.text(value, at)
        if isinstance(value, dict):
            return {key: self.values(item, at) for key, item in value.items()}
        if isinstance(value, list):
            return [self.values(item, at) for item in value]
        return value

    def details(self, canonical_json: str, at: datetime) -> str:
        """A record's details JSON with the pseudonyms in; unchanged (byte for byte) when none applies."""
        if not self.by_value:
            return canonical_json
        parsed = json.loads(canonical_json)
        replaced = self.values(parsed, at)
        if replaced == parsed:
            return canonical_json
        return canonical_details(replaced)


def strings_in(value: Any) -> Iterable[str]:
    """Every string in a JSON-like value, keys excepted."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def _cancelled(user: User) -> _Cancelled:
    assert user.anonymised_at is not None  # the queries select cancelled accounts only
    return _Cancelled(user.username, user.anonymised_at)
