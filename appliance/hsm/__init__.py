"""PKCS#11 key custody: every private key is generated and used inside the HSM.

`create_custody(cfg.hsm, cfg.secrets.hsm_pin)` builds the custody without touching the
module; the first call in each process loads it (see `appliance.hsm.pool`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import SecretStr

from appliance.config import HsmConfig
from appliance.hsm.api import (
    DIGEST_ALGORITHMS,
    HsmHealth,
    KeyAlgorithm,
    KeyCustody,
    KeyDeleter,
    KeyRef,
    KeySpec,
    default_digest_algorithm,
    signature_algorithm_name,
)
from appliance.hsm.errors import HsmUnavailable, KeyNotFound, KeyPolicyViolation, PinRejected

if TYPE_CHECKING:
    from appliance.hsm._pkcs11 import Pkcs11Custody

__all__ = [
    "DIGEST_ALGORITHMS",
    "HsmHealth",
    "HsmUnavailable",
    "KeyAlgorithm",
    "KeyCustody",
    "KeyDeleter",
    "KeyNotFound",
    "KeyPolicyViolation",
    "KeyRef",
    "KeySpec",
    "PinRejected",
    "check_hsm",
    "create_custody",
    "default_digest_algorithm",
    "signature_algorithm_name",
]


def create_custody(cfg: HsmConfig, pin: SecretStr | None) -> Pkcs11Custody:
    """The PKCS#11 custody for `cfg`; loads nothing until the first call.

    :raises HsmUnavailable: no PIN configured.
    """
    if pin is None:
        raise HsmUnavailable("no HSM PIN configured (hsm.pin_file or APPLIANCE_HSM_PIN)")
    # imported here so that importing appliance.hsm (e.g. by the composition root) does not
    # import python-pkcs11; the module itself is loaded even later, on first use
    from appliance.hsm._pkcs11 import Pkcs11Custody

    return Pkcs11Custody(cfg, pin)


def check_hsm(custody: KeyCustody) -> None:
    """Readiness check: returns when the token answers, else raises HsmUnavailable (never the PIN)."""
    health = custody.health()
    if not health.ok:
        raise HsmUnavailable(health.detail)
