"""Deprecation warnings raised inside named third-party packages are for their maintainers;
an operator can do nothing about them, so they never reach a terminal or a log line.

Only the packages listed here are silenced, and only their deprecation categories: the
appliance's own warnings still show (and are errors in the tests, see pyproject.toml).
"""

import warnings

# pyHanko 0.38 imports cryptography's deprecated DSA types at import time; ldap3 2.9.1 and
# oscrypto use deprecated ssl and asyncio calls.
FOREIGN_PACKAGES = ("pyhanko", "pyhanko_certvalidator", "ldap3", "oscrypto")


def silence_foreign_deprecations() -> None:
    """Call once at an entry point (the CLI, the gunicorn config) before the imports."""
    from cryptography.utils import CryptographyDeprecationWarning

    module_pattern = rf"({'|'.join(FOREIGN_PACKAGES)})(\.|$)"
    for category in (DeprecationWarning, PendingDeprecationWarning, CryptographyDeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=module_pattern)
