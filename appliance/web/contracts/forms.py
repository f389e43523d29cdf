"""Forms of the contract pages. The list filter is a GET form (it changes nothing, so it has
no CSRF token); every POST form carries Flask-WTF's CSRF token."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    DateField,
    FloatField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional, Regexp

from appliance.models import ContractState, PartyKind, Routing
from appliance.web.contracts.labels import STATES
from appliance.web.dates import end_of, start_of
from appliance.workflow.approvals import MAX_COMMENT
from appliance.workflow.certificates import Consent
from appliance.workflow.closing import MAX_REASON
from appliance.workflow.drafts import MAX_MESSAGE, MAX_TITLE
from appliance.workflow.queries import ListRole

ROLE_CHOICES = [
    SelectChoice(ListRole.ANY.value, _l("All my contracts")),
    SelectChoice(ListRole.INITIATED.value, _l("Started by me")),
    SelectChoice(ListRole.PARTY.value, _l("I am a party")),
    SelectChoice(ListRole.TO_SIGN.value, _l("Waiting for me")),
]


class _SearchForm(FlaskForm):
    """The search fields of a contract list; each list adds its own choice of states."""

    class Meta:
        csrf = False  # a GET form: it changes nothing

    state: SelectField
    """Set by each list, with the states it can hold."""
    created_from = DateField(_l("Created from"), validators=[Optional()])
    created_to = DateField(_l("Created until"), validators=[Optional()])
    title = StringField(_l("Title contains"), validators=[Optional(), Length(max=300)])
    party = StringField(_l("Party name contains"), validators=[Optional(), Length(max=200)])

    def terms(self) -> dict[str, Any]:
        """The ContractFilter arguments the fields give."""
        return {
            "state": ContractState(self.state.data) if self.state.data else None,
            "created_from": start_of(self.created_from.data),
            "created_to": end_of(self.created_to.data),
            "title": (self.title.data or "").strip() or None,
            "party": (self.party.data or "").strip() or None,
        }


def _state_field(states: Iterable[ContractState]) -> SelectField:
    return SelectField(
        _l("State"),
        choices=[SelectChoice("", _l("Any state"))] + [SelectChoice(s.value, STATES[s]) for s in states],
        default="",
        validators=[Optional()],
    )


class FilterForm(_SearchForm):
    role = SelectField(_l("Show"), choices=ROLE_CHOICES, default=ListRole.ANY.value)
    state = _state_field(STATES)


class ArchiveFilterForm(_SearchForm):
    state = _state_field((ContractState.COMPLETED, ContractState.ENDED, ContractState.VOIDED))


class ReasonForm(FlaskForm):
    reason = TextAreaField(_l("Reason"), validators=[InputRequired(), Length(max=MAX_REASON)])


class DecisionForm(FlaskForm):
    """An approver's decision; the comment is required to reject (the workflow says so)."""

    comment = TextAreaField(_l("Comment"), validators=[Length(max=MAX_COMMENT)])


class CodeForm(FlaskForm):
    """Sending a code asks for nothing but the CSRF token."""


class RemindForm(FlaskForm):
    """Reminding the parties asks for nothing but the CSRF token."""


class SignForm(FlaskForm):
    code = StringField(_l("Verification code"), validators=[InputRequired(), Length(max=20)])
    attempt = HiddenField(validators=[InputRequired(), Regexp(r"^[A-Za-z0-9_-]{16,64}$")])
    """A random id per sign page: a second submit of the same page replays the first answer."""


class ConsentForm(FlaskForm):
    agree = BooleanField(
        _l("I have read the certificate agreement and accept it"), validators=[InputRequired()]
    )
    agreement_version = HiddenField(validators=[InputRequired()])
    agreement_sha256 = HiddenField(validators=[InputRequired()])
    locale = HiddenField(validators=[InputRequired()])


def consent_of(form: ConsentForm) -> Consent:
    """What the person accepted: the agreement's version and hash sent back from the page."""
    return Consent(
        agreement_version=form.agreement_version.data or "",
        agreement_sha256=form.agreement_sha256.data or "",
        locale=form.locale.data or "",
    )


class NewContractForm(FlaskForm):
    file = FileField(_l("Contract (PDF)"), validators=[FileRequired()])
    title = StringField(_l("Title"), validators=[InputRequired(), Length(max=MAX_TITLE)])
    message = TextAreaField(_l("Message to the parties"), validators=[Optional(), Length(max=MAX_MESSAGE)])
    deadline = DateField(_l("Deadline (end of the day, UTC)"), validators=[Optional()])
    routing = SelectField(
        _l("Order of signing"),
        choices=[
            SelectChoice(Routing.SEQUENTIAL.value, _l("One after another, in the parties' order")),
            SelectChoice(Routing.PARALLEL.value, _l("All at once")),
        ],
        default=Routing.SEQUENTIAL.value,
    )
    not_excluded = BooleanField(
        _l(
            "This document is not one the law keeps from electronic signing: it is not about "
            "marriage, adoption or inheritance, nor about stopping water, heat, gas or power supply."
        ),
        validators=[InputRequired(_l("Confirm that the document may be signed electronically."))],
    )
    attempt = HiddenField(validators=[InputRequired(), Regexp(r"^[A-Za-z0-9_-]{16,64}$")])
    """A random id per form: a second submit of the same form gets the first draft back."""


class PartyForm(FlaskForm):
    kind = SelectField(
        _l("Party"),
        choices=[
            SelectChoice(PartyKind.PERSON.value, _l("A person")),
            SelectChoice(PartyKind.SEAL.value, _l("A seal")),
        ],
    )
    username = StringField(_l("Login name"), validators=[Optional(), Length(max=200)])
    seal_id = IntegerField(_l("Seal"), validators=[Optional()])
    routing_order = IntegerField(
        _l("Signs in round"), default=1, validators=[InputRequired(), NumberRange(1, 50)]
    )
    page = IntegerField(_l("Page"), default=1, validators=[InputRequired(), NumberRange(min=1)])
    x = FloatField(_l("From the left (points)"), default=72, validators=[InputRequired()])
    y = FloatField(_l("From the bottom (points)"), default=72, validators=[InputRequired()])
    width = FloatField(_l("Width (points)"), default=180, validators=[InputRequired()])
    height = FloatField(_l("Height (points)"), default=60, validators=[InputRequired()])
