"""The API's request and response bodies as pydantic models: spectree validates requests
against them and builds the OpenAPI document from them.

Request bodies are strict (a number is not a string, true is not 1) and refuse unknown
members, so what the document says is what the server accepts. Response models are built
from the workflow's frozen views by the `*_out` functions.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    Base64Bytes,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    WithJsonSchema,
)
from werkzeug.datastructures import FileStorage

from appliance.models import (
    ApprovalStatus,
    CertificateKind,
    CertificateStatus,
    ContractState,
    PartyKind,
    PartyStatus,
    Routing,
    SealKind,
)
from appliance.signing.appearance import MAX_IMAGE_BYTES
from appliance.workflow.authenticator import AuthenticatorStatus, EnrolmentStarted
from appliance.workflow.certificates import Agreement, CertificateView, HolderReason
from appliance.workflow.closing import MAX_REASON
from appliance.workflow.drafts import MAX_FIELDS_PER_PARTY, MAX_MESSAGE, MAX_PARTIES, MAX_TITLE, PersonChoice
from appliance.workflow.idempotency import MAX_KEY
from appliance.workflow.queries import MAX_ID, MAX_PAGE, ContractPage, ListRole
from appliance.workflow.seals import OrganisationReason
from appliance.workflow.signatures import CodeSent
from appliance.workflow.views import ContractSummary, ContractView, EvidenceView, PartyView, VersionView

MAX_POINTS = 14_400.0
"""The largest page side PDF allows (200 inches), in points."""
MAX_USERNAME = 200
MAX_SEAL_NAME = 64
MAX_CURSOR = 200
MAX_LOCALE = 20


def _text(value: str) -> str:
    # lone surrogates cannot be encoded for the database or the log; NUL ends C strings
    if "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ValueError("must be plain text (no NUL characters or lone surrogates)")
    return value


# Text: JSON members are Strict (a number or true is not a string); form fields and query
# parameters are always strings. The length limits come before the text check, so pydantic
# applies them as string constraints.
Title = Annotated[str, Field(min_length=1, max_length=MAX_TITLE), AfterValidator(_text)]
Message = Annotated[str, Field(max_length=MAX_MESSAGE), AfterValidator(_text)]
TitleSearch = Annotated[str, Field(max_length=MAX_TITLE), AfterValidator(_text)]
PartySearch = Annotated[str, Field(max_length=200), AfterValidator(_text)]
Cursor = Annotated[str, Field(max_length=MAX_CURSOR), AfterValidator(_text)]
LocaleName = Annotated[str, Field(max_length=MAX_LOCALE), AfterValidator(_text)]
Username = Annotated[str, Strict(), Field(min_length=1, max_length=MAX_USERNAME), AfterValidator(_text)]
Reason = Annotated[str, Strict(), Field(min_length=1, max_length=MAX_REASON), AfterValidator(_text)]
SealName = Annotated[str, Strict(), Field(min_length=1, max_length=MAX_SEAL_NAME), AfterValidator(_text)]
AgreementVersion = Annotated[str, Strict(), Field(min_length=1, max_length=50), AfterValidator(_text)]
ConsentLocale = Annotated[str, Strict(), Field(min_length=1, max_length=MAX_LOCALE), AfterValidator(_text)]
Sha256 = Annotated[str, Strict(), Field(pattern=r"^[0-9a-f]{64}$")]
Code = Annotated[str, Strict(), Field(pattern=r"^[0-9]{6,8}$")]
IdempotencyKeyText = Annotated[str, Field(min_length=1, max_length=MAX_KEY, pattern=r"^[!-~]([ -~]*[!-~])?$")]
Id = Annotated[int, Strict(), Field(ge=1, le=MAX_ID)]
Points = Annotated[float, Strict(), Field(ge=0, le=MAX_POINTS)]


def _uploaded_file(value: object) -> FileStorage:
    if not isinstance(value, FileStorage):
        raise ValueError("send the PDF as a file part named 'file'")
    return value


UploadedFile = Annotated[
    FileStorage,
    PlainValidator(_uploaded_file),
    WithJsonSchema({"type": "string", "format": "binary", "contentMediaType": "application/pdf"}),
]


def _optional_is_absent(schema: dict[str, Any]) -> None:
    """Document an optional member as "leave it out", not as a value to send: without the
    null pydantic adds to its type and without its default null. (Typing it `X | None`
    rather than hiding None from the schema keeps pydantic's error locations plain.)"""
    for name, member in schema.get("properties", {}).items():
        variants = member.get("anyOf", [])
        if {"type": "null"} in variants and len(variants) == 2:
            (kept,) = (v for v in variants if v != {"type": "null"})
            del member["anyOf"]
            schema["properties"][name] = {**kept, **member}
        if schema["properties"][name].get("default", ...) is None:
            del schema["properties"][name]["default"]


class RequestBody(BaseModel):
    """A request's JSON body: unknown keys refused, no NaN or infinity, immutable."""

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, frozen=True, json_schema_extra=_optional_is_absent
    )


# -- requests -------------------------------------------------------------------------------


class NewContractForm(RequestBody):
    """multipart/form-data: the PDF as the part `file`, the rest as text parts."""

    file: UploadedFile
    title: Title
    not_excluded: bool = Field(
        description="Must be true: you confirm the document is none of the kinds the law keeps from "
        "electronic signing (marriage, adoption, inheritance; stopping water, heat, gas or power supply)."
    )
    routing: Routing = Routing.SEQUENTIAL
    message: Message | None = None
    deadline: AwareDatetime | None = Field(
        None, description="With a time zone; default: contracts.default_deadline_days from now."
    )


class FieldIn(RequestBody):
    page: Annotated[int, Strict(), Field(ge=1, le=100_000, description="1-based page number.")]
    x: Points = Field(description="Left edge, in points from the page's left.")
    y: Points = Field(description="Bottom edge, in points from the page's bottom.")
    width: Points
    height: Points


class NewPartyIn(RequestBody):
    kind: PartyKind
    fields: list[FieldIn] = Field(min_length=1, max_length=MAX_FIELDS_PER_PARTY)
    username: Username | None = Field(None, description="For a person: their login name.")
    seal_id: Id | None = Field(None, description="For an organisation seal.")
    routing_order: Annotated[int, Strict(), Field(ge=1, le=MAX_PARTIES)] = 1


class SignIn(RequestBody):
    code: Code = Field(
        description="The verification code that was sent to you (or your authenticator app's)."
    )


class ReasonIn(RequestBody):
    reason: Reason


class ConsentIn(RequestBody):
    """What you accepted: the version and sha256 of the agreement text you were shown."""

    agreement_version: AgreementVersion
    agreement_sha256: Sha256
    locale: ConsentLocale


class NewSealIn(RequestBody):
    name: SealName
    kind: SealKind = SealKind.CONTRACT
    image_png: Annotated[Base64Bytes, Field(max_length=MAX_IMAGE_BYTES)] | None = Field(
        None,
        description="The stamp: a PNG with transparency, base64. Without it the appliance draws the "
        "round red seal from the organisation's name and the kind.",
    )


class ContractQuery(RequestBody):
    state: ContractState | None = None
    role: ListRole = ListRole.ANY
    created_from: AwareDatetime | None = Field(None, description="Created at or after.")
    created_to: AwareDatetime | None = Field(None, description="Created before.")
    title: TitleSearch | None = Field(None, description="Part of the title (any case).")
    party: PartySearch | None = Field(None, description="Part of a party's name, person or seal (any case).")
    archived: bool = Field(
        False, description="List the archive instead (archive admins only; 403 for others)."
    )
    cursor: Cursor | None = Field(None, description="`next_cursor` of the previous page.")
    limit: int = Field(20, ge=1, le=MAX_PAGE)


class AgreementQuery(RequestBody):
    locale: LocaleName | None = None


class IdempotencyHeaders(BaseModel):
    """Request headers; the others are not spectree's to check."""

    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra=_optional_is_absent)

    idempotency_key: IdempotencyKeyText | None = Field(
        None,
        alias="Idempotency-Key",
        description="Any unique printable ASCII text; a retry with the same key and request "
        "returns the first answer, and the same key with another request is refused (422).",
    )


# -- responses ------------------------------------------------------------------------------


class Problem(BaseModel):
    """An error (RFC 9457, application/problem+json)."""

    type: str = Field(description="urn:appliance:problem:<code>")
    code: str = Field(description="Stable code a client can act on, e.g. not_found, invalid_state.")
    title: str
    status: int
    detail: str = Field(description="What went wrong and what to do, for people.")


class ServiceInfo(BaseModel):
    service: str
    version: str
    private_cloud_address: str


class FieldOut(BaseModel):
    id: int
    page: int = Field(description="1-based page number.")
    x: float
    y: float
    width: float
    height: float


class PartyOut(BaseModel):
    id: int
    kind: PartyKind
    name: str
    routing_order: int
    status: PartyStatus
    user_id: int | None
    seal_id: int | None
    signed_at: AwareDatetime | None
    reason: str | None
    fields: list[FieldOut]
    yours: bool = Field(description="You sign (or reject) for this party.")


class VersionOut(BaseModel):
    number: int
    sha256: str
    size: int
    produced_by: str | None
    party_id: int | None
    created_at: AwareDatetime


class ApprovalOut(BaseModel):
    id: int
    party_id: int = Field(description="The seal party whose use it approves.")
    seal_name: str
    position: int = Field(description="Approvers of one seal decide in this order, 1 first.")
    approver_name: str
    status: ApprovalStatus
    decided_at: AwareDatetime | None
    comment: str | None
    yours: bool = Field(description="You decide this approval now.")


class PageSize(BaseModel):
    width: float
    height: float


class ContractOut(BaseModel):
    id: int
    title: str
    state: ContractState
    routing: Routing
    message: str | None
    deadline: AwareDatetime | None
    initiator_id: int
    initiator_name: str
    organisation_id: int | None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    completed_at: AwareDatetime | None
    closing_reason: str | None
    voids_contract_id: int | None
    parties: list[PartyOut]
    versions: list[VersionOut]
    page_sizes: list[PageSize] = Field(description="Of the original, in points, page 1 first.")
    has_completion_certificate: bool
    your_turn: list[int] = Field(description="Ids of the parties you may sign for now.")
    approvals: list[ApprovalOut] = Field(description="The approvals of its seals, by party and order.")


class ContractSummaryOut(BaseModel):
    id: int
    title: str
    state: ContractState
    initiator_name: str
    deadline: AwareDatetime | None
    updated_at: AwareDatetime
    your_turn: bool
    archived_at: AwareDatetime | None = Field(description="When it moved to the archive; null while in use.")


class ContractPageOut(BaseModel):
    items: list[ContractSummaryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class EvidenceOut(BaseModel):
    seq: int
    occurred_at: AwareDatetime
    action: str
    actor_name: str | None
    client_address: str | None
    user_agent: str | None
    details: dict[str, Any]
    hash: str
    prev_hash: str


class EvidenceListOut(BaseModel):
    items: list[EvidenceOut]


class CodeSentOut(BaseModel):
    channel: str
    destination: str = Field(description="Where the code went, masked.")
    expires_at: AwareDatetime


class AgreementOut(BaseModel):
    version: str
    locale: str
    text: str
    sha256: str = Field(description="sha256 of `text`: send it back with your consent.")


class CertificateOut(BaseModel):
    id: int
    kind: CertificateKind
    subject: str
    serial: str
    not_before: AwareDatetime
    not_after: AwareDatetime
    status: CertificateStatus
    sha256_fingerprint: str


class MyCertificateOut(BaseModel):
    certificate: CertificateOut | None = Field(description="Your usable personal certificate, if any.")
    renewable_from: AwareDatetime | None = Field(
        None, description="From when that certificate may be renewed (30 days before it expires)."
    )
    outdated: bool = Field(
        False,
        description="True when you have no usable certificate because yours names you as the directory "
        "no longer does (name or organisation changed): apply for a new one.",
    )


class RevokeCertificateIn(RequestBody):
    reason: HolderReason = Field(description="Why you revoke it; the CRL states it.")


class RevokeSealCertificateIn(RequestBody):
    reason: OrganisationReason = Field(
        description="Why the seal's certificate is revoked; the CRL states it."
    )


class SealOut(BaseModel):
    id: int


def contract_out(view: ContractView) -> ContractOut:
    return ContractOut(
        id=view.id,
        title=view.title,
        state=view.state,
        routing=view.routing,
        message=view.message,
        deadline=view.deadline,
        initiator_id=view.initiator_id,
        initiator_name=view.initiator_name,
        organisation_id=view.organisation_id,
        created_at=view.created_at,
        updated_at=view.updated_at,
        completed_at=view.completed_at,
        closing_reason=view.closing_reason,
        voids_contract_id=view.voids_contract_id,
        parties=[_party_out(p) for p in view.parties],
        versions=[_version_out(v) for v in view.versions],
        page_sizes=[PageSize(width=w, height=h) for w, h in view.page_sizes],
        has_completion_certificate=view.has_completion_certificate,
        your_turn=list(view.your_turn),
        approvals=[
            ApprovalOut(
                id=a.id,
                party_id=a.party_id,
                seal_name=a.seal_name,
                position=a.position,
                approver_name=a.approver_name,
                status=a.status,
                decided_at=a.decided_at,
                comment=a.comment,
                yours=a.yours,
            )
            for a in view.approvals
        ],
    )


def contract_page_out(page: ContractPage) -> ContractPageOut:
    return ContractPageOut(items=[_summary_out(s) for s in page.items], next_cursor=page.next_cursor)


def evidence_out(events: tuple[EvidenceView, ...]) -> EvidenceListOut:
    return EvidenceListOut(
        items=[
            EvidenceOut(
                seq=e.seq,
                occurred_at=e.occurred_at,
                action=e.action,
                actor_name=e.actor_name,
                client_address=e.client_address,
                user_agent=e.user_agent,
                details=e.details,
                hash=e.hash,
                prev_hash=e.prev_hash,
            )
            for e in events
        ]
    )


def code_sent_out(sent: CodeSent) -> CodeSentOut:
    return CodeSentOut(channel=sent.channel, destination=sent.destination, expires_at=sent.expires_at)


def agreement_out(agreement: Agreement) -> AgreementOut:
    return AgreementOut(
        version=agreement.version, locale=agreement.locale, text=agreement.text, sha256=agreement.sha256
    )


def certificate_out(view: CertificateView) -> CertificateOut:
    return CertificateOut(
        id=view.id,
        kind=view.kind,
        subject=view.subject,
        serial=view.serial,
        not_before=view.not_before,
        not_after=view.not_after,
        status=view.status,
        sha256_fingerprint=view.sha256_fingerprint,
    )


def _party_out(view: PartyView) -> PartyOut:
    return PartyOut(
        id=view.id,
        kind=view.kind,
        name=view.name,
        routing_order=view.routing_order,
        status=view.status,
        user_id=view.user_id,
        seal_id=view.seal_id,
        signed_at=view.signed_at,
        reason=view.reason,
        fields=[
            FieldOut(id=f.id, page=f.page, x=f.x, y=f.y, width=f.width, height=f.height) for f in view.fields
        ],
        yours=view.yours,
    )


def _version_out(view: VersionView) -> VersionOut:
    return VersionOut(
        number=view.number,
        sha256=view.sha256,
        size=view.size,
        produced_by=view.produced_by,
        party_id=view.party_id,
        created_at=view.created_at,
    )


def _summary_out(view: ContractSummary) -> ContractSummaryOut:
    return ContractSummaryOut(
        id=view.id,
        title=view.title,
        state=view.state,
        initiator_name=view.initiator_name,
        deadline=view.deadline,
        updated_at=view.updated_at,
        your_turn=view.your_turn,
        archived_at=view.archived_at,
    )


# -- authenticator app ----------------------------------------------------------------------


class ConfirmEnrolmentIn(RequestBody):
    email_code: Code = Field(description="The code e-mailed to you when you started adding the app.")
    authenticator_code: Code = Field(description="The code your authenticator app shows now.")


class EnrolmentOut(BaseModel):
    provisioning_uri: str = Field(description="otpauth:// URI: show it as a QR code for the app to scan.")
    secret: str = Field(description="Base32, for typing into the app when the QR code cannot be scanned.")
    expires_at: AwareDatetime = Field(description="Confirm before this, or start again.")
    destination: str = Field(description="Where the e-mailed code went, masked.")


class AuthenticatorStatusOut(BaseModel):
    enrolled: bool = Field(
        description="You have a confirmed authenticator app; verification codes for signing come "
        "from it when the appliance uses authenticator apps."
    )
    confirmed_at: AwareDatetime | None


def enrolment_out(started: EnrolmentStarted) -> EnrolmentOut:
    return EnrolmentOut(
        provisioning_uri=started.provisioning_uri,
        secret=started.secret,
        expires_at=started.expires_at,
        destination=started.destination,
    )


def authenticator_status_out(status: AuthenticatorStatus) -> AuthenticatorStatusOut:
    return AuthenticatorStatusOut(enrolled=status.enrolled, confirmed_at=status.confirmed_at)


class PeopleQuery(RequestBody):
    q: Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_text)] = Field(
        description="Part of a name, login name or e-mail address (2 to 100 characters)."
    )
    limit: int = Field(20, ge=1, le=50)


class PersonOut(BaseModel):
    username: str = Field(description="What to send as `username` when adding the person as a party.")
    display_name: str
    department: str | None
    organisation: str | None


class PeopleOut(BaseModel):
    items: list[PersonOut]


def people_out(choices: list[PersonChoice]) -> PeopleOut:
    return PeopleOut(
        items=[
            PersonOut(
                username=c.username,
                display_name=c.display_name,
                department=c.department,
                organisation=c.organisation,
            )
            for c in choices
        ]
    )
