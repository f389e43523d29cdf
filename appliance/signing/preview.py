"""Pages of a PDF as pictures: the one sandboxed poppler renderer, and PNG previews for the browser.

Rendering is poppler's `pdftoppm` in a subprocess with memory, CPU and time limits, so a
hostile file cannot take the worker down with it. The overlay check (signing/overlay.py)
compares grey renderings with it; the contract pages show colour previews from it, with
a party's signature fields drawn on, so the highlight needs neither script nor inline style.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Sequence

from PIL import Image, ImageDraw

RENDER_TIMEOUT_SECONDS = 20
RENDER_MEMORY_BYTES = 1024 * 1024 * 1024
RENDER_CPU_SECONDS = 20
MAX_PAGE_POINTS = 5000
"""Larger than A0 (3370 points): a bigger page is not rendered, since its bitmap comes back
into the worker and would cost it hundreds of MiB."""
PREVIEW_DPI = 110
"""An A4 page becomes about 910 x 1290 pixels: sharp on a desktop, light enough for a phone."""
HIGHLIGHT_FILL = (255, 196, 0, 90)
HIGHLIGHT_LINE = (179, 38, 30, 255)

Box = tuple[float, float, float, float]
"""x, y (lower left, in PDF points from the page's lower left corner), width, height."""


class RenderFailed(Exception):
    """The page could not be rendered (damaged file, renderer limits, renderer missing)."""


def render_page(pdf: bytes, page_index: int, *, dpi: int, gray: bool) -> Image.Image:
    """Page `page_index` (0-based) of `pdf` at `dpi`.

    :raises RenderFailed: the renderer failed, was stopped by its limits, or is missing.
    """
    page = str(page_index + 1)
    colour = ("-gray",) if gray else ()
    try:
        result = subprocess.run(
            [
                # prlimit rather than preexec_fn, which is unsafe in a threaded worker
                "prlimit",
                f"--as={RENDER_MEMORY_BYTES}",
                f"--cpu={RENDER_CPU_SECONDS}",
                "pdftoppm",
                *("-f", page, "-l", page, "-r", str(dpi), *colour, "-singlefile", "-"),
            ],
            input=pdf,
            capture_output=True,
            timeout=RENDER_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError as exc:
        raise RenderFailed("prlimit or pdftoppm is missing (packages util-linux, poppler-utils)") from exc
    except subprocess.TimeoutExpired as exc:
        raise RenderFailed(f"rendering took longer than {RENDER_TIMEOUT_SECONDS} s") from exc
    if result.returncode != 0 or not result.stdout:
        raise RenderFailed(f"pdftoppm exited with {result.returncode}")
    try:
        image = Image.open(io.BytesIO(result.stdout))
        image.load()
    except (OSError, ValueError) as exc:
        raise RenderFailed("pdftoppm produced no readable image") from exc
    return image


def preview_png(
    pdf: bytes, page_number: int, page_size: tuple[float, float], highlights: Sequence[Box] = ()
) -> bytes:
    """Page `page_number` (1-based) of `pdf`, `page_size` points large, as a PNG with `highlights` drawn on.

    :raises RenderFailed: the page is too large or could not be rendered.
    """
    width, height = page_size
    if not 0 < max(width, height) <= MAX_PAGE_POINTS:
        raise RenderFailed(f"the page is larger than {MAX_PAGE_POINTS} points or has no size")
    image = render_page(pdf, page_number - 1, dpi=PREVIEW_DPI, gray=False).convert("RGB")
    scale_x, scale_y = image.width / width, image.height / height
    draw = ImageDraw.Draw(image, "RGBA")
    for x, y, box_width, box_height in highlights:
        top = height - y - box_height
        draw.rectangle(
            (x * scale_x, top * scale_y, (x + box_width) * scale_x, (top + box_height) * scale_y),
            fill=HIGHLIGHT_FILL,
            outline=HIGHLIGHT_LINE,
            width=3,
        )
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
