"""The block-wise hex string reader gives what pyHanko's own reader gives, errors included."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfStreamError

from appliance.signing import hexstrings
from appliance.signing.preflight import open_strict_reader
from tests.fixtures.pdfs import make_pdf


def _outcome(reader, data: bytes) -> tuple[object, int]:
    stream = io.BytesIO(data)
    try:
        value = reader(stream)
    except PdfStreamError:
        return "PdfStreamError", -1
    return (type(value).__name__, bytes(value) if isinstance(value, bytes) else str(value)), stream.tell()


def _both(data: bytes) -> None:
    assert _outcome(hexstrings.read_hex_string, data) == _outcome(hexstrings.pyhanko_read_hex_string, data)


@pytest.mark.parametrize(
    "data",
    [
        b"<>",
        b"<48656c6c6f> 0 obj",
        b"<48 65\n6c\r6c\t6f\x00\x0c> rest",
        b"<4865ABCDEFabcdef>",
        b"<486>",  # odd: padded with 0
        b"<FEFF00410042>",  # a UTF-16 text string
        b"<48zz>",
        b"<4865",  # the stream ends first
        b"<48%comment>\n65>",  # a comment inside: pyHanko's reader decides
        b"<" + b"ab" * 30_000 + b">trailer",  # longer than one block
        b"<" + b"a" * (hexstrings.BLOCK - 1) + b">",  # ">" last in the first block
        b"<" + b"a" * hexstrings.BLOCK + b">",  # ">" first in the second block
    ],
)
def test_same_value_error_and_position_as_pyhanko(data: bytes) -> None:
    _both(data)


@given(st.binary(max_size=64).map(lambda body: b"<" + body))
def test_same_as_pyhanko_on_any_bytes(data: bytes) -> None:
    _both(data)


@given(
    st.lists(st.sampled_from(list(b"0123456789abcdefABCDEF \n\r\t\x00\x0c")), max_size=300).map(
        lambda chars: b"<" + bytes(chars) + b">>"
    )
)
def test_same_as_pyhanko_on_hex_with_whitespace(data: bytes) -> None:
    _both(data)


def test_reading_a_pdf_puts_it_in_place_of_pyhankos() -> None:
    open_strict_reader(io.BytesIO(make_pdf(pages=1)))
    assert generic.read_hex_string_from_stream is hexstrings.read_hex_string
