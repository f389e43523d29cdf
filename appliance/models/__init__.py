"""SQLAlchemy models: persistence shape only; no Flask, no commits."""

from appliance.models.audit import AuditChainHead, AuditCheckpoint, AuditEvent
from appliance.models.base import Base
from appliance.models.code import TotpEnrolment, VerificationCode
from appliance.models.contract import Contract, DocumentVersion, Party, SignatureField
from appliance.models.enums import (
    CertificateKind,
    CertificateStatus,
    ContractState,
    KeyPurpose,
    PartyKind,
    PartyStatus,
    RevocationReason,
    Role,
    Routing,
    SealKind,
    UserSource,
)
from appliance.models.evidence import EvidenceEvent
from appliance.models.idempotency import IdempotentResult
from appliance.models.job import JobRun
from appliance.models.mobile import VpnHandout
from appliance.models.notify import MailStatus, Notification
from appliance.models.org import Organisation
from appliance.models.pki import Certificate, CertificateConsent, Crl, HsmKey, Seal
from appliance.models.privacy import DataRequest, DataRequestKind, DataRequestStatus, PrivacyAcceptance
from appliance.models.request_counter import RequestCounter
from appliance.models.seal import (
    ApprovalStatus,
    SealApproval,
    SealApprover,
    SealAutomation,
    SealKeeper,
    SealUsage,
)
from appliance.models.template import ContractTemplate, TemplateRole
from appliance.models.user import (
    ApiToken,
    FormerIdentity,
    LoginThrottle,
    PendingCancellation,
    User,
    UserGroup,
    UserRole,
    UserSession,
)
from appliance.models.webhook import DeliveryStatus, WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiToken",
    "ApprovalStatus",
    "AuditChainHead",
    "AuditCheckpoint",
    "AuditEvent",
    "Base",
    "Certificate",
    "CertificateConsent",
    "CertificateKind",
    "CertificateStatus",
    "Contract",
    "ContractState",
    "ContractTemplate",
    "Crl",
    "DataRequest",
    "DataRequestKind",
    "DataRequestStatus",
    "DeliveryStatus",
    "DocumentVersion",
    "EvidenceEvent",
    "FormerIdentity",
    "HsmKey",
    "IdempotentResult",
    "JobRun",
    "KeyPurpose",
    "LoginThrottle",
    "MailStatus",
    "Notification",
    "Organisation",
    "Party",
    "PartyKind",
    "PartyStatus",
    "PendingCancellation",
    "PrivacyAcceptance",
    "RequestCounter",
    "RevocationReason",
    "Role",
    "Routing",
    "Seal",
    "SealApproval",
    "SealApprover",
    "SealAutomation",
    "SealKeeper",
    "SealKind",
    "SealUsage",
    "SignatureField",
    "TemplateRole",
    "TotpEnrolment",
    "User",
    "UserGroup",
    "UserRole",
    "UserSession",
    "UserSource",
    "VerificationCode",
    "VpnHandout",
    "WebhookDelivery",
    "WebhookEndpoint",
]
