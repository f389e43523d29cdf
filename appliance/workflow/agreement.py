"""The digital-certificate agreement a person (or org admin) accepts before a certificate is made.

The text is versioned: a change of wording is a new version, and consent records the
version and the sha256 of the exact text shown, in the language it was shown in.
"""

from __future__ import annotations

AGREEMENT_VERSION = "2026-12-01"
CHINESE = "zh_Hans_CN"

_TEXTS = {
    "en": """Digital certificate agreement (version 2026-12-01)

1. The appliance's certificate authority issues you a digital certificate for signing electronic
   documents on behalf of yourself, or, for an organisation seal, on behalf of your organisation.
2. The private key is generated inside the organisation's hardware security module and never
   leaves it. It is used only when you confirm a signature with a one-time verification code.
3. A signature made with the certificate has the same effect as your handwritten signature (or
   the organisation's seal) under the Electronic Signature Law of the People's Republic of China.
4. Keep your sign-in credentials and verification codes to yourself. Report a lost device or a
   suspected misuse at once: the certificate is then revoked.
5. The certificate is valid for the period stated in it. It is renewed only with your consent
   and revoked when you leave the organisation, your information changes, or you ask for it.
6. Your name, organisation and e-mail address are written into the certificate and are visible
   to everyone who receives a document you signed.
""",
    CHINESE: """数字证书使用协议（版本 2026-12-01）

1. 本系统的证书机构为您签发数字证书，用于以您本人名义，或（机构印章）以您所在机构的名义签署电子文件。
2. 私钥在机构的硬件安全模块（HSM）中生成，永不离开该设备；仅在您以一次性验证码确认签署时使用。
3. 依据《中华人民共和国电子签名法》，使用该证书作出的可靠电子签名与手写签名或盖章具有同等法律效力。
4. 请妥善保管您的登录凭据和验证码，不得交由他人使用。如设备丢失或怀疑被盗用，请立即报告，证书将被吊销。
5. 证书在其载明的有效期内有效；仅在您同意后续期；在您离开机构、信息变更或您申请时吊销。
6. 您的姓名、机构和电子邮件地址将写入证书，收到您所签文件的人均可看到。
""",
}


def agreement_text(locale: str | None) -> tuple[str, str]:
    """The agreement in `locale` (English unless Chinese) and the locale used."""
    language = CHINESE if locale == CHINESE else "en"
    return _TEXTS[language], language
