"""Checking a webhook delivery from the appliance (its docs/integrations.md)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

TOLERANCE_SECONDS = 300


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> bool:
    """True when `body` came from the appliance with this endpoint's `secret`, within five minutes."""
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        timestamp = int(lowered["esign-webhook-timestamp"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_SECONDS:
        return False
    expected = "v1=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, lowered.get("esign-webhook-signature", ""))
