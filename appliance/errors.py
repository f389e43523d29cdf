"""The one error hierarchy shared by every layer.

`public` is safe to show to a user or API client; the technical cause stays in
`__cause__` and the logs. HTTP status codes are chosen in `web/errors.py`, never here.
"""


class ApplianceError(Exception):
    """Root of every error raised on purpose."""

    code = "error"

    def __init__(self, public: str) -> None:
        super().__init__(public)
        self.public = public


class InvalidInput(ApplianceError):
    code = "invalid_input"


class NotFound(ApplianceError):
    code = "not_found"


class Forbidden(ApplianceError):
    code = "forbidden"


class Unauthenticated(ApplianceError):
    code = "unauthenticated"


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
