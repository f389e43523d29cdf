"""What each kind of notification says, in English and Simplified Chinese.

A notification stores its kind and facts; the text is made when it is read or mailed, in
the reader's language, so a person who switches language sees old notices in the new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

CHINESE = "zh_Hans_CN"


@dataclass(frozen=True)
class Message:
    subject: str
    body: str


@dataclass(frozen=True)
class _Texts:
    subject: str
    body: str


_TEXTS: dict[str, dict[str, _Texts]] = {
    "account_locked": {
        "en": _Texts(
            "Sign-in to your e-signature account is blocked",
            "Hello {name},\n\nAfter repeated failed sign-in attempts {where}, signing in is blocked "
            "until {until}.\n\nIf this was not you, tell your IT department. An organisation "
            "administrator can lift the block sooner.",
        ),
        CHINESE: _Texts(
            "您的电子签约账号暂时无法登录",
            "{name}，您好：\n\n{where}多次登录失败，在 {until} 之前无法登录。\n\n"
            "如果这不是您本人的操作，请联系 IT 部门。组织管理员可以提前解除限制。",
        ),
    },
    "account_unlocked": {
        "en": _Texts(
            "Sign-in to your e-signature account works again",
            "Hello {name},\n\n{admin} lifted the block on signing in to your account. You can sign "
            "in again now.",
        ),
        CHINESE: _Texts(
            "您的电子签约账号已恢复登录",
            "{name}，您好：\n\n{admin} 已解除您账号的登录限制，您现在可以重新登录。",
        ),
    },
}

# facts stored as ISO 8601 text and shown as a time
_TIMES: dict[str, tuple[str, ...]] = {"account_locked": ("until",)}

_WHERE = {
    "en": {"account": "on your account", "address": "from the address {address}"},
    CHINESE: {"account": "您的账号", "address": "从地址 {address} "},
}


def known_kinds() -> frozenset[str]:
    return frozenset(_TEXTS)


def render_message(kind: str, params: dict[str, Any], locale: str | None) -> Message:
    """The text of a notification in `locale` (English when it is not Chinese)."""
    language = CHINESE if locale == CHINESE else "en"
    texts = _TEXTS[kind][language]
    values = dict(params)
    for key in _TIMES.get(kind, ()):
        values[key] = f"{datetime.fromisoformat(params[key]):%Y-%m-%d %H:%M} UTC"
    if "scope" in params:
        values["where"] = _WHERE[language][params["scope"]].format(address=params.get("address", ""))
    return Message(texts.subject.format(**values), texts.body.format(**values))
