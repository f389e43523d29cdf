"""/api/v1/authenticator: adding an authenticator app for verification codes, and removing it.

Adding one takes two steps: POST starts it (the app's secret comes back, and a code goes to
your e-mail address), then POST /authenticator/confirm with that e-mailed code and the app's
first code. A token alone cannot move someone's codes to an app.
"""

from __future__ import annotations

from appliance.web.api.models import (
    AuthenticatorStatusOut,
    ConfirmEnrolmentIn,
    EnrolmentOut,
    authenticator_status_out,
    enrolment_out,
)
from appliance.web.api.spec import responses, spec
from appliance.web.api.transport import api_blueprint, api_principal
from appliance.web.auth.principal import client_info
from appliance.web.context import current_services
from appliance.workflow.authenticator import (
    confirm_enrolment,
    enrolment_status,
    remove_enrolment,
    start_enrolment,
)

bp = api_blueprint("authenticator_api", __name__)


@bp.get("/authenticator")
@spec.validate(
    resp=responses(200, AuthenticatorStatusOut), tags=["authenticator"], operation_id="authenticator_status"
)
def status() -> AuthenticatorStatusOut:
    """Whether you have a confirmed authenticator app"""
    return authenticator_status_out(enrolment_status(current_services().workflow, api_principal()))


@bp.post("/authenticator")
@spec.validate(
    resp=responses(201, EnrolmentOut, 409, 429),
    tags=["authenticator"],
    operation_id="start_authenticator_enrolment",
)
def start() -> tuple[EnrolmentOut, int]:
    """Start adding an authenticator app; a confirmation code is e-mailed to you

    Add the returned URI (as a QR code) or secret to the app, then confirm. Starting again
    replaces the pending secret and code. 403 when this appliance sends codes by e-mail only,
    409 when an app is set up already (remove it first).
    """
    started = start_enrolment(current_services().workflow, api_principal(), client_info())
    return enrolment_out(started), 201


@bp.post("/authenticator/confirm")
@spec.validate(
    resp=responses(200, AuthenticatorStatusOut, 409),
    tags=["authenticator"],
    operation_id="confirm_authenticator_enrolment",
)
def confirm(json: ConfirmEnrolmentIn) -> AuthenticatorStatusOut:
    """Confirm the app with the e-mailed code and the code the app shows now

    From then on verification codes for signing come from the app. Wrong codes are counted;
    after too many, start again.
    """
    confirmed = confirm_enrolment(
        current_services().workflow, api_principal(), client_info(), json.email_code, json.authenticator_code
    )
    return authenticator_status_out(confirmed)


@bp.delete("/authenticator")
@spec.validate(
    resp=responses(200, AuthenticatorStatusOut, 404),
    tags=["authenticator"],
    operation_id="remove_authenticator",
)
def remove() -> AuthenticatorStatusOut:
    """Remove your authenticator app (lost phone), or a pending one; codes come by e-mail again"""
    return authenticator_status_out(
        remove_enrolment(current_services().workflow, api_principal(), client_info())
    )
