"""The stamp's font, cut down to the characters of one stamp's text in about a millisecond.

pyHanko's `GlyphAccumulatorFactory` loads the whole font with fontTools and subsets it in
Python, at a cost that grows with the glyphs in the font, not in the stamp: about 0.5 s of
CPU per stamp for the 20,000 glyphs of LXGW WenKai (15 MB). Here HarfBuzz's subsetter (C,
through uharfbuzz, which pyHanko already uses for shaping) first cuts the font down to the
characters of the stamp text, every one of them from the full font, so a rare character
in a name renders like a common one. pyHanko's accumulator then shapes the text with that
font of a few dozen glyphs and embeds it as it is, rather than subsetting it a second time.

The full font is opened once per process (memory-mapped, so gunicorn workers share its
pages) and reopened when the file changes; nothing is written to disk and no process
needs another's state.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import uharfbuzz as hb
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.font.api import FontEngineFactory
from pyhanko.pdf_utils.font.opentype import CIDFontType2, GlyphAccumulator
from pyhanko.pdf_utils.writer import BasePdfFileWriter

from appliance.signing.errors import SigningFailed

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _FontFile:
    face: hb.Face
    font: hb.Font
    """For cmap look-ups: which characters the font has."""


@lru_cache(maxsize=4)
def _open_font(path: str, _inode: int, _mtime_ns: int, _size: int) -> _FontFile:
    # keyed by the file's identity too, so an upgraded font package is picked up
    face = hb.Face(hb.Blob.from_file_path(path))
    return _FontFile(face=face, font=hb.Font(face))


def _font_file(path: Path) -> _FontFile:
    try:
        info = os.stat(path)
    except OSError as exc:
        raise SigningFailed(
            f"the signature stamp font {path} is missing; install the Debian package "
            "fonts-lxgw-wenkai and sign again"
        ) from exc
    return _open_font(str(path), info.st_ino, info.st_mtime_ns, info.st_size)


def missing_characters(font_path: Path, text: str) -> str:
    """The characters of `text` (line breaks aside) that the font has no glyph for, in order.

    :raises SigningFailed: the font file is missing.
    """
    font = _font_file(font_path).font
    missing = dict.fromkeys(ch for ch in text if ch != "\n" and font.get_nominal_glyph(ord(ch)) is None)
    return "".join(missing)


def subset_font(font_path: Path, text: str) -> bytes:
    """A TrueType font holding the glyphs for the characters of `text` (and .notdef) only.

    HarfBuzz keeps the layout tables and the glyphs they reach from these characters, so
    shaping the text with the subset gives what shaping it with the full font would.

    :raises SigningFailed: the file is missing or not a font HarfBuzz can read.
    """
    source = _font_file(font_path)
    wanted = hb.SubsetInput()
    for codepoint in sorted({ord(ch) for ch in text if ch != "\n"}):
        wanted.unicode_set.add(codepoint)
    try:
        subset = hb.subset(source.face, wanted)
    except RuntimeError as exc:  # not a font, or a damaged one
        raise SigningFailed(
            f"the signature stamp font {font_path} cannot be read; reinstall the Debian package "
            "fonts-lxgw-wenkai and sign again"
        ) from exc
    data: bytes = subset.blob.data
    return data


@dataclass(frozen=True)
class SubsetFontFactory(FontEngineFactory):
    """pyHanko font engines over `font_bytes`, a font subset for one stamp's text (`stamp_font`)."""

    font_bytes: bytes
    font_size: int

    def create_font_engine(self, writer: BasePdfFileWriter, obj_stream: object = None) -> GlyphAccumulator:
        if obj_stream is None and writer.stream_xrefs:
            obj_stream = writer.prepare_object_stream()
        return _SubsetAccumulator(writer, self.font_bytes, self.font_size, obj_stream)


def stamp_font(font_path: Path, text: str, font_size: int) -> SubsetFontFactory:
    """The font engine factory for a stamp showing `text`, set in `font_path`.

    A character the font lacks is drawn as the font's .notdef glyph and logged (by code
    point, not the text: the text holds a person's name).

    :raises SigningFailed: the font file is missing or unreadable.
    """
    missing = missing_characters(font_path, text)
    if missing:
        _log.warning(
            "the stamp font %s has no glyph for %s; the stamp shows the font's .notdef glyph instead",
            font_path,
            ", ".join(f"U+{ord(ch):04X}" for ch in missing),
        )
    return SubsetFontFactory(font_bytes=subset_font(font_path, text), font_size=font_size)


class _SubsetAccumulator(GlyphAccumulator):
    """pyHanko's accumulator over a font that is already the subset the stamp needs.

    Shaping, widths and the ToUnicode map are pyHanko's; only the subsetting step is left
    out and the font program is embedded byte for byte, since fontTools would spend tens of
    milliseconds rewriting glyphs it has just read.
    """

    def __init__(
        self, writer: BasePdfFileWriter, font_bytes: bytes, font_size: int, obj_stream: object
    ) -> None:
        super().__init__(writer, io.BytesIO(font_bytes), font_size, obj_stream=obj_stream)
        base_name = self.cidfont_obj.name.split("+", 1)[1]  # "<subset prefix>+<PostScript name>"
        self.cidfont_obj = _EmbeddedAsIs(self.tt, base_name, self.subset_prefix, font_bytes)

    def _extract_subset(self, options: object = None) -> None:
        # the font is the subset already (HarfBuzz); pyHanko would cut it again with fontTools
        return None


class _EmbeddedAsIs(CIDFontType2):
    """A CIDFontType2 whose font program is the given TrueType bytes, not a re-saved copy."""

    def __init__(self, tt: object, base_ps_name: str, subset_prefix: str, font_bytes: bytes) -> None:
        super().__init__(tt, base_ps_name, subset_prefix)
        self._font_bytes = font_bytes

    def set_font_file(self, writer: BasePdfFileWriter) -> generic.IndirectObject:
        stream = generic.StreamObject(stream_data=self._font_bytes)
        stream.compress()
        ref = writer.add_object(stream)
        self._font_descriptor[generic.NameObject("/FontFile2")] = ref
        return ref
