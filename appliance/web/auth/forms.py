"""Forms of the sign-in pages (CSRF-protected by Flask-WTF)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import InputRequired, Length


class LoginForm(FlaskForm):
    # No length limits here: the login domain refuses over-long names and passwords itself
    # (for the API too) and counts them as failed sign-ins. An empty password also reaches
    # it, to be refused before any LDAP traffic and recorded like every other failure.
    username = StringField(_l("User name"), validators=[InputRequired()])
    password = PasswordField(_l("Password"))


class TokenForm(FlaskForm):
    name = StringField(_l("Token name"), validators=[InputRequired(), Length(max=100)])
    # a token outlives the session by months: minting one asks for the password again
    password = PasswordField(_l("Your password"), validators=[InputRequired()])


class PlainForm(FlaskForm):
    """A form with nothing but its CSRF token (logout, revoke)."""
