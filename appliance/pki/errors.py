"""PKI errors (public messages; causes stay in `__cause__`)."""

from appliance.errors import Conflict, Forbidden, InvalidInput, NotFound


class PkiNotInitialised(Conflict):
    code = "pki_not_initialised"

    def __init__(self, public: str = "the appliance CA is not set up; run `appliance pki init`") -> None:
        super().__init__(public)


class CertificateNotFound(NotFound):
    code = "certificate_not_found"


class CertificateNotUsable(Forbidden):
    """The certificate may not sign now: revoked, expired, not yet valid, or its CA is revoked."""

    code = "certificate_not_usable"


class CertificateMismatch(InvalidInput):
    """An imported certificate does not belong to the key, or its chain does not link up."""

    code = "certificate_mismatch"


class CaNotUsable(Conflict):
    """The CA or TSA certificate that would sign is expired, not yet valid, revoked or superseded."""

    code = "ca_not_usable"
