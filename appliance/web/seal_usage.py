"""The seals' usage logs for the organisation's auditors (admins read them on the seal pages)."""

from __future__ import annotations

from flask import Blueprint, Flask, render_template
from flask_login import login_required

from appliance.errors import NotFound
from appliance.permissions import Action, roles_for
from appliance.web.auth.principal import page_principal
from appliance.web.context import current_services
from appliance.workflow.seal_usage import NO_SUCH_SEAL, seal_usage_log, seals_with_usage

bp = Blueprint("seal_usage_pages", __name__)


@bp.get("/audit/seals")
@login_required  # type: ignore[misc]
def seals() -> str:
    rows = seals_with_usage(current_services().workflow, page_principal())
    return render_template("audit/seals.html", seals=rows)


@bp.get("/audit/seals/<int:seal_id>")
@login_required  # type: ignore[misc]
def seal(seal_id: int) -> str:
    workflow, principal = current_services().workflow, page_principal()
    usage = seal_usage_log(workflow, principal, seal_id)  # refuses another organisation's seal
    summary = seals_with_usage(workflow, principal, seal_id=seal_id)
    if not summary:
        raise NotFound(NO_SUCH_SEAL)
    return render_template("audit/seal_usage.html", seal=summary[0], usage=usage)


def install_seal_usage_pages(app: Flask) -> None:
    """Register the pages and tell the navigation who may see them."""
    app.register_blueprint(bp)
    app.context_processor(lambda: {"seal_usage_roles": roles_for(Action.READ_SEAL_USAGE)})
