"""The archive: completed contracts past their archiving period, for archive admins only."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_login import login_required
from werkzeug.datastructures import MultiDict

from appliance.web.auth.principal import page_principal
from appliance.web.context import current_services
from appliance.web.contracts.forms import ArchiveFilterForm
from appliance.workflow.queries import ContractFilter, list_contracts

bp = Blueprint("archive_pages", __name__)

PAGE_SIZE = 20


@bp.get("/archive")
@login_required  # type: ignore[misc]
def archive() -> str:
    form = ArchiveFilterForm(MultiDict(request.args))
    where = ContractFilter(archived=True, **(form.terms() if form.validate() else {}))
    page = list_contracts(
        current_services().workflow,
        page_principal(),
        where,
        cursor=request.args.get("cursor") or None,
        limit=PAGE_SIZE,
    )
    filters = {k: v for k, v in request.args.items() if k != "cursor" and v}
    return render_template("contracts/archive.html", page=page, form=form, filters=filters)
