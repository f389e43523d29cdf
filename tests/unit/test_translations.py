"""Every user-facing string has a Simplified Chinese translation, and the compiled catalogue is current."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "appliance/web/translations/zh_Hans_CN/LC_MESSAGES"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None, "_l": None}


def _source_messages() -> set[str]:
    method_map = [("**.py", "python"), ("web/templates/**.html", "jinja2")]
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT / "appliance"), method_map=method_map, keywords=KEYWORDS
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def _po() -> dict[str, str]:
    with (CATALOG / "messages.po").open("rb") as handle:
        catalog = read_po(handle)
    return {m.id: m.string for m in catalog if m.id and isinstance(m.id, str)}


def test_every_message_is_translated() -> None:
    translations = _po()
    missing = sorted(m for m in _source_messages() if not translations.get(m))
    assert missing == [], "add these to messages.po with their Chinese text"


def test_compiled_catalogue_matches_the_po_file() -> None:
    with (CATALOG / "messages.mo").open("rb") as handle:
        compiled = {m.id: m.string for m in read_mo(handle) if m.id and isinstance(m.id, str)}
    stale = {k: v for k, v in _po().items() if v and compiled.get(k) != v}
    assert stale == {}, "run: pybabel compile -d appliance/web/translations"


def test_placeholders_survive_translation() -> None:
    import re

    placeholder = re.compile(r"%\(\w+\)s")
    for msgid, msgstr in _po().items():
        if msgstr:
            assert sorted(placeholder.findall(msgid)) == sorted(placeholder.findall(msgstr)), msgid
