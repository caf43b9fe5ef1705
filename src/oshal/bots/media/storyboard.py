"""Storyboards: a script laid out as timed frames with a canvas size, a frame rate and colours per frame."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, replace
from typing import Any

from oshal.bots.media._options import bounded_float, bounded_int
from oshal.errors import HarnessError

_HINT = 'submit a script from write_script, e.g. {"script": {...}, "width": 320, "height": 180, "fps": 12}'
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


@dataclass(frozen=True, slots=True)
class Frame:
    n: int
    caption: str
    seconds: float
    background: str
    accent: str


@dataclass(frozen=True, slots=True)
class Storyboard:
    width: int
    height: int
    fps: int
    frames: tuple[Frame, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"frames": [asdict(frame) for frame in self.frames]}


def make_storyboard(value: Any) -> dict[str, Any]:
    """The storyboard for a script, given bare or as ``{"script": ...}`` beside size and fps overrides."""
    if not isinstance(value, dict):
        raise HarnessError("the storyboard expects a script object", hint=_HINT)
    script = value.get("script", value)
    scenes = script.get("scenes") if isinstance(script, dict) else None
    frames = tuple(_frame(scene, f"scene {i}: ") for i, scene in enumerate(_scene_list(scenes), 1))
    return _canvas(value, frames).as_dict()


def read_storyboard(value: Any) -> Storyboard:
    """A storyboard dict, as ``make_storyboard`` returns it, checked and typed."""
    if not isinstance(value, dict):
        raise HarnessError("a storyboard must be an object with width, height, fps and frames", hint=_HINT)
    listed = _scene_list(value.get("frames"), "storyboard frames")
    frames = tuple(_checked_frame(frame, f"frame {i}: ") for i, frame in enumerate(listed, 1))
    return _canvas(value, frames)


def colours(caption: str) -> tuple[str, str]:
    """A dark background and a bright accent, both derived from the caption so reruns match."""
    digest = hashlib.sha256(caption.encode()).digest()
    background = "".join(f"{byte // 3:02x}" for byte in digest[:3])  # at most 0x55: white text stays legible
    accent = "".join(f"{128 + byte // 2:02x}" for byte in digest[3:6])
    return f"#{background}", f"#{accent}"


def _canvas(options: dict[str, Any], frames: tuple[Frame, ...]) -> Storyboard:
    return Storyboard(
        width=bounded_int(options, "width", 320, 64, 1920, even=True, hint=_HINT),
        height=bounded_int(options, "height", 180, 64, 1080, even=True, hint=_HINT),
        fps=bounded_int(options, "fps", 12, 1, 60, hint=_HINT),
        frames=frames,
    )


def _scene_list(scenes: Any, what: str = "script scenes") -> list[dict[str, Any]]:
    if not isinstance(scenes, list) or not scenes or not all(isinstance(scene, dict) for scene in scenes):
        raise HarnessError(f"{what} must be a non-empty list of objects", hint=_HINT)
    return scenes


def _frame(scene: dict[str, Any], where: str) -> Frame:
    n = bounded_int(scene, "n", None, 1, 1000, hint=_HINT, where=where)
    caption = scene.get("caption")
    if not isinstance(caption, str):
        raise HarnessError(f"{where}caption must be a string, got {caption!r}", hint=_HINT)
    seconds = bounded_float(scene, "seconds", None, 0.5, 10.0, hint=_HINT, where=where)
    background, accent = colours(caption)
    return Frame(n=n, caption=caption, seconds=seconds, background=background, accent=accent)


def _checked_frame(frame: dict[str, Any], where: str) -> Frame:
    for key in ("background", "accent"):
        if not isinstance(frame.get(key), str) or not _COLOUR.fullmatch(frame[key]):
            raise HarnessError(f"{where}{key} must be a colour like #1a2b3c, got {frame.get(key)!r}", hint=_HINT)
    return replace(_frame(frame, where), background=frame["background"], accent=frame["accent"])
