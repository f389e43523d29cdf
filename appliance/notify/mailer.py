"""Sending mail: a narrow interface, and SMTP (STARTTLS when configured) behind it."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from typing import Protocol

from pydantic import SecretStr

from appliance.config import MailConfig
from appliance.errors import Unavailable

MAIL_UNAVAILABLE = "The mail server cannot take messages right now."
_REFUSED_MESSAGE = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError)


class MailServerDown(Unavailable):
    """The mail server could not be reached or talked to at all (not: it refused this message)."""


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Hand one message to the mail server.

        :raises MailServerDown: the server cannot be used at all (connect, STARTTLS, login).
        :raises Unavailable: it refused this one message.
        """
        ...


class SmtpMailer:
    def __init__(self, cfg: MailConfig, password: SecretStr | None, timeout_seconds: float = 10) -> None:
        self._cfg = cfg
        self._password = password
        self._timeout = timeout_seconds

    def send(self, message: EmailMessage) -> None:
        where = f"{self._cfg.host}:{self._cfg.port}"
        try:
            with smtplib.SMTP(self._cfg.host, self._cfg.port, timeout=self._timeout) as smtp:
                self._start_session(smtp)
                try:
                    smtp.send_message(message)
                except _REFUSED_MESSAGE as exc:
                    detail = f"mail server {where} refused it: {exc}"
                    raise Unavailable(MAIL_UNAVAILABLE, detail=detail) from exc
        except (smtplib.SMTPException, OSError) as exc:
            # the server's own words help the operator; never the password
            raise MailServerDown(MAIL_UNAVAILABLE, detail=f"mail server {where}: {exc}") from exc

    def _start_session(self, smtp: smtplib.SMTP) -> None:
        if self._cfg.starttls:
            cafile = str(self._cfg.ca_file) if self._cfg.ca_file else None
            smtp.starttls(context=ssl.create_default_context(cafile=cafile))
        if self._cfg.username:
            if self._password is None:
                raise MailServerDown(MAIL_UNAVAILABLE, detail="mail.username is set but no password is")
            smtp.login(self._cfg.username, self._password.get_secret_value())
