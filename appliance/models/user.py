"""People, their roles, web sessions and API tokens. No directory password is ever stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from appliance.models.base import Base, enum_column
from appliance.models.enums import Role, UserSource
from appliance.models.org import Organisation


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[UserSource] = mapped_column(enum_column(UserSource, 20))
    directory_dn: Mapped[str | None] = mapped_column(String(1000), unique=True)
    directory_uuid: Mapped[str | None] = mapped_column(String(64), unique=True)
    """The directory's immutable id of the person (entryUUID / objectGUID): what a directory
    row is keyed on, since login names and DNs are reused and moved."""
    last_directory_check_at: Mapped[datetime | None]
    """When the directory was last asked whether this person may still sign in."""
    display_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(50))
    id_number: Mapped[str | None] = mapped_column(String(50))
    department: Mapped[str | None] = mapped_column(String(200))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    """argon2 hash, for the local break-glass administrator only."""
    locale: Mapped[str | None] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]
    left_directory_at: Mapped[datetime | None]
    """Set by directory sync when the person is no longer in the directory; records are kept."""
    anonymised_at: Mapped[datetime | None]
    """Set by account cancellation; personal fields are then irreversibly overwritten."""
    frozen_at: Mapped[datetime | None]
    """Set when the person froze their own account (suspected misuse): no sign-in, session,
    token or signature until an administrator lifts it (appliance.auth.freeze)."""

    organisation: Mapped[Organisation | None] = relationship()
    roles: Mapped[list[UserRole]] = relationship(cascade="all, delete-orphan", lazy="selectin")

    def role_set(self) -> frozenset[Role]:
        return frozenset(r.role for r in self.roles)


class UserRole(Base):
    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[Role] = mapped_column(enum_column(Role, 30), primary_key=True)


class UserSession(Base):
    """Server-side record of a web session, so logout and disabling really end it."""

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    """sha256 of the random session id held in the cookie."""
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    client_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """sha256 of the token; the token itself is shown once and never stored."""
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class LoginThrottle(Base):
    """Failed-login counters per account and per client address, shared by all workers and nodes."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    """What is counted: a client address, a login name or a directory entry, alone or per address
    (see appliance.auth.throttle)."""
    failures: Mapped[int] = mapped_column(default=0)
    window_started_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]
    lockouts: Mapped[int] = mapped_column(default=0)
    """Lockouts in a row without a quiet day between them; each one lasts twice as long."""


class PendingCancellation(Base):
    """A cancellation the person started and has not yet confirmed with the e-mailed code."""

    __tablename__ = "pending_cancellations"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64))
    """Random and fresh on every start: the e-mailed code is an HMAC over it
    (appliance.workflow.account_codes), so starting again replaces the code."""
    started_at: Mapped[datetime]


class FormerIdentity(Base):
    """sha256 of a value that named a person before their account was cancelled (login name,
    name, e-mail address, phone or ID number), and never the value itself.

    The hash-chained evidence and operation log keep such values as they were written; these
    hashes let every page, answer and export show the person's pseudonym in their place
    (appliance.audit.pseudonyms).
    """

    __tablename__ = "former_identities"

    value_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)


class UserGroup(Base):
    """A directory group the person was in at their last sign-in or directory sync (the
    normalised DN, nested groups included): what a seal's keeper groups are matched against."""

    __tablename__ = "user_groups"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    group_dn: Mapped[str] = mapped_column(String(500), primary_key=True)
