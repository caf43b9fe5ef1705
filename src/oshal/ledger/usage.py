"""Provider usage objects -> token counts by usage type. Pure: no I/O, no prices.

Each provider counts differently, and the differences decide the bill:

* OpenAI Chat Completions: ``prompt_tokens`` *includes* ``prompt_tokens_details.cached_tokens``;
  ``completion_tokens`` includes ``completion_tokens_details.reasoning_tokens``.
* OpenAI Responses: the same, spelled ``input_tokens`` / ``input_tokens_details.cached_tokens`` and
  ``output_tokens`` / ``output_tokens_details.reasoning_tokens``.
* Anthropic Messages: ``input_tokens`` *excludes* cache reads and cache writes, which come as
  ``cache_read_input_tokens`` and ``cache_creation_input_tokens``; the optional ``cache_creation`` object
  splits the writes by lifetime (``ephemeral_5m_input_tokens``, ``ephemeral_1h_input_tokens``), and 1-hour
  writes cost more than 5-minute ones.

A usage object may be the JSON body's dict or the SDK's object; both are read through one getter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["UsageCounts", "anthropic_usage", "openai_chat_usage", "openai_responses_usage"]


@dataclass(frozen=True, slots=True)
class UsageCounts:
    """Tokens by how they are billed. Like ``CallUsage``: ``input_tokens`` is uncached input only,
    ``output_tokens`` includes ``reasoning_tokens``, and ``cache_write_tokens`` includes
    ``cache_write_1h_tokens`` (the part written with a one-hour lifetime)."""

    input_tokens: int
    output_tokens: int
    reasoning_tokens: int = 0
    cached_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0

    def __post_init__(self) -> None:
        for field in fields(self):
            name, value = field.name, getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"usage {name} must be a non-negative integer, got {value!r}")
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError(f"usage has {self.reasoning_tokens} reasoning tokens but only "
                             f"{self.output_tokens} output tokens; reasoning is part of output")
        if self.cache_write_1h_tokens > self.cache_write_tokens:
            raise ValueError(f"usage has {self.cache_write_1h_tokens} one-hour cache writes but only "
                             f"{self.cache_write_tokens} cache writes in all")


def openai_chat_usage(usage: Any) -> UsageCounts:
    """A Chat Completions ``usage`` (``None`` when a server sent none: all zero)."""
    return _openai(usage, "prompt_tokens", "completion_tokens", "prompt_tokens_details",
                   "completion_tokens_details")


def openai_responses_usage(usage: Any) -> UsageCounts:
    """A Responses API ``usage``."""
    return _openai(usage, "input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details")


def anthropic_usage(usage: Any) -> UsageCounts:
    """A Messages API ``usage``. Cache writes are the total; the one-hour part is split out when the
    ``cache_creation`` breakdown is present (without it, every write is taken as a 5-minute write, the
    API's default lifetime)."""
    written = _count(usage, "cache_creation_input_tokens")
    breakdown = _get(usage, "cache_creation")
    one_hour = 0
    if breakdown is not None:
        five_min = _count(breakdown, "ephemeral_5m_input_tokens", "cache_creation.")
        one_hour = _count(breakdown, "ephemeral_1h_input_tokens", "cache_creation.")
        if _get(usage, "cache_creation_input_tokens") is None:
            written = five_min + one_hour
        elif five_min + one_hour != written:
            raise ValueError(f"usage cache_creation splits {five_min} + {one_hour} tokens by lifetime, but "
                             f"cache_creation_input_tokens is {written}")
    return UsageCounts(
        input_tokens=_count(usage, "input_tokens"), output_tokens=_count(usage, "output_tokens"),
        cached_read_tokens=_count(usage, "cache_read_input_tokens"), cache_write_tokens=written,
        cache_write_1h_tokens=one_hour,
    )


def _openai(usage: Any, prompt_key: str, output_key: str, prompt_details: str, output_details: str) -> UsageCounts:
    prompt = _count(usage, prompt_key)
    cached = _count(_get(usage, prompt_details), "cached_tokens", f"{prompt_details}.")
    if cached > prompt:
        raise ValueError(f"usage has {cached} cached tokens but only {prompt} {prompt_key}; "
                         f"cached tokens are part of {prompt_key}")
    return UsageCounts(
        input_tokens=prompt - cached, output_tokens=_count(usage, output_key),
        reasoning_tokens=_count(_get(usage, output_details), "reasoning_tokens", f"{output_details}."),
        cached_read_tokens=cached,
    )


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _count(obj: Any, name: str, where: str = "") -> int:
    """A token count: missing or ``None`` is 0; anything but a non-negative integer is refused."""
    value = _get(obj, name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"usage {where}{name} must be a non-negative integer, got {value!r}")
    return value
