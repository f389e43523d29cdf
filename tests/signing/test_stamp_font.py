"""The stamp's font and image: each stamp embeds the full font cut down to its own characters
(a rare character renders as a common one does), and each process encodes an image once."""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont
from PIL import Image
from pyhanko.pdf_utils.reader import PdfFileReader

from appliance.signing import Appearance, PdfRejected, Placement, SigningFailed, Verdict
from appliance.signing.appearance import STAMP_FONT, ImageCache, encode_image
from appliance.signing.stampfont import missing_characters, stamp_font, subset_font
from tests.conftest import require_backend
from tests.fakes.clock import FakeClock
from tests.fixtures.pdfs import make_png
from tests.signing.conftest import SigningEnv, pdfsig_blocks, run_pdfsig
from tests.signing.test_pades import STAMP_BOX, _find_fonts, dark_pixels, render_page, report_of, sign

RARE_NAME = "刘䶮 王喆 𠮷田"
"""None of 䶮 (CJK Extension A), 喆 or 𠮷 (Extension B, outside the BMP) is in GB 2312."""
SEAL_NAME = "北京示例科技有限公司"
SECOND_BOX = (150, 380, 450, 460)


def _full_font() -> TTFont:
    return TTFont(str(STAMP_FONT), lazy=True)


def _outline(font: TTFont, char: str) -> tuple[list[tuple[int, int]], list[int]]:
    glyf = font["glyf"]
    coordinates, end_points, _flags = glyf[font.getBestCmap()[ord(char)]].getCoordinates(glyf)
    return [tuple(point) for point in coordinates], list(end_points)


def test_a_subset_holds_the_characters_of_the_text_with_the_full_fonts_outlines() -> None:
    text = f"Digitally signed by {RARE_NAME}\nTime: 2025-01-02 03:04:05 UTC"

    subset = TTFont(io.BytesIO(subset_font(STAMP_FONT, text)))

    assert set(subset.getBestCmap()) == {ord(ch) for ch in text if ch != "\n"}
    full = _full_font()
    assert subset["maxp"].numGlyphs < 80 < full["maxp"].numGlyphs
    assert subset["name"].getDebugName(6) == full["name"].getDebugName(6) == "LXGWWenKai-Regular"
    for char in "䶮喆𠮷刘D5":
        outline = _outline(subset, char)
        assert outline[0], f"{char} has no contours in the subset"
        assert outline == _outline(full, char), f"{char} differs from the full font's glyph"


def test_missing_characters_are_named_and_logged_by_code_point(caplog: pytest.LogCaptureFixture) -> None:
    assert missing_characters(STAMP_FONT, f"Zhang Wei {RARE_NAME}\n") == ""
    assert missing_characters(STAMP_FONT, "张伟😀\ue000张伟😀") == "😀\ue000"

    with caplog.at_level(logging.WARNING, logger="appliance.signing.stampfont"):
        factory = stamp_font(STAMP_FONT, "张伟😀", 7)

    assert "U+1F600" in caplog.text and "张伟" not in caplog.text  # the name is personal data
    assert set(TTFont(io.BytesIO(factory.font_bytes)).getBestCmap()) == {ord("张"), ord("伟")}


def test_a_missing_file_or_one_that_is_no_font_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.ttf"
    bogus.write_bytes(b"not a font at all\n" * 64)
    with pytest.raises(SigningFailed, match=r"cannot be read.*fonts-lxgw-wenkai"):
        subset_font(bogus, "张伟")
    with pytest.raises(SigningFailed, match=r"missing.*fonts-lxgw-wenkai"):
        stamp_font(tmp_path / "removed.ttf", "张伟", 7)


def test_a_font_file_replaced_on_disk_is_read_again(tmp_path: Path) -> None:
    installed = tmp_path / "stamp.ttf"
    shutil.copyfile(STAMP_FONT, installed)
    assert TTFont(io.BytesIO(subset_font(installed, "张")))["name"].getDebugName(6) == "LXGWWenKai-Regular"

    upgrade = tmp_path / "stamp.ttf.new"
    shutil.copyfile(STAMP_FONT.with_name("LXGWWenKai-Bold.ttf"), upgrade)
    os.replace(upgrade, installed)  # as dpkg installs a new version

    assert TTFont(io.BytesIO(subset_font(installed, "张")))["name"].getDebugName(6) == "LXGWWenKai-Bold"


def _png(mode: str, colour: int | tuple[int, ...]) -> bytes:
    out = io.BytesIO()
    Image.new(mode, (30, 20), colour).save(out, "PNG")
    return out.getvalue()


def test_an_image_is_encoded_once_per_process_into_its_own_pixels_and_mask() -> None:
    png = make_png(90, 45)

    encoded = encode_image(png)

    assert encode_image(png) is encoded
    decoded = Image.open(io.BytesIO(png))
    assert (encoded.width, encoded.height, encoded.grey) == (90, 45, False)
    assert zlib.decompress(encoded.pixels) == decoded.convert("RGB").tobytes()
    assert encoded.alpha is not None
    assert zlib.decompress(encoded.alpha) == decoded.getchannel("A").tobytes()
    opaque = encode_image(_png("RGB", (10, 20, 30)))
    assert opaque.alpha is None and zlib.decompress(opaque.pixels) == bytes((10, 20, 30)) * 600
    grey = encode_image(_png("LA", (40, 128)))
    assert grey.grey and zlib.decompress(grey.pixels) == bytes([40]) * 600
    assert grey.alpha is not None and zlib.decompress(grey.alpha) == bytes([128]) * 600


def test_the_image_cache_drops_the_least_recently_used_beyond_its_bytes() -> None:
    first, second, third = make_png(120, 60), make_png(100, 50), make_png(80, 40)
    room = encode_image(first).size + encode_image(second).size
    cache = ImageCache(max_bytes=room)
    kept, dropped = cache.get(first), cache.get(second)
    assert cache.get(first) is kept  # now the most recently used

    cache.get(third)  # over the budget: `second` goes

    assert cache.get(first) is kept
    assert cache.get(second) is not dropped
    too_small = ImageCache(max_bytes=10)
    assert too_small.get(first) is not too_small.get(first)  # an image bigger than the budget is not kept


def test_a_bad_image_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(PdfRejected, match="not a readable PNG"):
            encode_image(b"\x89PNG\r\n\x1a\n not really")


def _stamp_font_program(pdf: Path, index: int) -> TTFont:
    with pdf.open("rb") as stream:
        sig_field = PdfFileReader(stream).embedded_signatures[index].sig_field
        (font,) = _find_fonts(sig_field["/AP"]["/N"].get_object())
        descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"]
        return TTFont(io.BytesIO(descriptor["/FontFile2"].get_object().data))


@pytest.mark.hsm
def test_two_stamps_with_common_and_rare_names_render_extract_and_validate(
    signing_env: SigningEnv, pdf_factory: Callable[..., Path], tmp_path: Path, fixed_clock: FakeClock
) -> None:
    src = pdf_factory()
    once, twice = tmp_path / "seal.pdf", tmp_path / "seal-and-person.pdf"
    seal = Appearance(placement=Placement(page=1, box=STAMP_BOX), image_png=make_png(), signer_name=SEAL_NAME)
    person = Appearance(placement=Placement(page=1, box=SECOND_BOX), signer_name=RARE_NAME)

    sign(signing_env, src, once, fixed_clock, appearance=seal)
    sign(signing_env, once, twice, fixed_clock, appearance=person)

    # every character comes back out of the page text (the ToUnicode maps of both fonts)
    require_backend("pdftotext", shutil.which("pdftotext") is not None, "apt-get install poppler-utils")
    text = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(twice), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    for part in (SEAL_NAME, *RARE_NAME.split()):
        assert part in text, f"{part} is missing from {text!r}"
    # and is drawn: each embedded subset holds its own characters with the full font's outlines
    full = _full_font()
    for index, name in ((0, SEAL_NAME), (1, RARE_NAME)):
        program = _stamp_font_program(twice, index)
        assert program["maxp"].numGlyphs < 80
        for char in name.replace(" ", ""):
            assert _outline(program, char) == _outline(full, char), f"{char} is not drawn as in the font"
    rendered = render_page(twice, tmp_path / "page")
    blank = render_page(src, tmp_path / "blank")
    assert dark_pixels(blank, STAMP_BOX) == dark_pixels(blank, SECOND_BOX) == 0
    assert dark_pixels(rendered, STAMP_BOX) > 400
    assert dark_pixels(rendered, SECOND_BOX) > 300
    report = report_of(signing_env, twice, fixed_clock)
    assert report.verdict is Verdict.VALID and len(report.signatures) == 2
    blocks = pdfsig_blocks(run_pdfsig(signing_env.nss_dir(), twice))
    assert len(blocks) == 2 and all("Signature is Valid." in block for block in blocks)
