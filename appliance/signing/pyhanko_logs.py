"""What pyHanko logs while the appliance signs and validates, and where it goes instead.

pyHanko logs each problem it finds in a document (a certificate it cannot chain, a change
it cannot classify) as a warning with a full traceback. The validation report already says
what is wrong, so the operator must not see those tracebacks on stderr (the CLI) or as
warnings in the log: each such record becomes one line at INFO and its traceback a DEBUG
record, both on this module's logger. Only the named loggers on the signing and validation
paths are touched, and only their warnings and errors.

pyHanko also warns on every signature that embeds validation data while fetching is off.
The appliance never fetches by design (revocation data comes from its own database, see
`TrustMaterial.validation_context`), so that one notice is dropped at its logger.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

FINDINGS_LOGGERS = (
    "pyhanko.pdf_utils.generic",
    "pyhanko.pdf_utils.reader",
    "pyhanko.pdf_utils.xref",
    "pyhanko.sign.diff_analysis.policies",
    "pyhanko.sign.general",
    "pyhanko.sign.validation.dss",
    "pyhanko.sign.validation.generic_cms",
    "pyhanko.sign.validation.pdf_embedded",
    "pyhanko.sign.validation.status",
    "pyhanko_certvalidator.name_trees",
    "pyhanko_certvalidator.revinfo.validate_crl",
    "pyhanko_certvalidator.util",
)
"""Loggers (pyHanko modules) whose warnings are findings about the document at hand."""

SIGNER_LOGGER = "pyhanko.sign.signers.pdf_signer"
NO_FETCHING_NOTICE = "Validation/revocation info will be embedded, but fetching is not allowed"


class DemoteFindings(logging.Filter):
    """Re-log a pyHanko warning or error as one INFO line, its traceback at DEBUG; drop the original."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or record.levelno >= logging.CRITICAL:
            return True
        message = " ".join(record.getMessage().split())
        log.info("%s %s: %s", record.name, record.levelname.lower(), message)
        if record.exc_info:
            log.debug("%s traceback of: %s", record.name, message, exc_info=record.exc_info)
        return False


class DropNoFetchingNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(NO_FETCHING_NOTICE))


_FINDINGS = DemoteFindings()
_NO_FETCHING = DropNoFetchingNotice()
_lock = threading.Lock()
_routed = False


def route_pyhanko_logs() -> None:
    """Attach the filters (once per process); signing and validation call it before pyHanko runs."""
    global _routed
    if _routed:
        return
    with _lock:
        for name in FINDINGS_LOGGERS:
            logging.getLogger(name).addFilter(_FINDINGS)  # addFilter ignores a filter already there
        logging.getLogger(SIGNER_LOGGER).addFilter(_NO_FETCHING)
        _routed = True
