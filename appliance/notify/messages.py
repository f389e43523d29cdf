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
    "account_unfrozen": {
        "en": _Texts(
            "Your e-signature account is no longer frozen",
            "Hello {name},\n\n{admin} lifted the freeze on your account. You can sign in and sign "
            "again. Your earlier sessions and API tokens stay ended: sign in anew and create new "
            "tokens where you need them.",
        ),
        CHINESE: _Texts(
            "您的电子签约账号已解除冻结",
            "{name}，您好：\n\n{admin} 已解除您账号的冻结，您可以重新登录和签署。此前的会话和 API "
            "令牌仍然失效：请重新登录，并按需创建新的令牌。",
        ),
    },
    "contract_to_sign": {
        "en": _Texts(
            "Please sign: {title}",
            'Hello {name},\n\n{initiator} asks you to sign "{title}"{deadline_text}.\n\n'
            "{note}Open it here: {link}",
        ),
        CHINESE: _Texts(
            "请签署：{title}",
            "{name}，您好：\n\n{initiator} 请您签署《{title}》{deadline_text}。\n\n{note}请在此打开：{link}",
        ),
    },
    "contract_completed": {
        "en": _Texts(
            "Signed by everyone: {title}",
            'Hello {name},\n\nEvery party has signed "{title}". The signed document and its '
            "certificate of completion are here: {link}",
        ),
        CHINESE: _Texts(
            "各方已签署完成：{title}",
            "{name}，您好：\n\n《{title}》已由各方签署完成。已签署的文件和签署完成证明请在此查看：{link}",
        ),
    },
    "contract_rejected": {
        "en": _Texts(
            "Rejected: {title}",
            'Hello {name},\n\n{actor} rejected "{title}". Reason: {reason}\n\nDetails: {link}',
        ),
        CHINESE: _Texts(
            "已拒签：{title}",
            "{name}，您好：\n\n{actor} 拒绝签署《{title}》。原因：{reason}\n\n详情：{link}",
        ),
    },
    "contract_withdrawn": {
        "en": _Texts(
            "Withdrawn: {title}",
            'Hello {name},\n\n{actor} withdrew "{title}"; it no longer needs your signature. '
            "Reason: {reason}\n\nDetails: {link}",
        ),
        CHINESE: _Texts(
            "已撤回：{title}",
            "{name}，您好：\n\n{actor} 撤回了《{title}》，无需您再签署。原因：{reason}\n\n详情：{link}",
        ),
    },
    "contract_expired": {
        "en": _Texts(
            "Expired unsigned: {title}",
            'Hello {name},\n\nThe deadline of "{title}" passed before every party signed, so it '
            "has expired.\n\nDetails: {link}",
        ),
        CHINESE: _Texts(
            "已过期未签完：{title}",
            "{name}，您好：\n\n《{title}》在截止时间前未由各方签署完成，已过期。\n\n详情：{link}",
        ),
    },
    "contract_ended": {
        "en": _Texts(
            "Ended: {title}",
            'Hello {name},\n\n{actor} ended "{title}". Reason: {reason}\n\nDetails: {link}',
        ),
        CHINESE: _Texts(
            "已终止：{title}",
            "{name}，您好：\n\n{actor} 终止了《{title}》。原因：{reason}\n\n详情：{link}",
        ),
    },
    "contract_voided": {
        "en": _Texts(
            "Voided: {title}",
            'Hello {name},\n\nEvery party signed the voiding agreement, so "{title}" is void.'
            "\n\nDetails: {link}",
        ),
        CHINESE: _Texts(
            "已作废：{title}",
            "{name}，您好：\n\n各方已签署作废协议，《{title}》已作废。\n\n详情：{link}",
        ),
    },
    "contract_reminder": {
        "en": _Texts(
            "Reminder, sign by {deadline}: {title}",
            'Hello {name},\n\n"{title}" still needs your signature, and its deadline is '
            "{deadline}.\n\nOpen it here: {link}",
        ),
        CHINESE: _Texts(
            "提醒：请在 {deadline} 前签署《{title}》",
            "{name}，您好：\n\n《{title}》仍需您签署，截止时间为 {deadline}。\n\n请在此打开：{link}",
        ),
    },
    "certificate_renewal_due": {
        "en": _Texts(
            "Renew your signing certificate before {expires}",
            "Hello {name},\n\nYour signing certificate (serial {serial}) expires on {expires}. "
            "After that you cannot sign with it. Renew it on the My certificates page: {link}\n\n"
            "Renewing asks you to accept the certificate agreement again; nothing is renewed "
            "without you.",
        ),
        CHINESE: _Texts(
            "请在 {expires} 之前续期您的签名证书",
            "{name}，您好：\n\n您的签名证书（序列号 {serial}）将于 {expires} 到期，到期后将无法"
            "使用它签署。请在“我的证书”页面续期：{link}\n\n续期需要您再次同意数字证书协议；"
            "未经您本人同意，证书不会自动续期。",
        ),
    },
    "seal_certificate_renewal_due": {
        "en": _Texts(
            "Renew the certificate of the seal {seal} before {expires}",
            "Hello {name},\n\nThe certificate of your organisation's seal {seal} (serial {serial}) "
            "expires on {expires}. After that the seal cannot be applied. As its organisation's "
            "admin, renew it in the appliance ({link}); renewing asks you to accept the certificate "
            "agreement again.",
        ),
        CHINESE: _Texts(
            "请在 {expires} 之前续期印章“{seal}”的证书",
            "{name}，您好：\n\n贵单位印章“{seal}”的证书（序列号 {serial}）将于 {expires} 到期，"
            "到期后将无法用印。请您作为单位管理员在电子签约平台（{link}）为其续期；续期需要再次"
            "同意数字证书协议。",
        ),
    },
    "contract_deletion_due": {
        "en": _Texts(
            "To be deleted on {deletes_on}: {title}",
            'Hello {name},\n\nThe retention period of "{title}" has run out: the appliance deletes it, '
            "with its documents and evidence, on {deletes_on}. Deletion cannot be undone.\n\n"
            "Download what you need to keep before then: {link}",
        ),
        CHINESE: _Texts(
            "《{title}》将于 {deletes_on} 删除",
            "{name}，您好：\n\n《{title}》的保存期限已满，平台将于 {deletes_on} 删除该合同及其文件和"
            "证据，删除后无法恢复。\n\n如需保留，请在此之前下载：{link}",
        ),
    },
    "seal_approval_requested": {
        "en": _Texts(
            "Approve the seal: {title}",
            'Hello {name},\n\n{initiator} asks to apply the seal "{seal}" to "{title}", and you '
            "approve its use. Approve or reject it here: {link}",
        ),
        CHINESE: _Texts(
            "请审批用印：{title}",
            "{name}，您好：\n\n{initiator} 申请在《{title}》上使用印章“{seal}”，需要您审批。"
            "请在此批准或驳回：{link}",
        ),
    },
    "data_request_answered": {
        "en": _Texts(
            "Your request about your personal data has been answered",
            "Hello {name},\n\nYour request about your personal data was answered: {outcome_text}.\n\n"
            "{answer}\n\n{directory_text}See it on your My data page: {link}",
        ),
        CHINESE: _Texts(
            "您关于个人信息的请求已答复",
            "{name}，您好：\n\n您关于个人信息的请求已答复：{outcome_text}。\n\n{answer}\n\n"
            "{directory_text}请在“我的数据”页面查看：{link}",
        ),
    },
}

# facts stored as ISO 8601 text and shown as a time
_TIMES: dict[str, tuple[str, ...]] = {
    "account_locked": ("until",),
    "contract_reminder": ("deadline",),
    "certificate_renewal_due": ("expires",),
    "seal_certificate_renewal_due": ("expires",),
    "contract_deletion_due": ("deletes_on",),
}

_WHERE = {
    "en": {"account": "on your account", "address": "from the address {address}"},
    CHINESE: {"account": "您的账号", "address": "从地址 {address} "},
}


_OUTCOMES = {
    "en": {"done": "done", "refused": "refused"},
    CHINESE: {"done": "已办理", "refused": "未能办理"},
}
_DIRECTORY = {
    "en": "Your profile comes from the company directory, so the correction itself is made there.\n\n",
    CHINESE: "您的个人资料来自公司目录，更正需在目录中完成。\n\n",
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
    if "deadline" in params and kind == "contract_to_sign":
        values["deadline_text"] = _deadline_text(language, params["deadline"])
    values.setdefault("deadline_text", "")
    if "message" in params:
        values["note"] = f"{params['message']}\n\n" if params["message"] else ""
    values.setdefault("note", "")
    if kind == "data_request_answered":
        values["outcome_text"] = _OUTCOMES[language][params["outcome"]]
        values["directory_text"] = _DIRECTORY[language] if params.get("directory") else ""
    if "scope" in params:
        values["where"] = _WHERE[language][params["scope"]].format(address=params.get("address", ""))
    return Message(texts.subject.format(**values), texts.body.format(**values))


def _deadline_text(language: str, deadline: str | None) -> str:
    if not deadline:
        return ""
    when = f"{datetime.fromisoformat(deadline):%Y-%m-%d %H:%M} UTC"
    return f"（截止 {when}）" if language == CHINESE else f" by {when}"
