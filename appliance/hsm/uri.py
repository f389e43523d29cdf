"""PKCS#11 URIs (RFC 7512): parse and format the path attributes the appliance uses.

Pure code, no PKCS#11 calls. Query attributes (`?pin-value=...`) are refused: the PIN
comes from the PIN file or the environment only, never from a URI.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

from appliance.errors import InvalidInput

_KNOWN = frozenset(
    {
        "token",
        "manufacturer",
        "serial",
        "model",
        "object",
        "id",
        "type",
        "library-description",
        "library-manufacturer",
        "library-version",
        "slot-description",
        "slot-id",
        "slot-manufacturer",
    }
)
_OBJECT_TYPES = frozenset({"private", "public", "cert", "secret-key", "data"})
# RFC 7512 pchar minus the separators; everything else is percent-encoded.
_SAFE = "-._~:[]@!$'()*+,="


@dataclass(frozen=True)
class Pkcs11Uri:
    token: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    object: str | None = None
    """CKA_LABEL."""
    id: bytes | None = None
    """CKA_ID."""
    type: str | None = None

    def format(self) -> str:
        parts: list[str] = []
        for name in ("token", "manufacturer", "serial", "model", "object"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={quote(value, safe=_SAFE)}")
        if self.id is not None:
            # ids are binary: always fully percent-encoded, as p11tool and OpenSC print them
            parts.append("id=" + "".join(f"%{b:02x}" for b in self.id))
        if self.type is not None:
            parts.append(f"type={self.type}")
        return "pkcs11:" + ";".join(parts)


def private_key_selector(uri: str, token_label: str | None) -> tuple[str | None, bytes | None]:
    """(label, CKA_ID) of the private key a pkcs11: URI names, for a custody of `token_label`.

    :raises InvalidInput: not a pkcs11: URI, another token, or not a private key.
    """
    parsed = parse_uri(uri)
    if parsed.token is not None and token_label is not None and parsed.token != token_label:
        raise InvalidInput("the PKCS#11 URI names another token than the configured one")
    if parsed.type not in (None, "private"):
        raise InvalidInput("the PKCS#11 URI must name a private key (type=private)")
    return parsed.object, parsed.id


def parse_uri(uri: str) -> Pkcs11Uri:
    """Parse `pkcs11:attr=value;...`.

    :raises InvalidInput: not a PKCS#11 URI, unknown or repeated attribute, a query part.
    """
    if not uri.lower().startswith("pkcs11:"):
        raise InvalidInput("a PKCS#11 URI must start with pkcs11:")
    body = uri[len("pkcs11:") :]
    if "?" in body:
        # query attributes carry pin-value / pin-source / module-path: never accepted from a URI
        raise InvalidInput("PKCS#11 URI query attributes (pin-value, module-path...) are not accepted")
    values: dict[str, bytes] = {}
    for part in filter(None, body.split(";")):
        name, sep, raw = part.partition("=")
        if not sep:
            raise InvalidInput(f"PKCS#11 URI attribute without a value: {name!r}")
        if name not in _KNOWN:
            raise InvalidInput(f"unknown PKCS#11 URI attribute {name!r}")
        if name in values:
            raise InvalidInput(f"PKCS#11 URI attribute {name!r} given twice")
        values[name] = unquote_to_bytes(raw)

    def text(name: str) -> str | None:
        value = values.get(name)
        if value is None:
            return None
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"PKCS#11 URI attribute {name!r} is not UTF-8") from exc

    object_type = text("type")
    if object_type is not None and object_type not in _OBJECT_TYPES:
        raise InvalidInput(f"unknown PKCS#11 object type {object_type!r}")
    return Pkcs11Uri(
        token=text("token"),
        manufacturer=text("manufacturer"),
        serial=text("serial"),
        model=text("model"),
        object=text("object"),
        id=values.get("id"),
        type=object_type,
    )
