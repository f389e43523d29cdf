"""/api/v1/me/personal-data: what the appliance holds about the token's owner (the "Me" page's export)."""

from __future__ import annotations

from pydantic import RootModel

from appliance.web.api.spec import responses, spec
from appliance.web.api.transport import api_blueprint, api_principal
from appliance.web.auth.principal import client_info
from appliance.web.context import current_services
from appliance.workflow.personal_data import PersonalData, export_my_personal_data

bp = api_blueprint("personal_api", __name__)


class PersonalDataOut(RootModel[PersonalData]):
    """Profile, roles, certificates, accepted agreements, contracts, API tokens and recent sign-ins."""


@bp.get("/me/personal-data")
@spec.validate(resp=responses(200, PersonalDataOut), tags=["people"], operation_id="my_personal_data")
def personal_data() -> PersonalDataOut:
    """Everything the appliance holds about you (recorded in the operation log as an export)"""
    return PersonalDataOut(
        export_my_personal_data(current_services().workflow, api_principal(), client_info())
    )
