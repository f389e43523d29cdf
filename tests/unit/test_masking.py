"""Masking: enough left for the holder to recognise, nothing a reader could use."""

from __future__ import annotations

import hashlib

from appliance.masking import mask_email, mask_id_number, mask_phone, mask_text, mask_values


def test_each_kind_keeps_only_its_ends() -> None:
    assert mask_phone("13812341234") == "138****1234"
    assert mask_phone("+86 138-1234-1234") == "138****1234"
    assert mask_email("zhang.wei@corp.example") == "z***@corp.example"
    assert mask_id_number("11010119900307123X") == "110***********123X"


def test_free_text_is_masked_and_hashes_dates_and_ids_are_not() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    text = (
        f"call 13812341234 or +86 139 0000 1111, mail zhang.wei@corp.example, "
        f"ID 110101199003071234; document {digest} on 2026-12-07, contract 12345678901234"
    )
    masked = mask_text(text)
    for raw in ("13812341234", "139 0000 1111", "zhang.wei@", "110101199003071234"):
        assert raw not in masked
    assert "138****1234" in masked and "139****1111" in masked and "z***@corp.example" in masked
    assert "110***********1234" in masked
    assert digest in masked and "2026-12-07" in masked and "12345678901234" in masked


def test_nested_values() -> None:
    assert mask_values({"to": ["a.b@x.example"], "n": 3, "who": {"phone": "13812341234"}}) == {
        "to": ["a***@x.example"],
        "n": 3,
        "who": {"phone": "138****1234"},
    }
