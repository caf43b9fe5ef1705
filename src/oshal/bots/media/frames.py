"""Frame rendering: each storyboard frame drawn as a PNG with its colours, an accent and its caption."""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeAlias

from PIL import Image, ImageDraw, ImageFont

from oshal.bots.media.storyboard import Frame, read_storyboard

Font: TypeAlias = ImageFont.FreeTypeFont | ImageFont.ImageFont

_TEXT_COLOUR = "#ffffff"
_SMALLEST_FONT = 8
_LINE_SPACING = 4


@dataclass(frozen=True, slots=True)
class RenderedFrame:
    n: int
    caption: str
    seconds: float
    png: bytes


def render_frames(storyboard: dict[str, Any]) -> list[RenderedFrame]:
    """One PNG of exactly the storyboard's width and height per storyboard frame, in order."""
    board = read_storyboard(storyboard)
    return [
        RenderedFrame(n=frame.n, caption=frame.caption, seconds=frame.seconds,
                      png=_png(_draw(frame, board.width, board.height)))
        for frame in board.frames
    ]


def _draw(frame: Frame, width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), frame.background)
    draw = ImageDraw.Draw(image)
    _draw_accent(draw, frame.accent, width, height)
    _draw_caption(draw, frame.caption, width, height)
    return image


def _draw_accent(draw: ImageDraw.ImageDraw, colour: str, width: int, height: int) -> None:
    bar = max(2, height // 12)
    draw.rectangle((0, height - bar, width, height), fill=colour)
    radius = max(3, height // 16)
    draw.ellipse((width - 3 * radius, radius, width - radius, 3 * radius), fill=colour)


def _draw_caption(draw: ImageDraw.ImageDraw, caption: str, width: int, height: int) -> None:
    font, text = _fit(draw, caption, width * 4 // 5, height * 3 // 5, largest=max(_SMALLEST_FONT, height // 8))
    left, top, right, bottom = _text_box(draw, text, font)
    origin = ((width - (right - left)) / 2 - left, (height - (bottom - top)) / 2 - top)
    draw.multiline_text(origin, text, fill=_TEXT_COLOUR, font=font, align="center", spacing=_LINE_SPACING)


def _fit(draw: ImageDraw.ImageDraw, caption: str, max_width: int, max_height: int, *,
         largest: int) -> tuple[Font, str]:
    """The largest font whose wrapped caption fits the box; at the smallest size, the caption may overflow."""
    for size in range(largest, _SMALLEST_FONT - 1, -1):
        font = _font(size)
        text = _wrap(draw, caption, font, max_width)
        left, top, right, bottom = _text_box(draw, text, font)
        if right - left <= max_width and bottom - top <= max_height:
            break
    return font, text


def _wrap(draw: ImageDraw.ImageDraw, caption: str, font: Font, max_width: int) -> str:
    lines: list[str] = []
    for word in caption.split():
        joined = f"{lines[-1]} {word}" if lines else word
        if lines and draw.textlength(joined, font=font) <= max_width:
            lines[-1] = joined
        else:
            lines.append(word)
    return "\n".join(lines)


def _text_box(draw: ImageDraw.ImageDraw, text: str, font: Font) -> tuple[float, float, float, float]:
    return draw.multiline_textbbox((0, 0), text, font=font, align="center", spacing=_LINE_SPACING)


@cache
def _font(size: int) -> Font:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):
        # Pillow 10.0 takes no size, and builds without FreeType have only the fixed-size bitmap font.
        return ImageFont.load_default()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
