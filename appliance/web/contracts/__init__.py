"""Pages for people signed in with a browser session: the to-do home, the contract page with
its previews and documents, the sign page, the New-contract pages, their certificates and
the Verify page, and the template pages.

Each view calls one workflow command for the session's person (two where a page shows two
things, such as a contract and its evidence) and renders its frozen view.
"""

from __future__ import annotations

from flask import Flask, g
from flask_login import current_user

from appliance.notify import count_unread
from appliance.permissions import Action, scope_of
from appliance.web.auth.principal import session_user
from appliance.web.context import current_services
from appliance.web.contracts import archive, contract, drafting, me, signing, templates
from appliance.web.contracts.home import TODO_COUNT_KEY
from appliance.web.contracts.labels import install_labels
from appliance.workflow.todo import count_todo

__all__ = ["install_contract_pages"]


def install_contract_pages(app: Flask) -> None:
    """Register the pages (home, the to-do list, is `pages.home`)."""
    app.register_blueprint(contract.bp)
    app.register_blueprint(signing.bp)
    app.register_blueprint(me.bp)
    app.register_blueprint(drafting.bp)
    app.register_blueprint(archive.bp)
    app.register_blueprint(templates.bp)
    install_labels(app)
    app.context_processor(_navigation)


def _navigation() -> dict[str, object]:
    """What the navigation counts; read only for a signed-in person (error pages of a failed
    database show as to a visitor, so this is not asked then)."""
    if not current_user.is_authenticated:
        return {}
    user = session_user()
    if user is None:
        return {}
    services = current_services()
    counted = g.get(TODO_COUNT_KEY)  # the home page has just counted the to-do list
    return {
        "todo_count": counted if counted is not None else count_todo(services.workflow, user.principal),
        "unread_count": count_unread(services.sessions, user.principal.user_id),
        "keeps_archive": scope_of(user.principal.roles, Action.READ_ARCHIVE) is not None,
    }
