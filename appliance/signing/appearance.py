"""The visible stamp of a signature: signer's name, signing time and an image.

The image is a person's handwritten-signature image or an organisation's seal, a PNG
whose transparency is kept (the alpha channel becomes a soft mask), so the seal lies over
the page text the way a red ink stamp does. Decoding a PNG and compressing its pixels again
for the PDF takes milliseconds, more than the rest of the stamp, and the same person or
seal signs again and again: each process keeps the encoded image streams of the images it
used last (`EncodedImage`, by the PNG's sha256).

The text is set in an embedded OpenType font, subset to the stamp's characters (see
appliance.signing.stampfont for why HarfBuzz subsets it rather than pyHanko), so Chinese
names such as 张伟 or 北京示例科技有限公司 render in every viewer. The default is
LXGW WenKai from the Debian package fonts-lxgw-wenkai: one .ttf with Latin letters, digits
and about 20,000 CJK characters. (DroidSansFallbackFull.ttf from fonts-droid-fallback has
no Latin glyphs at all, so "Digitally signed by" and the time would vanish; the wqy and
Noto CJK fonts are .ttc collections, which pyHanko's font loader does not read.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.content import PdfContent, ResourceType
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.stamp import TextStamp, TextStampStyle

from appliance.signing.errors import PdfRejected, RejectReason, SigningFailed
from appliance.signing.stampfont import stamp_font

MAX_IMAGE_BYTES = 2 * 1024 * 1024
MAX_IMAGE_PIXELS = 4096 * 4096
"""Bigger images are refused before decoding (decompression bombs)."""
MIN_BOX_POINTS = 20.0
IMAGE_CACHE_BYTES = 16 * 1024 * 1024
"""Encoded stamp images kept per process, in bytes of compressed pixel data."""

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


@dataclass(frozen=True)
class EncodedImage:
    """A stamp image as PDF image streams: Flate-compressed pixels and soft mask."""

    width: int
    height: int
    grey: bool
    pixels: bytes
    alpha: bytes | None
    """The transparency as a DeviceGray soft mask; None for an opaque image."""

    @classmethod
    def from_png(cls, png: bytes) -> EncodedImage:
        """:raises PdfRejected: not a PNG, or too large (see `load_image`)."""
        image = load_image(png)
        alpha = None
        if image.mode.endswith("A"):
            alpha = zlib.compress(image.getchannel("A").tobytes())
            image = image.convert(image.mode[:-1])
        return cls(image.width, image.height, image.mode == "L", zlib.compress(image.tobytes()), alpha)

    @property
    def size(self) -> int:
        return len(self.pixels) + len(self.alpha or b"")

    def add_to(self, writer: BasePdfFileWriter) -> generic.IndirectObject:
        """Write the image XObject (and its soft mask) into `writer`; its reference."""
        mask = None if self.alpha is None else writer.add_object(self._stream(self.alpha, grey=True))
        return writer.add_object(self._stream(self.pixels, grey=self.grey, mask=mask))

    def _stream(
        self, data: bytes, *, grey: bool, mask: generic.IndirectObject | None = None
    ) -> generic.StreamObject:
        header: dict[str, generic.PdfObject] = {
            "/Type": generic.NameObject("/XObject"),
            "/Subtype": generic.NameObject("/Image"),
            "/Width": generic.NumberObject(self.width),
            "/Height": generic.NumberObject(self.height),
            "/ColorSpace": generic.NameObject("/DeviceGray" if grey else "/DeviceRGB"),
            "/BitsPerComponent": generic.NumberObject(8),
            "/Filter": generic.NameObject("/FlateDecode"),
        }
        if mask is not None:
            header["/SMask"] = mask
        return generic.StreamObject(
            {generic.NameObject(key): value for key, value in header.items()}, encoded_data=data
        )


class ImageCache:
    """Encoded images of this process by the PNG's sha256, least recently used dropped first.

    Only this process reads it (gunicorn workers each have their own); a miss costs one
    decode and compression, as every stamp did before.
    """

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._entries: OrderedDict[bytes, EncodedImage] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, png: bytes) -> EncodedImage:
        key = hashlib.sha256(png).digest()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                return hit
        encoded = EncodedImage.from_png(png)  # outside the lock: other stamps need not wait
        if encoded.size <= self._max_bytes:
            with self._lock:
                if key not in self._entries:
                    self._entries[key] = encoded
                    self._bytes += encoded.size
                while self._bytes > self._max_bytes:
                    _key, dropped = self._entries.popitem(last=False)
                    self._bytes -= dropped.size
        return encoded


_IMAGES = ImageCache(IMAGE_CACHE_BYTES)


def encode_image(png: bytes) -> EncodedImage:
    """The PNG as PDF image streams, from this process's cache when it was used lately.

    :raises PdfRejected: not a PNG, or too large (see `load_image`).
    """
    return _IMAGES.get(png)


class StampImage(PdfContent):
    """The stamp's background: an encoded image drawn over its natural size (pyHanko scales it)."""

    def __init__(self, image: EncodedImage) -> None:
        super().__init__(box=layout.BoxConstraints(image.width, image.height))
        self.image = image

    def render(self) -> bytes:
        # a new XObject for every writer: one document's object numbers mean nothing in another
        assert self.writer is not None, "pyHanko sets the writer before it renders the background"
        self.set_resource(
            ResourceType.XOBJECT, generic.NameObject("/StampImage"), self.image.add_to(self.writer)
        )
        return b"q %g 0 0 %g 0 0 cm /StampImage Do Q" % (self.box.width, self.box.height)


@dataclass(frozen=True)
class SubsetFontStampStyle(TextStampStyle):
    """A text stamp whose font is subset for the text of each stamp it makes.

    The text is known only here: pyHanko fills in the signer's name (the given one, or the
    certificate's) and the signing time when it creates the stamp.
    """

    font_path: Path = STAMP_FONT
    font_size: int = STAMP_FONT_SIZE

    def create_stamp(
        self, writer: BasePdfFileWriter, box: layout.BoxConstraints, text_params: dict[str, object]
    ) -> TextStamp:
        # pyHanko's signer passes both parameters of STAMP_TEXT: signer and ts
        text = self.stamp_text % text_params
        font = stamp_font(self.font_path, text, self.font_size)
        style = dataclasses.replace(
            self, text_box_style=dataclasses.replace(self.text_box_style, font=font, font_size=self.font_size)
        )
        return TextStamp(writer=writer, style=style, box=box, text_params=text_params)


def stamp_style(appearance: Appearance, font_path: Path = STAMP_FONT) -> TextStampStyle:
    """pyHanko style: the image fills the box (aspect kept), the text sits over it.

    :raises SigningFailed: the stamp font is not installed.
    :raises PdfRejected: the image is not a PNG, or too large.
    """
    if not font_path.is_file():
        raise SigningFailed(
            f"the signature stamp font {font_path} is missing; install the Debian package "
            "fonts-lxgw-wenkai (installer/lib.sh does) and sign again"
        )
    background = None
    if appearance.image_png is not None:
        background = StampImage(encode_image(appearance.image_png))
    return SubsetFontStampStyle(
        font_path=font_path,
        font_size=STAMP_FONT_SIZE,
        stamp_text=STAMP_TEXT,
        timestamp_format=TIME_FORMAT,
        text_box_style=TextBoxStyle(font_size=STAMP_FONT_SIZE),
        background=background,
        background_opacity=1.0,
        background_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MID,
            y_align=layout.AxisAlignment.ALIGN_MID,
            margins=layout.Margins.uniform(2),
        ),
        border_width=0,
    )
