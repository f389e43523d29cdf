"""Building X.509 objects with asn1crypto and signing them with an HSM key.

`cryptography` cannot hold a PKCS#11 key, so the to-be-signed structures (TBSCertificate,
CertificationRequestInfo, TBSCertList) are built here and their DER is signed through
`KeyCustody.sign`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import algos, core, crl, csr, keys, x509

from appliance.hsm import KeyCustody, KeyRef, default_digest_algorithm, signature_algorithm_name

DOCUMENT_SIGNING_EKU = "1.3.6.1.5.5.7.3.36"
"""id-kp-documentSigning (RFC 9336)."""


@dataclass(frozen=True)
class SubjectInfo:
    """Subject of a certificate, from directory data."""

    common_name: str
    organisation: str | None = None
    organisational_unit: str | None = None
    email: str | None = None
    country: str | None = None

    def to_name(self) -> x509.Name:
        # ordered from the most general: C, O, OU, CN, emailAddress
        pairs: list[tuple[str, str]] = []
        if self.country:
            pairs.append(("country_name", self.country))
        if self.organisation:
            pairs.append(("organization_name", self.organisation))
        if self.organisational_unit:
            pairs.append(("organizational_unit_name", self.organisational_unit))
        pairs.append(("common_name", self.common_name))
        if self.email:
            pairs.append(("email_address", self.email))
        return build_name(pairs)


def build_name(pairs: Sequence[tuple[str, str]]) -> x509.Name:
    # asn1crypto puts the attributes in the conventional order and picks PrintableString for
    # C and IA5String for emailAddress (RFC 5280); everything else is UTF8String
    return x509.Name.build(dict(pairs), use_printable=False)


def signed_digest_algorithm(key: KeyRef) -> algos.SignedDigestAlgorithm:
    name = signature_algorithm_name(key.algorithm, default_digest_algorithm(key.algorithm))
    if name.endswith("_rsa"):
        # RFC 4055: the parameters of sha*WithRSAEncryption are an explicit NULL
        return algos.SignedDigestAlgorithm({"algorithm": name, "parameters": core.Null()})
    return algos.SignedDigestAlgorithm({"algorithm": name})


def sign_der(custody: KeyCustody, key: KeyRef, tbs_der: bytes) -> bytes:
    return custody.sign(key, tbs_der, digest_algorithm=default_digest_algorithm(key.algorithm))


def key_identifier(spki: keys.PublicKeyInfo) -> bytes:
    # RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING
    return hashlib.sha1(spki["public_key"].contents[1:], usedforsecurity=False).digest()


def utc_time(value: datetime) -> x509.Time:
    # RFC 5280: UTCTime through 2049, GeneralizedTime from 2050 on
    if value.year < 2050:
        return x509.Time(name="utc_time", value=value)
    return x509.Time(name="general_time", value=value)


@dataclass(frozen=True)
class CertificateTemplate:
    serial: int
    subject: x509.Name
    subject_key: keys.PublicKeyInfo
    not_before: datetime
    not_after: datetime
    extensions: list[dict[str, object]]


def issue_certificate_der(
    custody: KeyCustody,
    template: CertificateTemplate,
    *,
    issuer_key: KeyRef,
    issuer_name: x509.Name,
) -> x509.Certificate:
    algorithm = signed_digest_algorithm(issuer_key)
    tbs = x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": template.serial,
            "signature": algorithm,
            "issuer": issuer_name,
            "validity": {
                "not_before": utc_time(template.not_before),
                "not_after": utc_time(template.not_after),
            },
            "subject": template.subject,
            "subject_public_key_info": template.subject_key,
            "extensions": template.extensions,
        }
    )
    signature = sign_der(custody, issuer_key, tbs.dump())
    return x509.Certificate(
        {"tbs_certificate": tbs, "signature_algorithm": algorithm, "signature_value": signature}
    )


def ext(name: str, value: object, *, critical: bool = False) -> dict[str, object]:
    return {"extn_id": name, "critical": critical, "extn_value": value}


def ca_extensions(
    spki: keys.PublicKeyInfo,
    *,
    issuer_spki: keys.PublicKeyInfo | None,
    path_length: int | None,
    crl_url: str | None,
    ca_issuers_url: str | None,
) -> list[dict[str, object]]:
    extensions = [
        ext("basic_constraints", {"ca": True, "path_len_constraint": path_length}, critical=True),
        ext("key_usage", {"key_cert_sign", "crl_sign", "digital_signature"}, critical=True),
        ext("key_identifier", key_identifier(spki)),
    ]
    if issuer_spki is not None:
        extensions.append(ext("authority_key_identifier", {"key_identifier": key_identifier(issuer_spki)}))
    extensions += pointer_extensions(crl_url, ca_issuers_url)
    return extensions


def _uri(url: str) -> x509.GeneralName:
    return x509.GeneralName(name="uniform_resource_identifier", value=url)


def pointer_extensions(crl_url: str | None, ca_issuers_url: str | None) -> list[dict[str, object]]:
    extensions: list[dict[str, object]] = []
    if crl_url:
        extensions.append(
            ext(
                "crl_distribution_points",
                [{"distribution_point": {"full_name": [_uri(crl_url)]}}],
            )
        )
    if ca_issuers_url:
        extensions.append(
            ext(
                "authority_information_access",
                [{"access_method": "ca_issuers", "access_location": _uri(ca_issuers_url)}],
            )
        )
    return extensions


def end_entity_extensions(
    spki: keys.PublicKeyInfo,
    *,
    issuer_spki: keys.PublicKeyInfo,
    key_usage: set[str],
    extended_key_usage: list[str],
    eku_critical: bool,
    email: str | None,
    crl_url: str,
    ca_issuers_url: str,
) -> list[dict[str, object]]:
    extensions = [
        ext("basic_constraints", {"ca": False}, critical=True),
        ext("key_usage", key_usage, critical=True),
        ext("extended_key_usage", extended_key_usage, critical=eku_critical),
        ext("key_identifier", key_identifier(spki)),
        ext("authority_key_identifier", {"key_identifier": key_identifier(issuer_spki)}),
    ]
    if email:
        extensions.append(ext("subject_alt_name", [x509.GeneralName(name="rfc822_name", value=email)]))
    return extensions + pointer_extensions(crl_url, ca_issuers_url)


def build_csr_der(custody: KeyCustody, key: KeyRef, subject: x509.Name, spki: keys.PublicKeyInfo) -> bytes:
    info = csr.CertificationRequestInfo(
        {"version": "v1", "subject": subject, "subject_pk_info": spki, "attributes": []}
    )
    algorithm = signed_digest_algorithm(key)
    request = csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": algorithm,
            "signature": sign_der(custody, key, info.dump()),
        }
    )
    return request.dump()


@dataclass(frozen=True)
class RevokedEntry:
    serial: int
    revoked_at: datetime
    reason: str
    """asn1crypto CRLReason name, e.g. "key_compromise" (RevocationReason values match)."""


def build_crl_der(
    custody: KeyCustody,
    *,
    issuer_key: KeyRef,
    issuer_cert: x509.Certificate,
    number: int,
    this_update: datetime,
    next_update: datetime,
    revoked: Sequence[RevokedEntry],
) -> bytes:
    algorithm = signed_digest_algorithm(issuer_key)
    entries: list[dict[str, object]] = []
    for entry in revoked:
        item: dict[str, object] = {
            "user_certificate": entry.serial,
            "revocation_date": utc_time(entry.revoked_at),
        }
        # RFC 5280 5.3.1: the reasonCode "unspecified" SHOULD NOT be used; the extension is
        # left out instead
        if entry.reason != "unspecified":
            item["crl_entry_extensions"] = [
                {"extn_id": "crl_reason", "critical": False, "extn_value": entry.reason}
            ]
        entries.append(item)
    tbs = crl.TbsCertList(
        {
            "version": "v2",
            "signature": algorithm,
            "issuer": issuer_cert.subject,
            "this_update": utc_time(this_update),
            "next_update": utc_time(next_update),
            # an empty revokedCertificates must be omitted, not encoded as an empty SEQUENCE
            "revoked_certificates": entries or None,
            "crl_extensions": [
                {"extn_id": "crl_number", "critical": False, "extn_value": number},
                {
                    "extn_id": "authority_key_identifier",
                    "critical": False,
                    "extn_value": {"key_identifier": key_identifier(issuer_cert.public_key)},
                },
            ],
        }
    )
    signature = sign_der(custody, issuer_key, tbs.dump())
    return crl.CertificateList(
        {"tbs_cert_list": tbs, "signature_algorithm": algorithm, "signature": signature}
    ).dump()


def certificate_pem(der: bytes) -> str:
    from asn1crypto import pem

    return pem.armor("CERTIFICATE", der).decode("ascii")


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()
