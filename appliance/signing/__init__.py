"""pyHanko glue: PAdES signing with HSM keys, visible stamps, and the validation report."""

from appliance.signing.appearance import Appearance, Placement
from appliance.signing.errors import CertificateNotUsable, PdfRejected, RejectReason, SigningFailed
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
    Coverage,
    Modification,
    Revocation,
    SignatureFacts,
    ValidationLimits,
    ValidationReport,
    Verdict,
    validate_pdf,
)

__all__ = [
    "DEFAULT_MAX_PAGES",
    "Appearance",
    "CertificateNotUsable",
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
