"""Offline video production for the video workflow: script, storyboard, rendered frames, assembled MP4.

Rendering (Pillow) and assembling (ffmpeg) are imported when first used: a node host whose bots never render a
frame does not keep them in its memory (about 3 MB resident).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from oshal.bots.media.script import write_script
from oshal.bots.media.storyboard import make_storyboard

if TYPE_CHECKING:
    from oshal.bots.media.frames import RenderedFrame, render_frames
    from oshal.bots.media.video import VideoInfo, assemble_mp4, hold_count, probe_mp4

_ON_FIRST_USE = {"RenderedFrame": "frames", "render_frames": "frames", "VideoInfo": "video",
                 "assemble_mp4": "video", "hold_count": "video", "probe_mp4": "video"}

__all__ = [
    "RenderedFrame",
    "VideoInfo",
    "assemble_mp4",
    "hold_count",
    "make_storyboard",
    "probe_mp4",
    "render_frames",
    "write_script",
]


def __getattr__(name: str) -> Any:
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
