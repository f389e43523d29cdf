"""Delivering verification codes to the person who is about to sign.

A channel is a `CodeSender`: `send(to, code, context)` hands one code to one person, after the
commit that issued it (appliance.workflow.codes), and raises `appliance.errors.Unavailable`
when it cannot. E-mail is built in (`EmailCodeSender`); an authenticator app needs no sender.

Adding a channel, for example an SMS gateway:

1. Write a class with the `send` method below in a module of this package (``sms.py``): `to`
   is the destination it understands (a phone number), `code` the plaintext, `context` what
   the text may say. Wrap the gateway's errors as `Unavailable` (``raise ... from exc``) and
   never put the code into a log line, an exception or a URL that the gateway logs; a
   gateway that needs the code in a URL query must get it in the request body instead.
2. Add a `CodeChannel` member and the gateway's settings (URL, credentials file) to
   appliance/config.py, with the credentials resolved like the other secrets.
3. Build the sender in appliance/services.py and put it in the workflow's `code_senders`
   under its channel; the workflow chooses the destination (the person's phone number) and
   masks it for the page.
4. Test it against a real gateway double started by the test (an HTTP server on 127.0.0.1),
   checking what arrives, as tests/workflow/test_codes.py does with SMTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from enum import StrEnum
from typing import Protocol

from appliance.notify.mailer import Mailer
from appliance.notify.messages import CHINESE

# long enough to recognise the contract, short enough for a mail client's subject column
_SUBJECT_TITLE_LENGTH = 80


class CodePurpose(StrEnum):
    SIGNING = "signing"
    """Confirms a signature on the contract named in the message."""
    ENROLMENT = "enrolment"
    """Proves the person reads their mail before an authenticator app takes over their codes."""
    CANCELLATION = "cancellation"
    """Confirms that the person cancels their account for good."""


@dataclass(frozen=True)
class CodeContext:
    """What a code's message may say besides the code."""

    contract_title: str
    """The contract's title (for enrolment: what is being done, in the person's language)."""
    signer_name: str
    expires_at: datetime
    locale: str | None
    """The person's language; English unless it is zh_Hans_CN."""
    purpose: CodePurpose = CodePurpose.SIGNING


class CodeSender(Protocol):
    def send(self, to: str, code: str, context: CodeContext) -> None:
        """Deliver `code` to `to`.

        :raises Unavailable: the channel cannot take it now.
        """
        ...


@dataclass(frozen=True)
class _Texts:
    subject: str
    body: str


_SIGNING_TEXTS = {
    "en": _Texts(
        "Verification code to sign \u201c{title}\u201d",
        "Hello {name},\n\n"
        "Your verification code to sign \u201c{title}\u201d is:\n\n"
        "    {code}\n\n"
        "It is valid until {expires} and works once, for this contract only. Enter it only on "
        "the signing page of the e-signature service; nobody from the company will ask you for it.\n\n"
        "If you did not ask to sign this contract, do not use the code and tell your IT department.",
    ),
    CHINESE: _Texts(
        "签署\u300a{title}\u300b的验证码",
        "{name}，您好：\n\n"
        "您签署\u300a{title}\u300b的验证码是：\n\n"
        "    {code}\n\n"
        "验证码在 {expires} 之前有效，仅可使用一次，且只用于该合同。请只在电子签约服务的签署页面输入，"
        "公司的任何人都不会向您索要验证码。\n\n"
        "如果您并未要求签署该合同，请不要使用此验证码，并联系 IT 部门。",
    ),
}


_ENROLMENT_TEXTS = {
    "en": _Texts(
        "Verification code: adding an authenticator app",
        "Hello {name},\n\n"
        "Your verification code to add an authenticator app to your e-signature account is:\n\n"
        "    {code}\n\n"
        "It is valid until {expires} and works once. Once the app is added, the codes that confirm "
        "your signatures come from it instead of by e-mail.\n\n"
        "If you did not ask for this, do not use the code and tell your IT department at once: "
        "someone may be using your account.",
    ),
    CHINESE: _Texts(
        "验证码：添加身份验证器应用",
        "{name}，您好：\n\n"
        "您为电子签约账户添加身份验证器应用的验证码是：\n\n"
        "    {code}\n\n"
        "验证码在 {expires} 之前有效，仅可使用一次。"
        "添加后，确认签署的验证码将由该应用生成，不再通过电子邮件发送。\n\n"
        "如果这不是您本人的操作，请不要使用此验证码，并立即联系 IT 部门：可能有人在使用您的账户。",
    ),
}

_CANCELLATION_TEXTS = {
    "en": _Texts(
        "Verification code: cancelling your account",
        "Hello {name},\n\n"
        "Your verification code to cancel your e-signature account is:\n\n"
        "    {code}\n\n"
        "It is valid until {expires} and works once. Cancelling cannot be undone: your name, "
        "e-mail address and phone number are removed, you cannot sign in to this account again, "
        "and the contracts you signed stay with their evidence for the period the law requires. "
        "Download what you want to keep before you confirm.\n\n"
        "If you did not ask for this, do not use the code and tell your IT department at once: "
        "someone may be using your account.",
    ),
    CHINESE: _Texts(
        "验证码：注销您的账户",
        "{name}，您好：\n\n"
        "您注销电子签约账户的验证码是：\n\n"
        "    {code}\n\n"
        "验证码在 {expires} 之前有效，仅可使用一次。"
        "注销后无法恢复：您的姓名、电子邮件地址和电话号码将被删除，"
        "您无法再登录此账户，您已签署的合同及其证据将按法律要求的期限保存。确认前请下载您需要保留的文件。\n\n"
        "如果这不是您本人的操作，请不要使用此验证码，并立即联系 IT 部门：可能有人在使用您的账户。",
    ),
}
_TEXTS = {
    CodePurpose.SIGNING: _SIGNING_TEXTS,
    CodePurpose.ENROLMENT: _ENROLMENT_TEXTS,
    CodePurpose.CANCELLATION: _CANCELLATION_TEXTS,
}


class EmailCodeSender:
    """Codes by e-mail, in the person's language; the code is in the body, never the subject."""

    def __init__(self, mailer: Mailer, from_address: str) -> None:
        self._mailer = mailer
        self._from = from_address

    def send(self, to: str, code: str, context: CodeContext) -> None:
        texts = _TEXTS[context.purpose][CHINESE if context.locale == CHINESE else "en"]
        expires = f"{context.expires_at:%Y-%m-%d %H:%M} UTC"
        message = EmailMessage()
        message["From"] = self._from
        message["To"] = to
        message["Subject"] = texts.subject.format(title=_subject_title(context.contract_title))
        message["Date"] = formatdate(usegmt=True)
        # the domain given, so Python does not look up this host's name
        message["Message-ID"] = make_msgid(idstring="verification-code", domain=self._from.rpartition("@")[2])
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to us
        message.set_content(
            texts.body.format(
                name=context.signer_name, title=context.contract_title, code=code, expires=expires
            )
        )
        self._mailer.send(message)


def _subject_title(title: str) -> str:
    # a header takes no line breaks; the title is typed by whoever created the contract
    flat = " ".join(title.split())
    if len(flat) <= _SUBJECT_TITLE_LENGTH:
        return flat
    return flat[: _SUBJECT_TITLE_LENGTH - 1] + "\u2026"
