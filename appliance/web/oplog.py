"""The operation log page for auditors and system administrators, with filters and CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

from flask import Blueprint, Flask, render_template, request
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response
from wtforms import DateField, IntegerField, StringField
from wtforms.validators import Length, NumberRange, Optional

from appliance.audit.browse import LogEntry, LogFilter
from appliance.web.auth.principal import client_info, page_principal
from appliance.web.context import current_services
from appliance.web.dates import end_of, start_of
from appliance.web.files import attachment_disposition
from appliance.workflow.oplog import LOG_READERS, browse_log, export_log

bp = Blueprint("oplog", __name__)

PAGE_SIZE = 50
CSV_COLUMNS = (
    "seq",
    "occurred_at",
    "action",
    "actor",
    "object_type",
    "object_id",
    "contract_id",
    "client_address",
    "user_agent",
    "details",
    "hash",
)
# a spreadsheet runs a cell that starts with one of these as a formula (CSV injection)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class LogFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET form: it changes nothing

    action = StringField(_l("Action starts with"), validators=[Optional(), Length(max=100)])
    actor = StringField(_l("Actor contains"), validators=[Optional(), Length(max=200)])
    contract = IntegerField(_l("Contract id"), validators=[Optional(), NumberRange(min=1)])
    since = DateField(_l("From"), validators=[Optional()])
    until = DateField(_l("Up to"), validators=[Optional()])


@bp.get("/audit/log")
@login_required  # type: ignore[misc]
def log_page() -> str:
    form = LogFilterForm(MultiDict(request.args))
    where = _filter(form) if form.validate() else LogFilter()
    before = request.args.get("before", type=int)
    page = browse_log(current_services().workflow, page_principal(), where, before=before, limit=PAGE_SIZE)
    filters = {k: v for k, v in request.args.items() if k != "before" and v}
    return render_template("audit/log.html", page=page, form=form, filters=filters)


@bp.get("/audit/log.csv")
@login_required  # type: ignore[misc]
def log_csv() -> Response:
    form = LogFilterForm(MultiDict(request.args))
    where = _filter(form) if form.validate() else LogFilter()
    services = current_services()
    entries = export_log(services.workflow, page_principal(), client_info(), where)
    filename = f"operation-log-{services.clock.now():%Y%m%d-%H%M}.csv"
    return Response(
        _csv(entries),
        mimetype="text/csv",
        headers={"Content-Disposition": attachment_disposition(filename)},
    )


def install_oplog_pages(app: Flask) -> None:
    """Register the pages and tell the navigation who may see them."""
    app.register_blueprint(bp)
    app.context_processor(lambda: {"log_reader_roles": LOG_READERS})


def _filter(form: LogFilterForm) -> LogFilter:
    return LogFilter(
        action=(form.action.data or "").strip() or None,
        actor=(form.actor.data or "").strip() or None,
        contract_id=form.contract.data,
        since=start_of(form.since.data),
        until=end_of(form.until.data),
    )


def _csv(entries: Iterable[LogEntry]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    # the byte order mark tells spreadsheet programs the file is UTF-8 (names in Chinese)
    yield "\ufeff".encode()
    writer.writerow(CSV_COLUMNS)
    for count, entry in enumerate(entries, start=1):
        writer.writerow(
            _safe(value)
            for value in (
                entry.seq,
                entry.occurred_at.isoformat(),
                entry.action,
                entry.actor_name,
                entry.object_type,
                entry.object_id,
                entry.contract_id,
                entry.client_address,
                entry.user_agent,
                entry.details,
                entry.hash,
            )
        )
        if count % 500 == 0:
            yield _drain(buffer)
    yield _drain(buffer)


def _safe(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    return data
