"""Later visible signatures must not hide what an earlier signature signed (security plan P08).

A signature added after another one is "form filling" to pyHanko's difference analysis,
whatever its widget shows: an opaque appearance laid over the signed text (the amount,
a clause) passes. So for each earlier signature, the pages that later signature widgets
sit on are rendered as they were when it was signed and as they are now, and ink that
was there and is now blank inside such a widget counts as hidden. Translucent seals and
stamp text laid over the text (the usual way a company seal is applied) keep the ink
dark and are not hidden content.

Rendering is the sandboxed `pdftoppm` of appliance.signing.preview; if it cannot render,
the caller treats the signature as unchecked (not valid).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, ImageChops
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader

from appliance.signing.preflight import inherited_attribute, iter_pages
from appliance.signing.preview import MAX_PAGE_POINTS, RenderFailed, render_page

log = logging.getLogger(__name__)

RENDER_DPI = 72
INK_BELOW = 128
"""A grey level under this is ink (text, lines)."""
BLANK_ABOVE = 200
"""A grey level over this is paper: ink that became this bright has been covered."""
MIN_HIDDEN_PIXELS = 12
"""About one glyph stroke at 72 dpi; fewer is anti-aliasing at a widget's edge."""


@dataclass(frozen=True)
class Widget:
    page_index: int
    rect: tuple[float, float, float, float]
    """Normalised (x1, y1, x2, y2), x1 < x2 and y1 < y2, in default user space."""


class OverlayCheck:
    """Compares earlier revisions of one document with the document as it is now.

    Each page of the current document is rendered at most once, however many earlier
    signatures are compared with it.
    """

    def __init__(self, reader: PdfFileReader, stream: BinaryIO) -> None:
        """`reader` reads `stream`, the document as it is now.

        :raises PdfRejected: the page tree is damaged.
        """
        leaves = list(iter_pages(reader))
        self._pages = [page for _ref, page in leaves]
        self._page_of = {
            (ref.idnum, ref.generation): index
            for index, (ref, _page) in enumerate(leaves)
            if isinstance(ref, generic.IndirectObject)
        }
        self._stream = stream
        self._current: bytes | None = None
        self._rendered: dict[int, Image.Image] = {}

    def visible_widgets(self, field: generic.DictionaryObject) -> list[Widget]:
        """The on-page widgets of a signature field that have an area (invisible ones have none)."""
        annotations = field.get("/Kids") if "/Rect" not in field else None
        widgets: list[Widget] = []
        for annotation in [field] if annotations is None else [kid.get_object() for kid in annotations]:
            rect = _rect(annotation.get("/Rect"))
            page = annotation.raw_get("/P") if "/P" in annotation else None
            if rect is None or not isinstance(page, generic.IndirectObject):
                continue
            index = self._page_of.get((page.idnum, page.generation))
            if index is not None:
                widgets.append(Widget(page_index=index, rect=rect))
        return widgets

    def current_bytes(self) -> bytes:
        if self._current is None:
            self._stream.seek(0)
            self._current = self._stream.read()
        return self._current

    def hidden_ink(self, earlier: bytes, widgets: Sequence[Widget]) -> int:
        """Pixels of ink in `earlier` (a complete earlier revision) that are blank now, inside `widgets`.

        :raises RenderFailed: a page could not be rendered.
        """
        hidden = 0
        for page_index in sorted({widget.page_index for widget in widgets}):
            _check_page_size(self._pages[page_index])
            before = _render(earlier, page_index)
            after = self._render_current(page_index)
            if before.size != after.size:
                raise RenderFailed("the page size changed between the revisions")
            was_ink = before.point(lambda level: 255 if level < INK_BELOW else 0, mode="1")
            now_blank = after.point(lambda level: 255 if level > BLANK_ABOVE else 0, mode="1")
            covered = ImageChops.logical_and(was_ink, now_blank)
            on_page = [widget for widget in widgets if widget.page_index == page_index]
            for box in _pixel_boxes(self._pages[page_index], on_page, covered.size):
                hidden += covered.crop(box).histogram()[255]
        return hidden

    def _render_current(self, page_index: int) -> Image.Image:
        if page_index not in self._rendered:
            self._rendered[page_index] = _render(self.current_bytes(), page_index)
        return self._rendered[page_index]


def _check_page_size(page: generic.DictionaryObject) -> None:
    # the rendered bitmap comes back into the worker: a poster-sized page would cost it
    # hundreds of MiB
    box = _rect(inherited_attribute(page, "/MediaBox"))
    if box is None or max(box[2] - box[0], box[3] - box[1]) > MAX_PAGE_POINTS:
        raise RenderFailed(f"the page is larger than {MAX_PAGE_POINTS} points or has no media box")


def _render(pdf: bytes, page_index: int) -> Image.Image:
    return render_page(pdf, page_index, dpi=RENDER_DPI, gray=True).convert("L")


def _pixel_boxes(
    page: generic.DictionaryObject, widgets: Iterable[Widget], size: tuple[int, int]
) -> list[tuple[int, int, int, int]]:
    """Pixel boxes of the widgets on a rendered page; the whole page when rotated or unknown."""
    width, height = size
    crop = _rect(inherited_attribute(page, "/CropBox")) or _rect(inherited_attribute(page, "/MediaBox"))
    rotation = inherited_attribute(page, "/Rotate")
    if crop is None or (rotation is not None and rotation != 0):
        return [(0, 0, width, height)]
    scale = RENDER_DPI / 72
    left, _bottom, _right, top = crop
    boxes = []
    for widget in widgets:
        x1, y1, x2, y2 = widget.rect
        box = (
            max(0, int((x1 - left) * scale)),
            max(0, int((top - y2) * scale)),
            min(width, int((x2 - left) * scale) + 1),
            min(height, int((top - y1) * scale) + 1),
        )
        if box[0] < box[2] and box[1] < box[3]:
            boxes.append(box)
    return boxes


def _rect(value: object) -> tuple[float, float, float, float] | None:
    if not isinstance(value, generic.ArrayObject) or len(value) != 4:
        return None
    try:
        x1, y1, x2, y2 = (float(item) for item in value)
    except (TypeError, ValueError):
        return None
    rect = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    return rect if rect[2] - rect[0] > 0 and rect[3] - rect[1] > 0 else None
