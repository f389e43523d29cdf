"""Home for a signed-in person: what waits for them, then their contracts, filtered, a page at a time."""

from __future__ import annotations

from flask import g, render_template, request
from werkzeug.datastructures import MultiDict

from appliance.web.auth.principal import session_user
from appliance.web.context import current_services
from appliance.web.contracts.forms import FilterForm
from appliance.workflow.approvals import list_my_approvals
from appliance.workflow.queries import ContractFilter, ListRole, list_contracts
from appliance.workflow.todo import list_todo

PAGE_SIZE = 20
TODO_COUNT_KEY = "todo_count"
"""`flask.g` key of the to-do count, once a view has it (the navigation shows it too)."""


def todo_page() -> str:
    """Home for someone signed in (`pages.home` calls it)."""
    user = session_user()
    assert user is not None
    workflow = current_services().workflow
    form = FilterForm(MultiDict(request.args))
    where = _filter(form) if form.validate() else ContractFilter()
    todo = list_todo(workflow, user.principal)
    g.setdefault(TODO_COUNT_KEY, todo.total)
    page = list_contracts(
        workflow, user.principal, where, cursor=request.args.get("cursor") or None, limit=PAGE_SIZE
    )
    filters = {k: v for k, v in request.args.items() if k != "cursor" and v}
    approvals = list_my_approvals(workflow, user.principal)
    return render_template(
        "contracts/home.html", todo=todo, approvals=approvals, page=page, form=form, filters=filters
    )


def _filter(form: FilterForm) -> ContractFilter:
    return ContractFilter(role=ListRole(form.role.data), **form.terms())
