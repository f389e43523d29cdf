"""Distinguished names in one canonical form, so group checks compare exact DNs.

Attribute types and values are lower-cased (the naming attributes used for people
and groups - cn, ou, dc, uid - match case-insensitively), spaces around separators
dropped, and values re-escaped (RFC 4514). Two DNs are the same group when their
normalised forms are equal; a substring or prefix never counts.
"""

from __future__ import annotations

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import escape_rdn, parse_dn


class MalformedDn(ValueError):
    """Not a valid DN. Internal: a DN the directory sent is never shown to a client (the
    directory code turns this into DirectoryUnavailable); config checks name the key."""


def normalize_dn(dn: str) -> str:
    """Canonical form of `dn`.

    :raises MalformedDn: when `dn` is not a valid DN.
    """
    try:
        parts = parse_dn(dn.strip(), escape=False, strip=True)
    except (LDAPInvalidDnError, ValueError, IndexError) as exc:
        raise MalformedDn("not a valid LDAP DN") from exc
    rdns: list[str] = []
    current: list[str] = []
    for attr, value, separator in parts:
        current.append(f"{attr.strip().lower()}={escape_rdn(_unescape(value.strip()).lower())}")
        if separator != "+":
            rdns.append("+".join(sorted(current)))
            current = []
    if current:
        rdns.append("+".join(sorted(current)))
    return ",".join(rdns)


def is_within(dn: str, base: str) -> bool:
    """True when normalised `dn` is `base` or lies in its subtree (compared RDN by RDN,
    so an escaped comma inside a value cannot fake a parent)."""
    inner, outer = split_rdns(dn), split_rdns(base)
    return len(inner) >= len(outer) and inner[len(inner) - len(outer) :] == outer


def split_rdns(dn: str) -> list[str]:
    """RDNs of a normalised DN, splitting only on unescaped commas."""
    rdns: list[str] = []
    current: list[str] = []
    escaped = False
    for char in dn:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == ",":
            rdns.append("".join(current))
            current = []
        else:
            current.append(char)
    rdns.append("".join(current))
    return rdns


def _unescape(value: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value):
            pair = value[i + 1 : i + 3]
            if _is_hex(pair):
                raw = bytearray([int(pair, 16)])
                i += 3
                # a multi-byte UTF-8 character arrives as several \XX escapes
                while value[i : i + 1] == "\\" and _is_hex(value[i + 1 : i + 3]):
                    raw.append(int(value[i + 1 : i + 3], 16))
                    i += 3
                out.append(raw.decode("utf-8", errors="replace"))
                continue
            out.append(value[i + 1])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _is_hex(pair: str) -> bool:
    return len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair)
