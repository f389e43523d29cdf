"""Corporate LDAP / Active Directory: authentication, people and group-to-role mapping."""

from appliance.clock import Clock
from appliance.config import AppConfig
from appliance.directory._ldap import LdapDirectory
from appliance.directory.api import (
    AccountStatus,
    Directory,
    DirectoryAccount,
    DirectoryHealth,
    DirectoryPerson,
    OrganisationRef,
    ServerHealth,
)
from appliance.directory.dn import normalize_dn
from appliance.directory.errors import (
    INVALID_LOGIN_MESSAGE,
    AuthenticationFailed,
    DirectoryTlsFailed,
    DirectoryUnavailable,
    FailureReason,
)

__all__ = [
    "INVALID_LOGIN_MESSAGE",
    "AccountStatus",
    "AuthenticationFailed",
    "Directory",
    "DirectoryAccount",
    "DirectoryHealth",
    "DirectoryPerson",
    "DirectoryTlsFailed",
    "DirectoryUnavailable",
    "FailureReason",
    "LdapDirectory",
    "OrganisationRef",
    "ServerHealth",
    "normalize_dn",
    "open_directory",
]


def open_directory(cfg: AppConfig, clock: Clock) -> Directory | None:
    """The configured directory, or None when the config has no `directory` section.

    Opens no connection: the first one is made on first use, in the process that uses it.
    """
    if cfg.directory is None:
        return None
    assert cfg.secrets.ldap_bind_password is not None  # load_config guarantees it
    return LdapDirectory(cfg.directory, cfg.secrets.ldap_bind_password.get_secret_value(), clock)
