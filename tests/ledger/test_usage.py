"""Provider usage objects -> token counts: each provider's counting rules, dicts and SDK objects alike,
and impossible usage refused with a message that says what is wrong."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from anthropic.types import Usage as AnthropicUsage
from hypothesis import given
from hypothesis import strategies as st
from openai.types import CompletionUsage
from openai.types.responses import ResponseUsage

from oshal.ledger import UsageCounts, anthropic_usage, openai_chat_usage, openai_responses_usage

# ------------------------------------------------------------------------------------------- OpenAI chat


def test_openai_chat_splits_cached_input_and_keeps_reasoning_inside_output() -> None:
    usage = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
             "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
             "completion_tokens_details": {"reasoning_tokens": 256, "audio_tokens": 0,
                                           "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
    assert openai_chat_usage(usage) == UsageCounts(input_tokens=176, output_tokens=300, reasoning_tokens=256,
                                                   cached_read_tokens=1024)


def test_openai_chat_reads_the_sdk_object_like_the_dict() -> None:
    body = {"prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57,
            "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 3}}
    assert openai_chat_usage(CompletionUsage.model_validate(body)) == openai_chat_usage(body) == \
        UsageCounts(input_tokens=50, output_tokens=7, reasoning_tokens=3)


@pytest.mark.parametrize("usage", [
    None,  # a local server that sends no usage at all
    {},
    {"prompt_tokens": None, "completion_tokens": None},
    {"prompt_tokens_details": None, "completion_tokens_details": None},
    SimpleNamespace(prompt_tokens=0, completion_tokens=0),  # details attributes absent
])
def test_openai_chat_missing_or_null_counts_are_zero(usage: Any) -> None:
    assert openai_chat_usage(usage) == UsageCounts(0, 0)


def test_openai_chat_without_details_has_no_cached_or_reasoning_tokens() -> None:
    # Ollama and llama.cpp send only the totals
    assert openai_chat_usage({"prompt_tokens": 26, "completion_tokens": 9, "total_tokens": 35}) == \
        UsageCounts(input_tokens=26, output_tokens=9)


@pytest.mark.parametrize(("usage", "message"), [
    ({"prompt_tokens": 100, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 128}},
     "usage has 128 cached tokens but only 100 prompt_tokens; cached tokens are part of prompt_tokens"),
    ({"prompt_tokens": 1, "completion_tokens": 10, "completion_tokens_details": {"reasoning_tokens": 11}},
     "usage has 11 reasoning tokens but only 10 output tokens; reasoning is part of output"),
    ({"prompt_tokens": -1, "completion_tokens": 1}, "usage prompt_tokens must be a non-negative integer, got -1"),
    ({"prompt_tokens": 1, "completion_tokens": 1.5},
     "usage completion_tokens must be a non-negative integer, got 1.5"),
    ({"prompt_tokens": "12", "completion_tokens": 1},
     "usage prompt_tokens must be a non-negative integer, got '12'"),
    ({"prompt_tokens": True, "completion_tokens": 1},
     "usage prompt_tokens must be a non-negative integer, got True"),
    ({"prompt_tokens": 5, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": -2}},
     "usage prompt_tokens_details.cached_tokens must be a non-negative integer, got -2"),
])
def test_openai_chat_impossible_usage_is_refused(usage: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        openai_chat_usage(usage)
    assert str(caught.value) == message


@given(prompt=st.integers(0, 10**9), cached=st.integers(0, 10**9), completion=st.integers(0, 10**9),
       reasoning=st.integers(0, 10**9))
def test_openai_chat_counts_add_back_up_to_the_provider_totals(
        prompt: int, cached: int, completion: int, reasoning: int) -> None:
    cached, reasoning = min(cached, prompt), min(reasoning, completion)
    counts = openai_chat_usage({"prompt_tokens": prompt, "completion_tokens": completion,
                                "prompt_tokens_details": {"cached_tokens": cached},
                                "completion_tokens_details": {"reasoning_tokens": reasoning}})
    assert counts.input_tokens + counts.cached_read_tokens == prompt
    assert (counts.output_tokens, counts.reasoning_tokens, counts.cache_write_tokens) == (completion, reasoning, 0)


# -------------------------------------------------------------------------------------- OpenAI responses


def test_openai_responses_uses_its_own_field_names() -> None:
    usage = {"input_tokens": 5837, "input_tokens_details": {"cached_tokens": 4864}, "output_tokens": 2411,
             "output_tokens_details": {"reasoning_tokens": 2048}, "total_tokens": 8248}
    expected = UsageCounts(input_tokens=973, output_tokens=2411, reasoning_tokens=2048, cached_read_tokens=4864)
    assert openai_responses_usage(usage) == expected
    assert openai_responses_usage(ResponseUsage.model_construct(**usage)) == expected
    # the chat normaliser does not read these names: the two APIs must not be confused
    assert openai_chat_usage(usage) == UsageCounts(0, 0)


def test_openai_responses_refuses_more_cached_than_input_tokens() -> None:
    with pytest.raises(ValueError, match="usage has 2048 cached tokens but only 1000 input_tokens"):
        openai_responses_usage({"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 2048},
                                "output_tokens": 1})


# --------------------------------------------------------------------------------------------- Anthropic


def test_anthropic_input_already_excludes_cache_reads_and_writes() -> None:
    usage = {"input_tokens": 900, "output_tokens": 60, "cache_creation_input_tokens": 300,
             "cache_read_input_tokens": 2000}
    assert anthropic_usage(usage) == UsageCounts(input_tokens=900, output_tokens=60, cached_read_tokens=2000,
                                                 cache_write_tokens=300)


def test_anthropic_splits_one_hour_cache_writes_out_of_the_total() -> None:
    usage = {"input_tokens": 7, "cache_creation_input_tokens": 5346, "cache_read_input_tokens": 19230,
             "cache_creation": {"ephemeral_5m_input_tokens": 1153, "ephemeral_1h_input_tokens": 4193},
             "output_tokens": 389, "service_tier": "standard"}
    expected = UsageCounts(input_tokens=7, output_tokens=389, cached_read_tokens=19230, cache_write_tokens=5346,
                           cache_write_1h_tokens=4193)
    assert anthropic_usage(usage) == expected
    assert anthropic_usage(AnthropicUsage.model_validate(usage)) == expected


def test_anthropic_takes_the_total_from_the_breakdown_when_only_the_breakdown_is_sent() -> None:
    usage = {"input_tokens": 1, "output_tokens": 1,
             "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 5}}
    assert anthropic_usage(usage).cache_write_tokens == 15
    assert anthropic_usage(usage).cache_write_1h_tokens == 5


@pytest.mark.parametrize("usage", [
    {"input_tokens": 12, "output_tokens": 3},  # no caching in play
    {"input_tokens": 12, "output_tokens": 3, "cache_creation_input_tokens": None, "cache_read_input_tokens": None,
     "cache_creation": None},  # as the SDK leaves the optional fields
    {"input_tokens": 12, "output_tokens": 3, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
     "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}},
])
def test_anthropic_without_cache_activity_has_no_cache_tokens(usage: dict[str, Any]) -> None:
    assert anthropic_usage(usage) == UsageCounts(input_tokens=12, output_tokens=3)
    assert anthropic_usage(AnthropicUsage.model_validate(usage)) == UsageCounts(input_tokens=12, output_tokens=3)


@pytest.mark.parametrize(("usage", "message"), [
    ({"input_tokens": 1, "output_tokens": 1, "cache_creation_input_tokens": 100,
      "cache_creation": {"ephemeral_5m_input_tokens": 50, "ephemeral_1h_input_tokens": 40}},
     "usage cache_creation splits 50 + 40 tokens by lifetime, but cache_creation_input_tokens is 100"),
    ({"input_tokens": 1, "output_tokens": 1, "cache_creation": {"ephemeral_1h_input_tokens": -4}},
     "usage cache_creation.ephemeral_1h_input_tokens must be a non-negative integer, got -4"),
    ({"input_tokens": 1, "output_tokens": -1}, "usage output_tokens must be a non-negative integer, got -1"),
    ({"input_tokens": 1, "output_tokens": 1, "cache_read_input_tokens": "many"},
     "usage cache_read_input_tokens must be a non-negative integer, got 'many'"),
])
def test_anthropic_impossible_usage_is_refused(usage: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        anthropic_usage(usage)
    assert str(caught.value) == message


@given(five=st.integers(0, 10**9), hour=st.integers(0, 10**9))
def test_anthropic_one_hour_writes_are_always_part_of_the_writes(five: int, hour: int) -> None:
    counts = anthropic_usage({"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": five + hour,
                              "cache_creation": {"ephemeral_5m_input_tokens": five,
                                                 "ephemeral_1h_input_tokens": hour}})
    assert (counts.cache_write_tokens, counts.cache_write_1h_tokens) == (five + hour, hour)


# ------------------------------------------------------------------------------------------ UsageCounts


@pytest.mark.parametrize(("fields", "message"), [
    ({"input_tokens": 0, "output_tokens": 0, "cache_write_tokens": 1, "cache_write_1h_tokens": 2},
     "usage has 2 one-hour cache writes but only 1 cache writes in all"),
    ({"input_tokens": 0, "output_tokens": 0, "reasoning_tokens": 1},
     "usage has 1 reasoning tokens but only 0 output tokens; reasoning is part of output"),
    ({"input_tokens": -3, "output_tokens": 0}, "usage input_tokens must be a non-negative integer, got -3"),
])
def test_usage_counts_refuse_impossible_combinations(fields: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        UsageCounts(**fields)
    assert str(caught.value) == message
