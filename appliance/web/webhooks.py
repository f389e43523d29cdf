"""The system admin's webhook pages: the endpoints and a form to register one (its secret is
shown on the answer, once), and each endpoint's delivery log with redeliver and disable."""

from __future__ import annotations

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import SelectField, StringField
from wtforms.validators import InputRequired, Length

from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.notify.webhook_transport import MAX_URL_LENGTH
from appliance.notify.webhooks import EVENT_TYPES
from appliance.permissions import Action, roles_for
from appliance.web.auth.forms import PlainForm
from appliance.web.auth.principal import client_info, page_principal
from appliance.web.context import current_services
from appliance.web.contracts.problems import problem_text
from appliance.workflow.webhooks import (
    MAX_DESCRIPTION,
    deliveries,
    disable_endpoint,
    list_endpoints,
    organisations,
    redeliver,
    register_endpoint,
    webhook_endpoint,
)

bp = Blueprint("webhook_pages", __name__)
ENDPOINT = "/admin/webhooks/<int:endpoint_id>"


class EndpointForm(FlaskForm):
    organisation = SelectField(_l("Organisation"), coerce=int, validators=[InputRequired()])
    url = StringField(_l("Endpoint URL"), validators=[InputRequired(), Length(max=MAX_URL_LENGTH)])
    description = StringField(_l("Description"), validators=[Length(max=MAX_DESCRIPTION)])
    """The event types come as the checked `event` boxes."""


@bp.get("/admin/webhooks")
@login_required  # type: ignore[misc]
def endpoints() -> str:
    workflow, principal = current_services().workflow, page_principal()
    form = EndpointForm()
    form.organisation.choices = list(organisations(workflow, principal))
    return render_template(
        "webhooks/list.html",
        endpoints=list_endpoints(workflow, principal),
        form=form,
        event_types=EVENT_TYPES,
    )


@bp.post("/admin/webhooks")
@login_required  # type: ignore[misc]
def register() -> Response | str:
    workflow, principal = current_services().workflow, page_principal()
    form = EndpointForm()
    form.organisation.choices = list(organisations(workflow, principal))
    if not form.validate_on_submit():
        flash(_("Choose an organisation and give the endpoint's URL."), "error")
        return redirect(url_for(".endpoints"), code=303)
    try:
        registered = register_endpoint(
            workflow,
            principal,
            client_info(),
            form.organisation.data,
            form.url.data or "",
            request.form.getlist("event"),
            form.description.data or "",
        )
    except (Conflict, InvalidInput) as refused:
        flash(problem_text(refused), "error")
        return redirect(url_for(".endpoints"), code=303)
    return render_template("webhooks/registered.html", endpoint=registered.endpoint, secret=registered.secret)


@bp.get(ENDPOINT)
@login_required  # type: ignore[misc]
def endpoint(endpoint_id: int) -> str:
    workflow, principal = current_services().workflow, page_principal()
    return render_template(
        "webhooks/show.html",
        endpoint=webhook_endpoint(workflow, principal, endpoint_id),
        deliveries=deliveries(workflow, principal, endpoint_id),
        form=PlainForm(),
    )


@bp.post(f"{ENDPOINT}/deliveries/<int:delivery_id>/redeliver")
@login_required  # type: ignore[misc]
def redeliver_one(endpoint_id: int, delivery_id: int) -> Response:
    try:
        redeliver(current_services().workflow, page_principal(), client_info(), endpoint_id, delivery_id)
        flash(_("The event goes out again at the delivery job's next run."), "info")
    except (Conflict, NotFound) as refused:
        flash(problem_text(refused), "error")
    return redirect(url_for(".endpoint", endpoint_id=endpoint_id), code=303)


@bp.post(f"{ENDPOINT}/disable")
@login_required  # type: ignore[misc]
def disable(endpoint_id: int) -> Response:
    disable_endpoint(current_services().workflow, page_principal(), client_info(), endpoint_id)
    flash(_("The endpoint is disabled: nothing more is queued for it."), "info")
    return redirect(url_for(".endpoint", endpoint_id=endpoint_id), code=303)


def install_webhook_pages(app: Flask) -> None:
    """Register the pages and tell the navigation who may see them."""
    app.register_blueprint(bp)
    app.context_processor(lambda: {"webhook_admin_roles": roles_for(Action.MANAGE_WEBHOOKS)})
