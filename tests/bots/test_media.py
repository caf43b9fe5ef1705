"""Offline video production: script, storyboard, frames with real Pillow, MP4 with the bundled real ffmpeg."""

from __future__ import annotations

import io
import math
import re
from typing import Any

import pytest
from PIL import Image

from oshal.bots.harnesses import HarnessError
from oshal.bots.media import (
    RenderedFrame,
    VideoInfo,
    assemble_mp4,
    make_storyboard,
    probe_mp4,
    render_frames,
    write_script,
)
from oshal.bots.media.video import hold_count

TOPIC = "How tides work. The moon pulls the oceans. The earth turns beneath the bulge."
TINY = {"width": 160, "height": 90, "fps": 12}


def tiny_storyboard(topic: str = TOPIC, scenes: int = 3, seconds: float = 0.5) -> dict[str, Any]:
    script = write_script({"topic": topic, "scenes": scenes, "seconds_per_scene": seconds})
    return make_storyboard({"script": script, **TINY})


def png_frame(size: tuple[int, int], colour: str = "#102030", n: int = 1, seconds: float = 0.5) -> RenderedFrame:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return RenderedFrame(n=n, caption="plain", seconds=seconds, png=buffer.getvalue())


# --- script -------------------------------------------------------------------------------------------------


def test_script_has_intro_key_points_and_outro_with_defaults() -> None:
    script = write_script({"topic": TOPIC})

    assert script["title"] == TOPIC
    assert [scene["n"] for scene in script["scenes"]] == [1, 2, 3]
    assert [scene["seconds"] for scene in script["scenes"]] == [1.5, 1.5, 1.5]
    assert script["total_seconds"] == 4.5
    assert script["scenes"][0]["caption"] == TOPIC
    assert script["scenes"][-1]["caption"].startswith("Recap: ")


def test_script_splits_sentences_into_numbered_key_points() -> None:
    script = write_script({"topic": TOPIC, "scenes": 5})

    assert [scene["caption"] for scene in script["scenes"][1:-1]] == [
        "1. How tides work.", "2. The moon pulls the oceans.", "3. The earth turns beneath the bulge."]


def test_script_splits_words_when_there_are_too_few_sentences() -> None:
    script = write_script({"topic": "a b c d e", "scenes": 4, "seconds_per_scene": 0.5})

    assert [scene["caption"] for scene in script["scenes"][1:-1]] == ["1. a b c", "2. d e"]
    assert script["total_seconds"] == 2.0


def test_script_is_deterministic_and_normalises_whitespace() -> None:
    first = write_script({"topic": "  Why   the sky\nis blue ", "scenes": 8})

    assert first == write_script({"topic": "Why the sky is blue", "scenes": 8})
    assert len(first["scenes"]) == 8


def test_script_clips_long_captions_to_80_characters() -> None:
    script = write_script({"topic": "word " * 60, "scenes": 3})

    assert all(len(scene["caption"]) <= 80 for scene in script["scenes"])
    assert all(scene["caption"].endswith("...") for scene in script["scenes"])
    assert len(script["title"]) <= 80


@pytest.mark.parametrize(("value", "field"), [
    ("just a string", "topic"),
    ({}, "topic"),
    ({"topic": "   "}, "topic"),
    ({"topic": 7}, "topic"),
    ({"topic": "x", "scenes": 1}, "scenes"),
    ({"topic": "x", "scenes": 9}, "scenes"),
    ({"topic": "x", "scenes": True}, "scenes"),
    ({"topic": "x", "scenes": "3"}, "scenes"),
    ({"topic": "x", "seconds_per_scene": 0.4}, "seconds_per_scene"),
    ({"topic": "x", "seconds_per_scene": 10.5}, "seconds_per_scene"),
    ({"topic": "x", "seconds_per_scene": math.nan}, "seconds_per_scene"),
    ({"topic": "x", "seconds_per_scene": "1"}, "seconds_per_scene"),
])
def test_script_rejects_bad_input_naming_the_field(value: Any, field: str) -> None:
    with pytest.raises(HarnessError, match=field) as caught:
        write_script(value)
    assert caught.value.hint


# --- storyboard ---------------------------------------------------------------------------------------------


def test_storyboard_defaults_and_accepts_a_bare_or_wrapped_script() -> None:
    script = write_script({"topic": TOPIC})
    board = make_storyboard(script)

    assert board == make_storyboard({"script": script})
    assert (board["width"], board["height"], board["fps"]) == (320, 180, 12)
    assert [frame["caption"] for frame in board["frames"]] == [scene["caption"] for scene in script["scenes"]]
    assert [frame["seconds"] for frame in board["frames"]] == [1.5, 1.5, 1.5]


def test_storyboard_colours_follow_the_caption_deterministically() -> None:
    board = make_storyboard(write_script({"topic": TOPIC, "scenes": 5}))
    again = make_storyboard(write_script({"topic": TOPIC, "scenes": 5}))

    assert board == again
    for frame in board["frames"]:
        assert re.fullmatch(r"#[0-9a-f]{6}", frame["background"])
        assert re.fullmatch(r"#[0-9a-f]{6}", frame["accent"])
    assert len({frame["background"] for frame in board["frames"]}) == 5


def test_storyboard_takes_size_and_fps_overrides() -> None:
    board = tiny_storyboard()

    assert (board["width"], board["height"], board["fps"]) == (160, 90, 12)
    assert make_storyboard({"script": write_script({"topic": "x"}), "fps": 60, "width": 1920})["fps"] == 60


@pytest.mark.parametrize(("override", "field"), [
    ({"width": 161}, "width"),
    ({"width": 62}, "width"),
    ({"width": 1922}, "width"),
    ({"height": 1082}, "height"),
    ({"height": "90"}, "height"),
    ({"fps": 0}, "fps"),
    ({"fps": 61}, "fps"),
    ({"fps": 12.0}, "fps"),
])
def test_storyboard_rejects_bad_overrides(override: dict[str, Any], field: str) -> None:
    with pytest.raises(HarnessError, match=field):
        make_storyboard({"script": write_script({"topic": "x"}), **override})


@pytest.mark.parametrize(("value", "message"), [
    ("not a script", "script object"),
    ({"script": "nope"}, "scenes must be a non-empty list"),
    ({"scenes": []}, "scenes must be a non-empty list"),
    ({"scenes": [{"n": 1, "seconds": 1.0}]}, "scene 1: caption must be a string"),
    ({"scenes": [{"n": 1, "caption": "a", "seconds": 1.0}, {"caption": "b", "seconds": 1.0}]}, "scene 2: n"),
    ({"scenes": [{"n": 1, "caption": "a", "seconds": 0}]}, "scene 1: seconds"),
])
def test_storyboard_rejects_malformed_scripts(value: Any, message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        make_storyboard(value)


# --- frames -------------------------------------------------------------------------------------------------


def test_frames_are_pngs_of_the_storyboard_size() -> None:
    frames = render_frames(tiny_storyboard())

    assert [(frame.n, frame.seconds) for frame in frames] == [(1, 0.5), (2, 0.5), (3, 0.5)]
    for frame in frames:
        with Image.open(io.BytesIO(frame.png)) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "RGB", (160, 90))


def test_frames_render_deterministically_and_differ_by_caption() -> None:
    frames = render_frames(tiny_storyboard())

    assert frames == render_frames(tiny_storyboard())
    assert len({frame.png for frame in frames}) == 3


def test_same_colours_with_a_different_caption_still_give_a_different_image() -> None:
    board = tiny_storyboard()
    other = {**board, "frames": [{**board["frames"][0], "caption": "Something else entirely"}]}

    assert render_frames(other)[0].png != render_frames(board)[0].png


def test_frames_draw_the_background_and_accent_colours() -> None:
    board = tiny_storyboard()
    frame = board["frames"][0]
    with Image.open(io.BytesIO(render_frames(board)[0].png)) as image:
        assert image.getpixel((0, 0)) == Image.new("RGB", (1, 1), frame["background"]).getpixel((0, 0))
        assert image.getpixel((80, 89)) == Image.new("RGB", (1, 1), frame["accent"]).getpixel((0, 0))


def test_frames_reject_a_storyboard_with_a_bad_colour() -> None:
    board = tiny_storyboard()
    board["frames"][1]["accent"] = "red"

    with pytest.raises(HarnessError, match="frame 2: accent must be a colour"):
        render_frames(board)


# --- video --------------------------------------------------------------------------------------------------


def test_topic_to_mp4_end_to_end() -> None:
    board = tiny_storyboard(scenes=3, seconds=0.5)
    frames = render_frames(board)

    data = assemble_mp4(frames, board["fps"])
    info = probe_mp4(data)

    expected = sum(hold_count(frame.seconds, board["fps"]) for frame in frames)
    assert expected == 18
    assert data[4:8] == b"ftyp"
    assert info == VideoInfo(frames=expected, seconds=info.seconds, width=160, height=90)
    assert abs(info.seconds - expected / board["fps"]) <= 1 / board["fps"]


def test_each_frame_is_held_for_its_own_duration_and_at_least_one_frame() -> None:
    frames = [png_frame((64, 64), n=1, seconds=0.5), png_frame((64, 64), "#ff0000", n=2, seconds=0.01)]

    info = probe_mp4(assemble_mp4(frames, 4))

    assert info.frames == hold_count(0.5, 4) + 1 == 3
    assert (info.width, info.height) == (64, 64)


@pytest.mark.parametrize(("frames", "fps", "message"), [
    ([], 12, "no frames"),
    ([png_frame((64, 64))], 0, "fps"),
    ([png_frame((64, 64))], True, "fps"),
    ([png_frame((64, 64)), png_frame((66, 64))], 12, "one size"),
    ([png_frame((65, 64))], 12, "even width and height"),
    ([RenderedFrame(n=4, caption="x", seconds=1.0, png=b"not a png")], 12, "frame 4 is not a readable PNG"),
])
def test_assemble_rejects_bad_frames(frames: list[RenderedFrame], fps: int, message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        assemble_mp4(frames, fps)


def test_assemble_stops_ffmpeg_at_the_timeout() -> None:
    frames = render_frames(tiny_storyboard(seconds=10.0))

    with pytest.raises(HarnessError, match="longer than") as caught:
        assemble_mp4(frames, 12, timeout=0.001)
    assert caught.value.retryable


@pytest.mark.parametrize(("data", "message"), [
    (b"", "no video data"),
    (b"\x00\x00\x00\x18ftypmp42 definitely not a video", "could not read the video"),
])
def test_probe_rejects_what_is_not_a_video(data: bytes, message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        probe_mp4(data)
