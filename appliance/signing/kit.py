"""The one bundle of what signing needs besides the caller's database session.

`build_services` builds it once from the config; callers hand it to
`appliance.signing.documents.resolve_signer` and `sign_stream` instead of passing the
custody, clock and config one by one. It is plain data and imports nothing heavy: every
command builds its services, and only signing should pay for loading pyHanko.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from appliance.clock import Clock
from appliance.config import AppConfig
from appliance.hsm.api import KeyCustody


@dataclass(frozen=True)
class SigningKit:
    config: AppConfig
    """The PKI context needs all of it (CRL refresh before signing, the internal TSA), and
    `tsa` says whether and how signatures are timestamped."""
    custody: KeyCustody | None
    """The HSM; None when no `hsm` section is configured, and then nothing can be signed
    (there is never a software-key fallback)."""
    clock: Clock
    """Signing time, certificate validity and CRL freshness are all judged at its time."""
    timestampers: dict[tuple[str, bytes], Any] = field(default_factory=dict, compare=False, repr=False)
    """pyHanko timestampers kept for the process, by TSA (`documents.load_timestamper`)."""
