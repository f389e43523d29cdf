"""The sign page: the document with the viewer's fields, a code by e-mail, the code, the signature.

A signer without a usable personal certificate sees the certificate agreement there first;
accepting it issues the certificate and brings them back to the same page. When and where
the last code went is kept in the (signed) session cookie, for the page's re-send countdown.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Blueprint, flash, redirect, render_template, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import login_required
from werkzeug.wrappers import Response

from appliance.errors import Conflict, Forbidden, InvalidInput, NotFound, RateLimited
from appliance.models import PartyKind
from appliance.web.after_response import follow_up
from appliance.web.auth.principal import client_info, page_principal
from appliance.web.context import current_services
from appliance.web.contracts.forms import CodeForm, ConsentForm, SignForm
from appliance.web.contracts.me import apply_with_consent
from appliance.web.contracts.problems import problem_text
from appliance.web.errors import status_for
from appliance.web.files import ID
from appliance.workflow.certificates import (
    certificate_agreement,
    my_certificate,
)
from appliance.workflow.idempotency import IdempotencyKey
from appliance.workflow.queries import get_contract
from appliance.workflow.signatures import request_code, sign_party

bp = Blueprint("sign_pages", __name__)

PARTY = f"/contracts/<{ID}:contract_id>/parties/<{ID}:party_id>"
RESEND_AFTER_SECONDS = 60
"""The page offers a new code this long after the last one (the workflow limits codes per hour)."""
SENT_KEY = "codes_sent"


@bp.get(f"{PARTY}/sign")
@login_required  # type: ignore[misc]
def sign_page(contract_id: int, party_id: int) -> Response:
    return _render(contract_id, party_id)


@bp.post(f"{PARTY}/code")
@login_required  # type: ignore[misc]
def send_code(contract_id: int, party_id: int) -> Response:
    if CodeForm().validate_on_submit():
        try:
            sent = request_code(
                current_services().workflow, page_principal(), client_info(), contract_id, party_id
            )
        except (RateLimited, Conflict, Forbidden, InvalidInput) as refused:
            flash(problem_text(refused), "error")
        else:
            _remember_sent(contract_id, party_id, sent.destination, sent.expires_at)
    return redirect(url_for(".sign_page", contract_id=contract_id, party_id=party_id), code=303)


@bp.post(f"{PARTY}/sign")
@login_required  # type: ignore[misc]
def sign(contract_id: int, party_id: int) -> Response:
    form = SignForm()
    if not form.validate_on_submit():
        return _render(contract_id, party_id, error=_("Enter the verification code from the e-mail."))
    code = (form.code.data or "").strip()
    attempt = IdempotencyKey(
        key=f"page-{form.attempt.data}",
        operation=f"sign:{contract_id}:{party_id}",
        request_sha256=hashlib.sha256(code.encode()).hexdigest(),
    )
    workflow = current_services().workflow
    try:
        view = sign_party(workflow, page_principal(), client_info(), contract_id, party_id, code, attempt)
    except (InvalidInput, Conflict, Forbidden, RateLimited) as refused:
        # a wrong, expired or used code, a changed document, a lost turn: said on the same page
        return _render(contract_id, party_id, error=problem_text(refused), status=status_for(refused))
    follow_up(workflow, view)  # once the signer has the answer, so signing does not wait for it
    _forget_sent(contract_id, party_id)
    flash(_("You signed the contract."), "info")
    return redirect(url_for("contract_pages.show", contract_id=contract_id), code=303)


@bp.post(f"{PARTY}/certificate")
@login_required  # type: ignore[misc]
def apply_certificate(contract_id: int, party_id: int) -> Response:
    apply_with_consent()
    return redirect(url_for(".sign_page", contract_id=contract_id, party_id=party_id), code=303)


def _render(contract_id: int, party_id: int, *, error: str | None = None, status: int = 200) -> Response:
    principal = page_principal()
    workflow = current_services().workflow
    view = get_contract(workflow, principal, client_info(), contract_id)
    party = next((p for p in view.parties if p.id == party_id and p.yours), None)
    if party is None:
        raise NotFound("The contract has no party with that id that you sign for.")
    needs_certificate = party.kind is PartyKind.PERSON and my_certificate(workflow, principal) is None
    locale = str(get_locale())
    page = render_template(
        "contracts/sign.html",
        contract=view,
        party=party,
        can_sign=party.id in view.your_turn,
        agreement=certificate_agreement(locale) if needs_certificate else None,
        consent_form=ConsentForm(),
        code_form=CodeForm(),
        sign_form=SignForm(formdata=None, attempt=secrets.token_urlsafe(24)),
        sent=_sent(contract_id, party_id),
        error=error,
    )
    return Response(page, status=status, mimetype="text/html")


def _remember_sent(contract_id: int, party_id: int, destination: str, expires_at: datetime) -> None:
    sent = dict(session.get(SENT_KEY) or {})
    sent[f"{contract_id}:{party_id}"] = {
        "to": destination,
        "at": current_services().clock.now().timestamp(),
        "expires": expires_at.timestamp(),
    }
    session[SENT_KEY] = dict(list(sent.items())[-5:])  # the cookie stays small


def _forget_sent(contract_id: int, party_id: int) -> None:
    sent = dict(session.get(SENT_KEY) or {})
    if sent.pop(f"{contract_id}:{party_id}", None) is not None:
        session[SENT_KEY] = sent


def _sent(contract_id: int, party_id: int) -> CodeSentNote | None:
    entry = (session.get(SENT_KEY) or {}).get(f"{contract_id}:{party_id}")
    if not isinstance(entry, dict):
        return None
    now = current_services().clock.now().timestamp()
    return CodeSentNote(
        destination=str(entry.get("to", "")),
        expires_at=datetime.fromtimestamp(float(entry.get("expires", 0)), UTC),
        resend_in=max(0, int(float(entry.get("at", 0)) + RESEND_AFTER_SECONDS - now)),
        expired=float(entry.get("expires", 0)) <= now,
    )


@dataclass(frozen=True)
class CodeSentNote:
    destination: str
    expires_at: datetime
    resend_in: int
    """Seconds until the page offers another code (0: now)."""
    expired: bool
