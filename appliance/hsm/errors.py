"""Errors of the key custody.

The text given is the detail for the log and the operator's CLI (module paths and token
labels are no business of a client); clients see one generic message. The PKCS#11 cause
stays in `__cause__`. The PIN never appears in any of them.
"""

from appliance.errors import NotFound, Unavailable

HSM_UNAVAILABLE_MESSAGE = "The key store (HSM) cannot serve requests right now. Try again in a few minutes."


class HsmUnavailable(Unavailable):
    """The HSM cannot serve now (module missing, token absent, device error, timeout)."""

    code = "hsm_unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(HSM_UNAVAILABLE_MESSAGE, detail=detail)


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
