"""The classic round red seal, drawn server-side for an organisation that has no scan of its own.

A red ring; the organisation's name along the upper arc, read clockwise from the left, each
character upright to the centre (as an engraved seal reads); a five-pointed star in the
middle; the seal's label (合同专用章, "Contract seal") straight across below it. The
background is transparent, so the stamp lies over the page text like ink. The text is set in
the stamp font (appliance.signing.appearance.STAMP_FONT), which has both CJK and Latin glyphs.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

SIZE = 600
"""Pixels per side: sharp at the 40-60 mm a seal field usually spans on paper."""
RED = (218, 32, 32, 255)
_RING = 22
_MAX_NAME = 40
_MAX_LABEL = 20
_ARC_DEGREES = 240.0
"""How much of the circle the name may cover, centred on the top."""


def draw_round_seal(organisation: str, label: str, font_path: Path) -> bytes:
    """A PNG of the seal: `organisation` along the arc, `label` below the star.

    :raises ValueError: an empty organisation name.
    """
    # Latin letters engraved on a seal are capitals: lower case would look lost on the ring
    name = " ".join(organisation.split())[:_MAX_NAME].upper()
    if not name:
        raise ValueError("the organisation's name is empty")
    image = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    centre = SIZE / 2
    outer = centre - 6
    draw.ellipse((centre - outer, centre - outer, centre + outer, centre + outer), outline=RED, width=_RING)
    _draw_star(draw, centre, centre, SIZE * 0.16)
    _draw_arc_text(image, name, font_path, radius=outer - _RING - 52)
    label = " ".join(label.split())[:_MAX_LABEL]
    if label:
        font = ImageFont.truetype(str(font_path), _label_size(label))
        draw.text((centre, centre + SIZE * 0.27), label, font=font, fill=RED, anchor="mm")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _draw_star(draw: ImageDraw.ImageDraw, x: float, y: float, radius: float) -> None:
    points = []
    for n in range(10):
        r = radius if n % 2 == 0 else radius * 0.382  # the inner radius of a regular star
        angle = math.radians(-90 + n * 36)
        points.append((x + r * math.cos(angle), y + r * math.sin(angle)))
    draw.polygon(points, fill=RED)


def _draw_arc_text(image: Image.Image, text: str, font_path: Path, *, radius: float) -> None:
    # fewer characters get more room each, up to a size that still fits the ring's width
    step = min(_ARC_DEGREES / max(len(text), 1), 28.0)
    size = int(min(72, max(26, radius * math.radians(step) * 0.95)))
    font = ImageFont.truetype(str(font_path), size)
    start = -90 - step * (len(text) - 1) / 2
    centre = SIZE / 2
    for n, character in enumerate(text):
        angle = start + n * step
        glyph = Image.new("RGBA", (size * 2, size * 2), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text((size, size), character, font=font, fill=RED, anchor="mm")
        # upright towards the centre: a character at the top (-90 degrees) is not turned
        turned = glyph.rotate(-(angle + 90), resample=Image.Resampling.BICUBIC)
        x = centre + radius * math.cos(math.radians(angle)) - size
        y = centre + radius * math.sin(math.radians(angle)) - size
        image.alpha_composite(turned, (round(x), round(y)))


def _label_size(label: str) -> int:
    # a CJK character is about as wide as it is high, a Latin capital about two thirds of it
    width = sum(1.0 if ord(c) > 0x2E80 else 0.65 for c in label)
    return int(min(64, SIZE * 0.6 / max(width, 1.0)))
