"""Text a client sends that the login domain cannot take at all.

JSON can carry a lone surrogate ("\\ud800"), which is no character: it cannot be encoded as
UTF-8, so it can be neither stored nor sent to the directory. A NUL cannot be stored either
(PostgreSQL's text refuses it), and names are stored: the throttle counters and the operation
log record the name someone signed in with. Such input is refused as InvalidInput before
anything is counted or looked up; it cannot be a real person's name or password, so refusing
it uncounted gives an attacker nothing to guess with.
"""

from __future__ import annotations

from appliance.directory.api import is_text

__all__ = ["is_storable", "is_text"]


def is_storable(value: str) -> bool:
    """False when `value` cannot be stored in a text column: a lone surrogate or a NUL."""
    return "\x00" not in value and is_text(value)
