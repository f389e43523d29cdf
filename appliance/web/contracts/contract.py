"""The contract page, its page previews, its documents, and rejecting or withdrawing it.

A contract the person may not see answers 404 on every route here, like a missing id
(appliance.workflow.access).
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from werkzeug.wrappers import Response as BaseResponse

from appliance.errors import Conflict, Forbidden, InvalidInput, RateLimited
from appliance.web.after_response import follow_up
from appliance.web.auth.principal import client_info, page_principal
from appliance.web.context import current_services
from appliance.web.contracts.forms import DecisionForm, ReasonForm, RemindForm
from appliance.web.contracts.problems import problem_text
from appliance.web.files import ID, file_download
from appliance.workflow.approvals import decide_approval
from appliance.workflow.closing import reject_contract, remind_parties, withdraw_contract
from appliance.workflow.context import WorkflowContext
from appliance.workflow.queries import Document, contract_evidence, get_contract, open_document, preview_page

bp = Blueprint("contract_pages", __name__)

CONTRACT = f"/contracts/<{ID}:contract_id>"
DOCUMENTS = ", ".join(d.value for d in Document)


@bp.get(CONTRACT)
@login_required  # type: ignore[misc]
def show(contract_id: int) -> str:
    principal = page_principal()
    workflow = current_services().workflow
    view = get_contract(workflow, principal, client_info(), contract_id)
    evidence = contract_evidence(workflow, principal, contract_id)
    return render_template(
        "contracts/show.html",
        contract=view,
        evidence=evidence,
        viewer_id=principal.user_id,
        reason_form=ReasonForm(),
        remind_form=RemindForm(),
        decision_form=DecisionForm(),
    )


@bp.get(f"{CONTRACT}/pages/<int(min=1, max=100000):page>.png")
@login_required  # type: ignore[misc]
def page_image(contract_id: int, page: int) -> Response:
    """A page of the current version; with ?party=<id>, that party's fields are drawn on it."""
    party = request.args.get("party", type=int)
    png = preview_page(current_services().workflow, page_principal(), contract_id, page, party)
    return Response(png, mimetype="image/png")


@bp.get(f"{CONTRACT}/documents/<any({DOCUMENTS}):which>")
@login_required  # type: ignore[misc]
def document(contract_id: int, which: str) -> BaseResponse:
    opened = open_document(
        current_services().workflow, page_principal(), client_info(), contract_id, Document(which)
    )
    return file_download(opened, "application/pdf")


@bp.post(f"{CONTRACT}/parties/<{ID}:party_id>/reject")
@login_required  # type: ignore[misc]
def reject(contract_id: int, party_id: int) -> Response:
    form = ReasonForm()
    return _act(
        contract_id,
        form,
        lambda workflow: reject_contract(
            workflow, page_principal(), client_info(), contract_id, party_id, form.reason.data or ""
        ),
        _("You rejected the contract. Everyone involved is told."),
    )


@bp.post(f"{CONTRACT}/approvals/<{ID}:approval_id>/<any(approve, reject):decision>")
@login_required  # type: ignore[misc]
def decide(contract_id: int, approval_id: int, decision: str) -> Response:
    form = DecisionForm()
    approve = decision == "approve"
    return _act(
        contract_id,
        form,
        lambda workflow: follow_up(
            workflow,
            decide_approval(
                workflow,
                page_principal(),
                client_info(),
                contract_id,
                approval_id,
                approve=approve,
                comment=form.comment.data or "",
            ),
        ),
        _("You approved the use of the seal.")
        if approve
        else _("You rejected the use of the seal. The initiator is told."),
    )


@bp.post(f"{CONTRACT}/remind")
@login_required  # type: ignore[misc]
def remind(contract_id: int) -> Response:
    return _act(
        contract_id,
        RemindForm(),
        lambda workflow: remind_parties(workflow, page_principal(), client_info(), contract_id),
        _("The parties whose turn it is were reminded."),
    )


@bp.post(f"{CONTRACT}/withdraw")
@login_required  # type: ignore[misc]
def withdraw(contract_id: int) -> Response:
    form = ReasonForm()
    return _act(
        contract_id,
        form,
        lambda workflow: withdraw_contract(
            workflow, page_principal(), client_info(), contract_id, form.reason.data or ""
        ),
        _("You withdrew the contract. Everyone involved is told."),
    )


def _act(
    contract_id: int, form: FlaskForm, action: Callable[[WorkflowContext], object], done: str
) -> Response:
    """Run a contract page's form `action`; its outcome, or why not, shows on the contract page."""
    if not form.validate_on_submit():
        if isinstance(form, ReasonForm):
            flash(_("Give a reason (at most 1000 characters)."), "error")
    else:
        try:
            action(current_services().workflow)
            flash(done, "info")
        except (Conflict, Forbidden, InvalidInput, RateLimited) as refused:
            flash(problem_text(refused), "error")
    return redirect(url_for(".show", contract_id=contract_id), code=303)
