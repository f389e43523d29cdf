"""Errors of the key custody.

Messages are public (shown to operators and clients); the PKCS#11 cause stays in
`__cause__` and the logs. The PIN never appears in any of them.
"""

from appliance.errors import NotFound, Unavailable


class HsmUnavailable(Unavailable):
    """The HSM cannot serve now (module missing, token absent, device error, timeout)."""

    code = "hsm_unavailable"


class PinRejected(HsmUnavailable):
    """The token refused the configured PIN (wrong, locked or expired).

    Never retried: every retry uses up one of the token's PIN attempts.
    """

    code = "hsm_pin_rejected"


class KeyNotFound(NotFound):
    """No key pair with the given label / CKA_ID in the token."""

    code = "hsm_key_not_found"


class KeyPolicyViolation(HsmUnavailable):
    """A generated key did not carry the attributes we asked for; it was deleted."""

    code = "hsm_key_policy"
