"""The video pipeline's render and assemble steps: real frames and a real MP4, kept as ticket artifacts.

They run on the bot node but store nothing themselves: artifacts go through the control plane's gateway
(bot token + the signed envelope), which writes them to the configured object store and links them to the
ticket. The bot never holds object-store credentials.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from oshal.bots.tools import ToolSession
from oshal.errors import HarnessError

MediaIntent = Callable[[Any, ToolSession], Awaitable[Any]]


def _board(value: Any) -> dict[str, Any]:
    board = value.get("storyboard", value) if isinstance(value, dict) else None
    if not isinstance(board, dict) or not isinstance(board.get("frames"), list):
        raise HarnessError("expects input.storyboard (the storyboard step's output)")
    return board


# Each step imports its media code when it runs (see oshal.bots.media): most node hosts never run either.


async def render(value: Any, tools: ToolSession) -> Any:
    from oshal.bots.media.frames import render_frames

    board = _board(value)
    frames = await asyncio.to_thread(render_frames, board)
    names = []
    for frame in frames:
        name = f"frame-{frame.n:03d}.png"
        await tools.put_artifact(name, frame.png, "image/png")
        names.append({"name": name, "n": frame.n, "caption": frame.caption, "seconds": frame.seconds})
    return {"frames": names, "fps": board.get("fps"), "width": board.get("width"), "height": board.get("height")}


async def assemble(value: Any, tools: ToolSession) -> Any:
    from oshal.bots.media.frames import RenderedFrame
    from oshal.bots.media.video import assemble_mp4, probe_mp4

    rendered = value.get("render") if isinstance(value, dict) else None
    if not isinstance(rendered, dict) or not isinstance(rendered.get("frames"), list):
        raise HarnessError("expects input.render (the render step's output)")
    frames = []
    for item in rendered["frames"]:
        png = await tools.get_artifact(str(item["name"]))
        frames.append(RenderedFrame(int(item["n"]), str(item["caption"]), float(item["seconds"]), png))
    fps = int(rendered.get("fps") or 12)
    video = await asyncio.to_thread(assemble_mp4, frames, fps)
    info = await asyncio.to_thread(probe_mp4, video)
    stored = await tools.put_artifact("video.mp4", video, "video/mp4")
    return {"artifact": "video.mp4", "bytes": len(video), "sha256": stored.get("sha256"), "frames": info.frames,
            "seconds": info.seconds, "width": info.width, "height": info.height}


MEDIA_INTENTS: dict[str, MediaIntent] = {"render": render, "assemble": assemble}
