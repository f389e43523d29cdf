"""The one error hierarchy shared by every layer.

`public` is safe to show to a user or API client. `detail` is for the log and the
operator's CLI: it may name paths, hosts and token labels, which a client must not learn;
the technical cause stays in `__cause__`. HTTP status codes are chosen in `web/errors.py`,
never here.
"""

from datetime import datetime


class ApplianceError(Exception):
    """Root of every error raised on purpose."""

    code = "error"

    def __init__(self, public: str, *, detail: str | None = None) -> None:
        super().__init__(detail or public)
        self.public = public
        self.detail = detail or public


class InvalidInput(ApplianceError):
    code = "invalid_input"


class Unprocessable(InvalidInput):
    """Well-formed, but the content cannot be used (a PDF that is encrypted, signed, too big)."""

    code = "unprocessable"


class NotFound(ApplianceError):
    code = "not_found"


class Forbidden(ApplianceError):
    code = "forbidden"


class Unauthenticated(ApplianceError):
    code = "unauthenticated"


class RateLimited(ApplianceError):
    """Too many attempts in a short time; `retry_at` says when the next one may succeed."""

    code = "rate_limited"

    def __init__(self, public: str, retry_at: datetime) -> None:
        super().__init__(public)
        self.retry_at = retry_at


class Conflict(ApplianceError):
    """Wrong state, not your turn, stale version, duplicate."""

    code = "conflict"


class Unavailable(ApplianceError):
    """A dependency (HSM, directory, database, storage) cannot serve right now."""

    code = "unavailable"


class ConfigError(ApplianceError):
    """The configuration is invalid; `problems` holds one `key.path: what is wrong` per line."""

    code = "config_error"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class NotMigrated(Unavailable):
    code = "not_migrated"
