"""pyHanko glue: PAdES signing with HSM keys, visible stamps, and the validation report.

The names below load their module on first use. Every command's services hold a
`SigningKit` (appliance.signing.kit), and importing this package must not load pyHanko
(about a second) for commands that never sign.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from appliance.signing.appearance import Appearance, Placement
    from appliance.signing.errors import CertificateNotUsable, PdfRejected, RejectReason, SigningFailed
    from appliance.signing.kit import SigningKit
    from appliance.signing.pades import (
        PadesLevel,
        SignedDocument,
        SignOptions,
        check_signer_chain,
        sign_pdf,
        sign_pdf_file,
    )
    from appliance.signing.preflight import DEFAULT_MAX_PAGES, PdfFacts, preflight_pdf
    from appliance.signing.trust import TrustMaterial, load_trust_material
    from appliance.signing.validate import (
        ChainCertificate,
        Coverage,
        Modification,
        Revocation,
        SignatureFacts,
        ValidationLimits,
        ValidationReport,
        Verdict,
        validate_pdf,
    )

_MODULES = {
    "appliance.signing.appearance": ("Appearance", "Placement"),
    "appliance.signing.errors": ("CertificateNotUsable", "PdfRejected", "RejectReason", "SigningFailed"),
    "appliance.signing.kit": ("SigningKit",),
    "appliance.signing.pades": (
        "PadesLevel",
        "SignOptions",
        "SignedDocument",
        "check_signer_chain",
        "sign_pdf",
        "sign_pdf_file",
    ),
    "appliance.signing.preflight": ("DEFAULT_MAX_PAGES", "PdfFacts", "preflight_pdf"),
    "appliance.signing.trust": ("TrustMaterial", "load_trust_material"),
    "appliance.signing.validate": (
        "ChainCertificate",
        "Coverage",
        "Modification",
        "Revocation",
        "SignatureFacts",
        "ValidationLimits",
        "ValidationReport",
        "Verdict",
        "validate_pdf",
    ),
}
_MODULE_OF = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


__all__ = [
    "DEFAULT_MAX_PAGES",
    "Appearance",
    "CertificateNotUsable",
    "ChainCertificate",
    "Coverage",
    "Modification",
    "PadesLevel",
    "PdfFacts",
    "PdfRejected",
    "Placement",
    "RejectReason",
    "Revocation",
    "SignOptions",
    "SignatureFacts",
    "SignedDocument",
    "SigningFailed",
    "SigningKit",
    "TrustMaterial",
    "ValidationLimits",
    "ValidationReport",
    "Verdict",
    "check_signer_chain",
    "load_trust_material",
    "preflight_pdf",
    "sign_pdf",
    "sign_pdf_file",
    "validate_pdf",
]
