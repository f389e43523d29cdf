"""Masking personal data shown to anyone but its holder: e-mail addresses, phone numbers and
ID numbers keep just enough to be recognised by their holder (138****1234, a***@example.com).

`mask_text` finds them in free text too (the details of log and evidence records, a
certificate's subject), so what a record happens to quote is covered without each writer
remembering to mask.
"""

from __future__ import annotations

import re
from typing import Any

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
"""A resident identity card number (GB 11643): 17 digits and a check character."""
_PHONE = re.compile(r"(?<![0-9A-Za-z])(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?![0-9A-Za-z])")
"""A mainland mobile number, with or without +86 and separators."""


def mask_email(address: str) -> str:
    """l***@example.com: the first letter and the domain."""
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"


def mask_phone(number: str) -> str:
    """138****1234: the first three and the last four digits."""
    digits = re.sub(r"\D", "", number)
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if len(digits) < 8:
        return "****"
    return f"{digits[:3]}****{digits[-4:]}"


def mask_id_number(number: str) -> str:
    """110***********1234: the first three and the last four characters."""
    if len(number) < 8:
        return "****"
    return f"{number[:3]}{'*' * (len(number) - 7)}{number[-4:]}"


def mask_text(text: str) -> str:
    """`text` with every e-mail address, mobile number and ID number in it masked."""
    text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    text = _ID_NUMBER.sub(lambda m: mask_id_number(m.group(0)), text)
    return _PHONE.sub(lambda m: mask_phone(m.group(0)), text)


def mask_values(value: Any) -> Any:
    """`mask_text` over every string in a JSON-like value (dicts, lists, strings)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {key: mask_values(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_values(item) for item in value]
    return value
