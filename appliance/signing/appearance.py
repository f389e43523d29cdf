"""The visible stamp of a signature: signer's name, signing time and an image.

The image is a person's handwritten-signature image or an organisation's seal, a PNG
whose transparency is kept (pyHanko writes the alpha channel as a soft mask), so the
seal lies over the page text the way a red ink stamp does.

The text is set in an embedded OpenType font (pyHanko subsets it into the stamp), so
Chinese names such as 张伟 or 北京示例科技有限公司 render in every viewer. The default is
LXGW WenKai from the Debian package fonts-lxgw-wenkai: one .ttf with Latin letters, digits
and about 20,000 CJK characters. (DroidSansFallbackFull.ttf from fonts-droid-fallback has
no Latin glyphs at all, so "Digitally signed by" and the time would vanish; the wqy and
Noto CJK fonts are .ttc collections, which pyHanko's font loader does not read.)
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from pyhanko.pdf_utils import layout
from pyhanko.pdf_utils.font.opentype import GlyphAccumulatorFactory
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.stamp import TextStampStyle

from appliance.signing.errors import PdfRejected, RejectReason, SigningFailed

MAX_IMAGE_BYTES = 2 * 1024 * 1024
MAX_IMAGE_PIXELS = 4096 * 4096
"""Bigger images are refused before decoding (decompression bombs)."""
MIN_BOX_POINTS = 20.0

STAMP_TEXT = "Digitally signed by %(signer)s\nTime: %(ts)s"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S %Z"
STAMP_FONT_SIZE = 7
STAMP_FONT = Path("/usr/share/fonts/truetype/lxgw-wenkai/LXGWWenKai-Regular.ttf")
"""TrueType font for the stamp text (Debian package fonts-lxgw-wenkai, in installer/lib.sh)."""


@dataclass(frozen=True)
class Placement:
    """Where a visible signature goes: a 1-based page number and a rectangle in PDF points."""

    page: int
    box: tuple[float, float, float, float]
    """(x1, y1, x2, y2) from the page's lower-left corner."""

    def __post_init__(self) -> None:
        x1, y1, x2, y2 = self.box
        if self.page < 1:
            raise PdfRejected(RejectReason.BAD_PLACEMENT, "the page number must be 1 or more")
        if x2 - x1 < MIN_BOX_POINTS or y2 - y1 < MIN_BOX_POINTS or min(self.box) < 0:
            raise PdfRejected(
                RejectReason.BAD_PLACEMENT,
                f"the signature rectangle must be at least {MIN_BOX_POINTS:g} points wide and high "
                "and lie on the page",
            )


@dataclass(frozen=True)
class Appearance:
    """A visible stamp; signatures without one are invisible."""

    placement: Placement
    image_png: bytes | None = None
    """Signature or seal image (PNG, transparency kept); None for a text-only stamp."""
    signer_name: str | None = None
    """Name shown on the stamp; defaults to the certificate's common name."""


def check_page(placement: Placement, page_count: int) -> None:
    """Refuse a page past the end, naming the pages there are (before the page is looked up)."""
    if placement.page > page_count:
        pages = "only page 1" if page_count == 1 else f"pages 1 to {page_count}"
        raise PdfRejected(
            RejectReason.BAD_PLACEMENT, f"page {placement.page} does not exist: the document has {pages}"
        )


def check_box(placement: Placement, page_box: tuple[float, ...] | None) -> None:
    """Refuse a rectangle outside the page's media box (the page exists: see `check_page`)."""
    if page_box is not None:
        left, bottom, right, top = page_box
        x1, y1, x2, y2 = placement.box
        if x1 < left or y1 < bottom or x2 > right or y2 > top:
            raise PdfRejected(
                RejectReason.BAD_PLACEMENT,
                f"the signature rectangle {placement.box} lies outside page {placement.page}",
            )


def load_image(png: bytes) -> Image.Image:
    """Decode and check a stamp image; PNG only, bounded in bytes and pixels."""
    if len(png) > MAX_IMAGE_BYTES:
        raise PdfRejected(RejectReason.BAD_IMAGE, "the stamp image is larger than 2 MB; use a smaller PNG")
    try:
        image: Image.Image = Image.open(io.BytesIO(png), formats=["PNG"])
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise PdfRejected(RejectReason.BAD_IMAGE, "the stamp image has too many pixels")
        image.load()
    except PdfRejected:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise PdfRejected(RejectReason.BAD_IMAGE, "the stamp image is not a readable PNG file") from exc
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA")
    return image


def stamp_style(appearance: Appearance, font_path: Path = STAMP_FONT) -> TextStampStyle:
    """pyHanko style: the image fills the box (aspect kept), the text sits over it.

    :raises SigningFailed: the stamp font is not installed.
    """
    if not font_path.is_file():
        raise SigningFailed(
            f"the signature stamp font {font_path} is missing; install the Debian package "
            "fonts-lxgw-wenkai (installer/lib.sh does) and sign again"
        )
    background = None
    if appearance.image_png is not None:
        background = PdfImage(load_image(appearance.image_png))
    return TextStampStyle(
        stamp_text=STAMP_TEXT,
        timestamp_format=TIME_FORMAT,
        text_box_style=TextBoxStyle(
            font=GlyphAccumulatorFactory(str(font_path), font_size=STAMP_FONT_SIZE),
            font_size=STAMP_FONT_SIZE,
        ),
        background=background,
        background_opacity=1.0,
        background_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MID,
            y_align=layout.AxisAlignment.ALIGN_MID,
            margins=layout.Margins.uniform(2),
        ),
        border_width=0,
    )
