"""The privacy notice every person accepts before using the appliance, and asks again for at
each new major version (a wording fix is a minor version and is not asked again).

Accounts of the appliance itself (the local break-glass administrator) are not people whose
data the notice is about, and are not asked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import select

from appliance.audit import AuditRecord, append_event
from appliance.auth.records import ClientInfo, Principal
from appliance.db import transaction
from appliance.errors import Conflict, InvalidInput
from appliance.models import PrivacyAcceptance, User, UserSource
from appliance.workflow.context import WorkflowContext

NOTICE_VERSION = "1.0"
"""major.minor: a new major version is asked for again."""
CHINESE = "zh_Hans_CN"

_TEXTS = {
    "en": """Privacy notice (version 1.0)

1. What is held: your name, user name, e-mail address, department and organisation as the
   company directory provides them; your signing certificates and the agreements you accepted;
   the contracts you start or sign, with their evidence; your sign-ins and the addresses they
   came from.
2. Why: to let you start, sign and keep electronic contracts, and to prove later who signed
   what and when. Nothing is used for any other purpose or sent outside the company network.
3. Who sees it: the other parties of a contract see your name and signature; administrators
   and auditors see what their role needs. E-mail addresses, phone numbers and ID numbers are
   masked for everyone but you.
4. How long: drafts and closed contracts are deleted after 12 months; signed contracts and
   their evidence are kept for at least 5 years, also after you leave or cancel your account.
5. Your rights: see everything held about you and download it on the My data page; ask for a
   correction, a deletion where the law allows, or the withdrawal of a consent there; freeze
   your account at once if you suspect misuse.
""",
    CHINESE: """隐私政策（版本 1.0）

1. 保存的信息：公司目录提供的您的姓名、用户名、电子邮箱、部门和单位；您的签名证书及您同意过的协议；
   您发起或签署的合同及其证据；您的登录记录及来源地址。
2. 用途：用于您发起、签署和保存电子合同，并在日后证明何人于何时签署了何种文件。
   不作他用，也不会发送到公司网络之外。
3. 可见范围：合同的其他参与方可看到您的姓名和签名；管理员和审计员仅可看到其职责所需的信息。
   电子邮箱、电话号码和证件号码对除您本人以外的所有人均做脱敏处理。
4. 保存期限：草稿及已关闭的合同在 12 个月后删除；已签署的合同及其证据至少保存 5 年，在您离职或注销账号后亦然。
5. 您的权利：可在“我的数据”页面查看并下载平台保存的全部个人信息；
   可在该页面申请更正、在法律允许的范围内删除或撤回同意；如怀疑账号被盗用，可立即冻结账号。
""",
}


@dataclass(frozen=True)
class PrivacyNotice:
    version: str
    locale: str
    text: str
    sha256: str


def privacy_notice(locale: str | None) -> PrivacyNotice:
    language = CHINESE if locale == CHINESE else "en"
    text = _TEXTS[language]
    return PrivacyNotice(NOTICE_VERSION, language, text, hashlib.sha256(text.encode()).hexdigest())


def needs_acceptance(ctx: WorkflowContext, user_id: int) -> bool:
    """Whether the person must accept the current major version before going on."""
    with ctx.sessions() as session:
        user = session.get(User, user_id)
        if user is None or user.source is UserSource.LOCAL:
            return False
        versions = session.scalars(
            select(PrivacyAcceptance.version).where(PrivacyAcceptance.user_id == user_id)
        )
        return not any(_major(version) == _major(NOTICE_VERSION) for version in versions)


def accept_privacy_notice(
    ctx: WorkflowContext, principal: Principal, client: ClientInfo, version: str, sha256: str, locale: str
) -> None:
    """Record the acceptance of the notice exactly as shown (its version and sha256).

    :raises InvalidInput: the text shown is not the current notice (reload the page).
    :raises Conflict: accepted already.
    """
    shown = privacy_notice(locale)
    if version != shown.version or sha256 != shown.sha256:
        raise InvalidInput("The privacy notice changed while it was open; read it again and accept it.")
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        accepted = session.scalars(
            select(PrivacyAcceptance).where(
                PrivacyAcceptance.user_id == principal.user_id, PrivacyAcceptance.version == version
            )
        ).first()
        if accepted is not None:
            raise Conflict("You have accepted this privacy notice already.")
        session.add(
            PrivacyAcceptance(
                user_id=principal.user_id,
                version=version,
                sha256=sha256,
                locale=shown.locale,
                accepted_at=now,
                client_address=client.address,
                user_agent=(client.user_agent or "")[:400] or None,
            )
        )
        append_event(
            session,
            AuditRecord(
                action="privacy.notice_accepted",
                occurred_at=now,
                actor_user_id=principal.user_id,
                actor_name=principal.username,
                object_type="privacy_notice",
                object_id=version,
                client_address=client.address,
                user_agent=client.user_agent,
                details={"version": version, "sha256": sha256, "locale": shown.locale},
            ),
        )


def major_version() -> str:
    """The current notice's major version."""
    return _major(NOTICE_VERSION)


def _major(version: str) -> str:
    return version.split(".", 1)[0]
