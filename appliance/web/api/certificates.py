"""/api/v1/certificates, /api/v1/seals and /api/v1/people: the certificate agreement, your
personal certificate, organisation seals with their certificates (org admins), and the
directory search that finds the people to add as parties."""

from __future__ import annotations

from appliance.web.api.models import (
    AgreementOut,
    AgreementQuery,
    CertificateOut,
    ConsentIn,
    MyCertificateOut,
    NewSealIn,
    PeopleOut,
    PeopleQuery,
    RevokeCertificateIn,
    RevokeSealCertificateIn,
    SealOut,
    agreement_out,
    certificate_out,
    people_out,
)
from appliance.web.api.spec import responses, spec
from appliance.web.api.transport import api_blueprint, api_principal
from appliance.web.auth.principal import client_info
from appliance.web.context import current_services
from appliance.web.files import ID
from appliance.workflow.certificates import (
    Consent,
    apply_personal_certificate,
    certificate_agreement,
    certificate_standing,
    renew_personal_certificate,
    revoke_my_certificate,
)
from appliance.workflow.drafts import find_people
from appliance.workflow.seals import (
    apply_seal_certificate,
    create_seal,
    renew_seal_certificate,
    revoke_seal_certificate,
)

bp = api_blueprint("certificates_api", __name__)


@bp.get("/certificates/agreement")
@spec.validate(resp=responses(200, AgreementOut), tags=["certificates"], operation_id="certificate_agreement")
def agreement(query: AgreementQuery) -> AgreementOut:
    """The certificate agreement to show before applying for a certificate

    English unless `locale` is zh_Hans_CN. Send its version and sha256 back as your consent.
    """
    return agreement_out(certificate_agreement(query.locale))


@bp.get("/certificates/mine")
@spec.validate(resp=responses(200, MyCertificateOut), tags=["certificates"], operation_id="my_certificate")
def mine() -> MyCertificateOut:
    """Your usable personal certificate, or null; and when it may be renewed"""
    standing = certificate_standing(current_services().workflow, api_principal())
    return MyCertificateOut(
        certificate=certificate_out(standing.usable) if standing.usable is not None else None,
        renewable_from=standing.renewable_from,
        outdated=standing.outdated,
    )


@bp.post("/certificates/mine")
@spec.validate(
    resp=responses(201, CertificateOut, 409), tags=["certificates"], operation_id="apply_personal_certificate"
)
def apply_mine(json: ConsentIn) -> tuple[CertificateOut, int]:
    """Apply for your personal signing certificate, accepting the agreement

    The key is generated in the HSM and the certificate issued at once.
    """
    view = apply_personal_certificate(
        current_services().workflow, api_principal(), client_info(), _consent(json)
    )
    return certificate_out(view), 201


@bp.post("/certificates/mine/renew")
@spec.validate(
    resp=responses(201, CertificateOut, 409), tags=["certificates"], operation_id="renew_personal_certificate"
)
def renew_mine(json: ConsentIn) -> tuple[CertificateOut, int]:
    """Renew your personal certificate, accepting the agreement again

    From 30 days before it expires (`renewable_from`). A new key and certificate; the old
    certificate is replaced at once and signs no more.
    """
    view = renew_personal_certificate(
        current_services().workflow, api_principal(), client_info(), _consent(json)
    )
    return certificate_out(view), 201


@bp.post(f"/certificates/mine/<{ID}:certificate_id>/revoke")
@spec.validate(
    resp=responses(200, CertificateOut, 404, 409), tags=["certificates"], operation_id="revoke_my_certificate"
)
def revoke_mine(certificate_id: int, json: RevokeCertificateIn) -> CertificateOut:
    """Revoke one of your certificates, with a reason

    The certificate authority's CRL is published at once. A revoked certificate never signs again.
    """
    view = revoke_my_certificate(
        current_services().workflow, api_principal(), client_info(), certificate_id, json.reason
    )
    return certificate_out(view)


@bp.post("/seals")
@spec.validate(resp=responses(201, SealOut), tags=["seals"], operation_id="create_seal")
def new_seal(json: NewSealIn) -> tuple[SealOut, int]:
    """Create a seal of your organisation (org admins), without a certificate yet"""
    seal_id = create_seal(
        current_services().workflow, api_principal(), client_info(), json.name, json.image_png, kind=json.kind
    )
    return SealOut(id=seal_id), 201


@bp.post(f"/seals/<{ID}:seal_id>/certificate")
@spec.validate(
    resp=responses(201, CertificateOut, 404, 409), tags=["seals"], operation_id="apply_seal_certificate"
)
def apply_seal(seal_id: int, json: ConsentIn) -> tuple[CertificateOut, int]:
    """Apply for a seal's certificate (org admins of its organisation), accepting the agreement"""
    view = apply_seal_certificate(
        current_services().workflow, api_principal(), client_info(), seal_id, _consent(json)
    )
    return certificate_out(view), 201


@bp.post(f"/seals/<{ID}:seal_id>/certificate/renew")
@spec.validate(
    resp=responses(201, CertificateOut, 404, 409), tags=["seals"], operation_id="renew_seal_certificate"
)
def renew_seal(seal_id: int, json: ConsentIn) -> tuple[CertificateOut, int]:
    """Renew a seal's certificate (org admins of its organisation), accepting the agreement again

    From 30 days before it expires. A new key and certificate; the old one signs no more.
    """
    view = renew_seal_certificate(
        current_services().workflow, api_principal(), client_info(), seal_id, _consent(json)
    )
    return certificate_out(view), 201


@bp.post(f"/seals/<{ID}:seal_id>/certificate/revoke")
@spec.validate(
    resp=responses(200, CertificateOut, 404, 409), tags=["seals"], operation_id="revoke_seal_certificate"
)
def revoke_seal(seal_id: int, json: RevokeSealCertificateIn) -> CertificateOut:
    """Revoke a seal's certificate with a reason (org admins of its organisation)

    The CRL is published at once; the seal signs nothing until a new certificate is applied for.
    """
    view = revoke_seal_certificate(
        current_services().workflow, api_principal(), client_info(), seal_id, json.reason
    )
    return certificate_out(view)


def _consent(body: ConsentIn) -> Consent:
    return Consent(
        agreement_version=body.agreement_version, agreement_sha256=body.agreement_sha256, locale=body.locale
    )


@bp.get("/people")
@spec.validate(resp=responses(200, PeopleOut, 503), tags=["parties"], operation_id="find_people")
def people(query: PeopleQuery) -> PeopleOut:
    """People in the directory to add as parties (they need not have signed in yet)

    Matches part of a name, login name or e-mail; enabled accounts only. E-mail addresses and
    phone numbers are not shown.
    """
    return people_out(find_people(current_services().workflow, api_principal(), query.q, limit=query.limit))
