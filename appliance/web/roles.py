"""Role names as people read them, in the page's language; the API keeps the codes."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask
from flask_babel import LazyString
from flask_babel import lazy_gettext as _l

from appliance.models.enums import Role

ROLE_LABELS: Mapping[Role, LazyString] = {
    Role.EMPLOYEE: _l("Employee"),
    Role.INITIATOR: _l("Contract initiator"),
    Role.APPROVER: _l("Approver"),
    Role.SEAL_KEEPER: _l("Seal keeper"),
    Role.ORG_ADMIN: _l("Organisation administrator"),
    Role.ARCHIVE_ADMIN: _l("Archive administrator"),
    Role.AUDITOR: _l("Auditor"),
    Role.SYSTEM_ADMIN: _l("System administrator"),
}


def role_label(role: Role) -> str:
    """The translated name of `role` (the `role_label` template filter)."""
    return str(ROLE_LABELS[role])


def install_role_labels(app: Flask) -> None:
    app.add_template_filter(role_label, "role_label")
