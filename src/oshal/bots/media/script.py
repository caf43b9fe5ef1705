"""Scripts: a topic turned into a titled list of timed scene captions, deterministically."""

from __future__ import annotations

import re
from typing import Any

from oshal.bots.media._options import bounded_float, bounded_int
from oshal.errors import HarnessError

MAX_CAPTION = 80
_HINT = 'submit e.g. {"topic": "How tides work", "scenes": 3, "seconds_per_scene": 1.5}'
_SENTENCE = re.compile(r"(?<=[.!?;])\s+")


def write_script(value: Any) -> dict[str, Any]:
    """A script for ``value["topic"]``: an intro, one key point per middle scene, and an outro."""
    topic = _topic(value)
    scenes = bounded_int(value, "scenes", 3, 2, 8, hint=_HINT)
    seconds = bounded_float(value, "seconds_per_scene", 1.5, 0.5, 10.0, hint=_HINT)
    title = clip(topic)
    captions = [title, *_key_points(topic, scenes - 2), _prefixed("Recap: ", topic)]
    return {
        "title": title,
        "scenes": [{"n": n, "caption": caption, "seconds": seconds} for n, caption in enumerate(captions, 1)],
        "total_seconds": round(seconds * scenes, 6),
    }


def clip(text: str, limit: int = MAX_CAPTION) -> str:
    """``text`` cut, at a word boundary where sensible, to at most ``limit`` characters ending in "..."."""
    if len(text) <= limit:
        return text
    head = text[: limit - 3]
    space = head.rfind(" ")
    if space > limit // 2:  # a word boundary reads better, unless it would drop most of the text
        head = head[:space]
    return head.rstrip(" ,;:.") + "..."


def _prefixed(prefix: str, text: str) -> str:
    return prefix + clip(text, MAX_CAPTION - len(prefix))


def _topic(value: Any) -> str:
    topic = value.get("topic") if isinstance(value, dict) else None
    if not isinstance(topic, str) or not topic.strip():
        raise HarnessError("the video script expects input.topic (a non-empty string)", hint=_HINT)
    return " ".join(topic.split())


def _key_points(topic: str, count: int) -> list[str]:
    if count == 0:
        return []
    # Whole sentences read better than word runs, so split by sentence when there are enough of them.
    sentences = [s.strip() for s in _SENTENCE.split(topic) if s.strip()]
    parts = sentences if len(sentences) >= count else topic.split()
    return [_prefixed(f"{n}. ", text) for n, text in enumerate(_groups(parts, count), 1)]


def _groups(parts: list[str], count: int) -> list[str]:
    """``parts`` joined into ``count`` consecutive groups of near-equal size; reused in turn if too few."""
    if len(parts) < count:
        return [parts[i % len(parts)] for i in range(count)]
    size, extra = divmod(len(parts), count)
    groups, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        groups.append(" ".join(parts[start:end]))
        start = end
    return groups
