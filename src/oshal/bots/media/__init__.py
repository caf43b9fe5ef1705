"""Offline video production for the video workflow: script, storyboard, rendered frames, assembled MP4."""

from oshal.bots.media.frames import RenderedFrame, render_frames
from oshal.bots.media.script import write_script
from oshal.bots.media.storyboard import make_storyboard
from oshal.bots.media.video import VideoInfo, assemble_mp4, hold_count, probe_mp4

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
