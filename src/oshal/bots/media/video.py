"""Video assembly and probing with the ffmpeg that imageio-ffmpeg bundles: rendered frames in, H.264 MP4 out.

Encoding drives the bundled executable directly rather than through ``imageio_ffmpeg.write_frames``, which
sends ffmpeg's stderr to ours and does not check its exit code, so a failed encode could not be reported.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import imageio_ffmpeg  # type: ignore[import-untyped]
from PIL import Image

from oshal.bots.media.frames import RenderedFrame
from oshal.errors import HarnessError

ENCODE_TIMEOUT = 120.0
_STDERR_LINES = 6


@dataclass(frozen=True, slots=True)
class VideoInfo:
    frames: int
    seconds: float
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class _Still:
    rgb: bytes
    size: tuple[int, int]
    repeats: int


def hold_count(seconds: float, fps: int) -> int:
    """How many video frames show an image held for ``seconds``: never fewer than one."""
    return max(1, round(seconds * fps))


def assemble_mp4(frames: Sequence[RenderedFrame], fps: int, *, timeout: float = ENCODE_TIMEOUT) -> bytes:
    """An H.264 (yuv420p, faststart) MP4 holding each frame for ``hold_count(frame.seconds, fps)`` frames."""
    if isinstance(fps, bool) or not isinstance(fps, int) or not 1 <= fps <= 60:
        raise HarnessError(f"fps must be an integer from 1 to 60, got {fps!r}", hint="use the storyboard's fps")
    stills = [_still(frame, fps) for frame in frames]
    width, height = _common_size(stills)
    with tempfile.TemporaryDirectory(prefix="oshal-video-") as directory:
        output = Path(directory) / "video.mp4"
        command = [
            _ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "pipe:0",
            "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-y", str(output),
        ]
        _encode(command, _raw_frames(stills), Path(directory) / "ffmpeg.log", timeout)
        return output.read_bytes()


def probe_mp4(data: bytes) -> VideoInfo:
    """The frame count, duration and frame size of an MP4, as ffmpeg decodes it."""
    if not data:
        raise HarnessError("there is no video data to probe", hint="pass the bytes assemble_mp4 returned")
    with tempfile.TemporaryDirectory(prefix="oshal-probe-") as directory:
        path = str(Path(directory) / "video.mp4")
        Path(path).write_bytes(data)
        try:
            count, seconds = imageio_ffmpeg.count_frames_and_secs(path)
            width, height = _frame_size(path)
        except (RuntimeError, OSError) as e:
            raise HarnessError(f"ffmpeg could not read the video: {_tail(str(e))}",
                               hint="check the data is a complete MP4") from e
    return VideoInfo(frames=int(count), seconds=float(seconds), width=width, height=height)


def _still(frame: RenderedFrame, fps: int) -> _Still:
    try:
        with Image.open(io.BytesIO(frame.png)) as image:
            rgb = image.convert("RGB")
    except OSError as e:  # Pillow's UnidentifiedImageError is an OSError
        raise HarnessError(f"frame {frame.n} is not a readable PNG: {e}",
                           hint="render frames with render_frames") from e
    return _Still(rgb=rgb.tobytes(), size=rgb.size, repeats=hold_count(frame.seconds, fps))


def _common_size(stills: list[_Still]) -> tuple[int, int]:
    if not stills:
        raise HarnessError("there are no frames to assemble into a video", hint="render a storyboard first")
    sizes = {still.size for still in stills}
    if len(sizes) > 1:
        raise HarnessError(f"frames must all be one size to make a video, got {sorted(sizes)}",
                           hint="render every frame from the same storyboard")
    width, height = sizes.pop()
    if width % 2 or height % 2:
        raise HarnessError(f"H.264 in yuv420p needs an even width and height, got {width}x{height}",
                           hint="use an even width and height in the storyboard")
    return width, height


def _raw_frames(stills: list[_Still]) -> Iterator[bytes]:
    for still in stills:
        for _ in range(still.repeats):
            yield still.rgb


def _encode(command: list[str], chunks: Iterable[bytes], log_path: Path, timeout: float) -> None:
    """Runs ffmpeg on ``chunks`` as stdin, killing it after ``timeout`` seconds; raises with its stderr."""
    expired = threading.Event()
    with log_path.open("w+b") as log:
        # stderr goes to a file, not a pipe, so ffmpeg can never block on a full pipe while we feed stdin.
        with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log) as process:

            def expire() -> None:
                expired.set()
                process.kill()

            watchdog = threading.Timer(timeout, expire)
            watchdog.start()
            try:
                assert process.stdin is not None
                _feed(process.stdin, chunks)
                process.wait()
            finally:
                watchdog.cancel()
        log.seek(0)
        stderr = log.read().decode(errors="replace")
    if process.returncode == 0:
        return
    if expired.is_set():
        raise HarnessError(f"ffmpeg took longer than {timeout:g}s to encode the video and was stopped: "
                           f"{_tail(stderr)}", retryable=True, hint="make the video shorter or smaller")
    raise HarnessError(f"ffmpeg failed to encode the video (exit {process.returncode}): {_tail(stderr)}",
                       hint="check the frames and fps; the message above is ffmpeg's own")


def _feed(stdin: IO[bytes], chunks: Iterable[bytes]) -> None:
    # A broken pipe means ffmpeg quit early; its exit code and stderr say why, so they are what gets reported.
    with contextlib.suppress(BrokenPipeError):
        try:
            for chunk in chunks:
                stdin.write(chunk)
        finally:
            stdin.close()


def _frame_size(path: str) -> tuple[int, int]:
    # read_frames only closes ffmpeg's stdin and stdout pipes if ffmpeg is still running when the reader is
    # closed; on a short video it has already exited, so the pipes are closed as the reader is released
    # (during close()), with a ResourceWarning that is noise, not a leak.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        reader = imageio_ffmpeg.read_frames(path)
        try:
            meta = next(reader)  # read_frames yields its metadata before any frame
        finally:
            reader.close()
    width, height = meta["size"]
    return int(width), int(height)


def _ffmpeg() -> str:
    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError as e:
        raise HarnessError("no ffmpeg executable was found to encode the video",
                           hint="pip install imageio-ffmpeg, or point IMAGEIO_FFMPEG_EXE at an ffmpeg") from e


def _tail(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-_STDERR_LINES:]) or "(no output)"
