"""Who may see and act on a contract.

A contract is visible to its initiator, its parties (a person party's signer; for a seal,
the seal keepers of the seal's organisation), the approvers of its seals, the org admins and
auditors of the contract's organisation (read only), and nobody else: to anyone else its id answers 404,
exactly like an id that does not exist, so ids cannot be probed. Archived contracts are
the archive admins' alone (DESIGN.md section 3, retention).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, and_, exists, or_, select
from sqlalchemy.orm import Session

from appliance.auth.records import Principal
from appliance.errors import Forbidden, InvalidInput, NotFound
from appliance.models import (
    Contract,
    Party,
    PartyKind,
    Seal,
    SealApproval,
    SealKeeper,
    User,
    UserGroup,
    UserSource,
)
from appliance.permissions import Action, require, scope_of
from appliance.workflow.store import CONTRACT_NOT_FOUND


def active_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or not user.active or user.anonymised_at is not None:
        raise Forbidden("Your account cannot use contracts; ask your administrator.")
    if user.frozen_at is not None:
        raise Forbidden("Your account is frozen. An administrator of your organisation can lift it.")
    return user


def visible_clause(user: User) -> ColumnElement[bool]:
    """SQL condition: the contract is visible to `user`."""
    roles = user.role_set()
    as_party = exists().where(
        Party.contract_id == Contract.id,
        or_(
            and_(Party.kind == PartyKind.PERSON, Party.user_id == user.id),
            and_(Party.kind == PartyKind.SEAL, Party.seal_id.in_(kept_seals(user))),
        ),
    )
    as_approver = exists().where(SealApproval.contract_id == Contract.id, approves_clause(user))
    clauses: list[ColumnElement[bool]] = [Contract.initiator_id == user.id, as_party, as_approver]
    if scope_of(roles, Action.READ_CONTRACTS) is not None and user.organisation_id is not None:
        clauses.append(Contract.organisation_id == user.organisation_id)
    visible = or_(*clauses)
    if scope_of(roles, Action.READ_ARCHIVE) is not None:
        return or_(visible, Contract.archived_at.is_not(None))
    return and_(visible, Contract.archived_at.is_(None))


def load_visible(session: Session, user: User, contract_id: int, *, lock: bool = False) -> Contract:
    """The contract if `user` may see it; NotFound otherwise (same as a missing id)."""
    query = select(Contract).where(Contract.id == contract_id, visible_clause(user))
    if lock:
        query = query.with_for_update(of=Contract)
    contract = session.scalars(query).one_or_none()
    if contract is None:
        raise NotFound(CONTRACT_NOT_FOUND)
    return contract


def approves_clause(user: User) -> ColumnElement[bool]:
    """SQL: the approval (a SealApproval row) is `user`'s to decide or to have decided: named to
    them, or to a directory group they are in, for a seal of their organisation."""
    by_group = and_(
        SealApproval.group_dn.in_(_groups_of(user)),
        SealApproval.seal_id.in_(select(Seal.id).where(Seal.organisation_id == user.organisation_id)),
    )
    return or_(SealApproval.approver_id == user.id, by_group)


def _groups_of(user: User) -> Select[str]:
    return select(UserGroup.group_dn).where(UserGroup.user_id == user.id)


def kept_seals(user: User) -> Select[int]:
    """SQL: the ids of the seals of `user`'s organisation that they apply: those naming them as a
    keeper, in person or by a directory group they are in, and, when they hold the seal keeper
    role, those naming no keeper at all."""
    named = select(SealKeeper.seal_id).where(
        or_(SealKeeper.user_id == user.id, SealKeeper.group_dn.in_(_groups_of(user)))
    )
    ways: list[ColumnElement[bool]] = [Seal.id.in_(named)]
    if scope_of(user.role_set(), Action.APPLY_SEALS) is not None:
        ways.append(~exists().where(SealKeeper.seal_id == Seal.id))
    return select(Seal.id).where(Seal.organisation_id == user.organisation_id, or_(*ways))


def may_act_for(session: Session, user: User, party: Party) -> bool:
    """Whether `user` signs (or rejects) for `party`."""
    if party.kind is PartyKind.PERSON:
        return party.user_id == user.id
    if party.seal_id is None:
        return False
    return bool(session.scalar(kept_seals(user).where(Seal.id == party.seal_id).exists().select()))


def require_initiator(user: User, contract: Contract) -> None:
    if contract.initiator_id != user.id:
        raise Forbidden("Only the person who started this contract can do that.")


NOT_A_SEAL_ADMIN = "Only an organisation's admin manages its seals."


def organisation_member(session: Session, principal: Principal, action: Action, refusal: str) -> User:
    """The person, who may do `action` in the organisation the directory puts them in.

    :raises Forbidden: with `refusal`, when they are in no organisation or may not.
    """
    user = active_user(session, principal.user_id)
    if user.organisation_id is None:
        raise Forbidden(refusal)
    require(user.role_set(), action, refusal)
    return user


def admins_seal(session: Session, principal: Principal, seal_id: int) -> tuple[User, Seal]:
    """The admin and the seal of their organisation they manage; NotFound for any other seal."""
    user = active_user(session, principal.user_id)
    seal = session.get(Seal, seal_id)
    if seal is None or seal.organisation_id != user.organisation_id:
        raise NotFound("There is no seal of your organisation with that id.")
    require(user.role_set(), Action.MANAGE_SEALS, NOT_A_SEAL_ADMIN)
    return user, seal


def seal_colleague(session: Session, seal: Seal, username: str, *, refusal: str) -> User:
    """The person of the seal's organisation with the login name `username`, who has signed in
    here and can act; InvalidInput (`refusal` after the name, or "not in the organisation")."""
    person = session.scalars(
        select(User).where(User.username == username, User.source == UserSource.DIRECTORY)
    ).one_or_none()
    if person is None or not person.active or person.anonymised_at is not None:
        raise InvalidInput(f"{username!r} {refusal}")
    if person.organisation_id != seal.organisation_id:
        raise InvalidInput(f"{person.display_name} is not in the seal's organisation.")
    return person
