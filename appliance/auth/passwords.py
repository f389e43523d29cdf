"""Password hashing (argon2id) for the break-glass local administrator only.

Directory passwords are never stored or hashed here: the directory checks them.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from appliance.errors import InvalidInput

MIN_LENGTH = 14
_hasher = PasswordHasher()
# Verified against when the account has no usable hash, so a missing account costs
# the same time as a wrong password.
_DUMMY_HASH = _hasher.hash("appliance-timing-equaliser")


def check_strength(password: str, username: str) -> None:
    """:raises InvalidInput: naming what is wrong with a proposed local admin password."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"at least {MIN_LENGTH} characters")
    classes = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if classes < 3:
        problems.append("at least three of: lower case, upper case, digits, symbols")
    if username and username.lower() in password.lower():
        problems.append("must not contain the user name")
    if len(set(password)) < 6:
        problems.append("too many repeated characters")
    if problems:
        raise InvalidInput("The password is too weak: " + "; ".join(problems) + ".")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
