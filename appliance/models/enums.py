"""Enumerations stored in the database (as their string values)."""

from enum import StrEnum

from appliance.config import Role

__all__ = [
    "CertificateKind",
    "CertificateStatus",
    "ContractState",
    "KeyPurpose",
    "PartyKind",
    "PartyStatus",
    "RevocationReason",
    "Role",
    "Routing",
    "UserSource",
]


class UserSource(StrEnum):
    DIRECTORY = "directory"
    LOCAL = "local"
    """The break-glass local administrator; the only account with a stored password hash."""


class ContractState(StrEnum):
    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    SIGNING = "signing"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"
    REJECTED = "rejected"
    EXPIRED = "expired"
    VOIDED = "voided"
    ENDED = "ended"


class Routing(StrEnum):
    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"


class PartyKind(StrEnum):
    PERSON = "person"
    SEAL = "seal"


class PartyStatus(StrEnum):
    WAITING = "waiting"
    PENDING = "pending"
    SIGNED = "signed"
    REJECTED = "rejected"


class KeyPurpose(StrEnum):
    ROOT_CA = "root_ca"
    ISSUING_CA = "issuing_ca"
    TSA = "tsa"
    PERSON = "person"
    ORGANISATION = "organisation"
    APPLIANCE = "appliance"
    """The appliance's own document key (evidence reports)."""


class CertificateKind(StrEnum):
    ROOT_CA = "root_ca"
    ISSUING_CA = "issuing_ca"
    TSA = "tsa"
    PERSON = "person"
    ORGANISATION = "organisation"
    APPLIANCE = "appliance"
    TRUST_ROOT = "trust_root"
    """An admin-added external trust anchor (no key in our HSM)."""
    EXTERNAL_CA = "external_ca"
    """An intermediate CA of an external chain (no key in our HSM): builds paths, never an anchor."""


class CertificateStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    SUPERSEDED = "superseded"


class RevocationReason(StrEnum):
    """RFC 5280 CRLReason values the appliance uses."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "key_compromise"
    CA_COMPROMISE = "ca_compromise"
    AFFILIATION_CHANGED = "affiliation_changed"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessation_of_operation"
    PRIVILEGE_WITHDRAWN = "privilege_withdrawn"


class SealKind(StrEnum):
    """What a seal is for, as Chinese company seals are distinguished."""

    OFFICIAL = "official"
    CONTRACT = "contract"
    FINANCE = "finance"
    INVOICE = "invoice"
    HR = "hr"
    LEGAL_REPRESENTATIVE = "legal_representative"
