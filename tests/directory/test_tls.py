"""A03: the directory is reached only over verified TLS; anything else is an outage, never a
bind in clear text. slapd's own log shows what reached it."""

from __future__ import annotations

import pytest

from appliance.clock import SystemClock
from appliance.config import DirectoryConfig
from appliance.directory import DirectoryTlsFailed, LdapDirectory
from tests.fixtures.ldap import SERVICE_PASSWORD, BadTlsServers, Slapd, openldap_section

pytestmark = pytest.mark.ldap

WHY = {
    "expired": "certificate has expired",
    "wrong_name": "ldap.elsewhere.example",
    "no_starttls": "startTLS failed",
}


@pytest.mark.parametrize("kind", BadTlsServers.KINDS)
def test_bad_tls_is_unavailable_and_nothing_is_bound(bad_tls_slapd: BadTlsServers, kind: str) -> None:
    server = bad_tls_slapd[kind]
    section = openldap_section(server, ca_file=str(server.tls.ca_file))  # the CA that signed it
    directory = LdapDirectory(DirectoryConfig.model_validate(section), SERVICE_PASSWORD, SystemClock())
    since = server.log_size()
    try:
        with pytest.raises(DirectoryTlsFailed) as caught:
            directory.find_account("alice")
        # refused for the reason this server was built for (ldap3's text, never shown to anyone)
        root = caught.value.__cause__.__cause__ if caught.value.__cause__ else None
        assert WHY[kind] in str(root), root
        with pytest.raises(DirectoryTlsFailed):
            directory.lookup("alice")
        assert not directory.health().ok
    finally:
        directory.close()
    # neither the service account nor the person was ever bound, in clear or otherwise
    assert server.binds(since) == []


def test_the_good_server_binds_only_over_tls(slapd: Slapd) -> None:
    directory = LdapDirectory(
        DirectoryConfig.model_validate(openldap_section(slapd)), SERVICE_PASSWORD, SystemClock()
    )
    since = slapd.log_size()
    try:
        account = directory.find_account("alice")
        assert directory.verify_password(account, "alice-Secret-1").username == "alice"
    finally:
        directory.close()
    binds = slapd.binds(since)
    assert binds and all(tls for _, _, tls in binds)  # the control for the test above


def test_ldap3_checks_host_names_with_the_standard_library_on_this_python() -> None:
    # ldap3 2.9.1 (its last release) imports ssl.match_hostname, which Python 3.12 removed;
    # there it falls back to a copy of its own that the wrong_name case above has never run
    # against. The appliance supports Python 3.11 only (docs/install.md) until that changes.
    import ssl
    import sys

    from ldap3.core import tls

    assert sys.version_info[:2] == (3, 11)
    assert tls.match_hostname is ssl.match_hostname
