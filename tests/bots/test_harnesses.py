"""Harnesses end to end: the real SDKs against local servers that speak the providers' wire formats."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from external.fake_anthropic import FakeAnthropic, presented_key
from external.fake_openai import FakeOpenAI, OpenAIUsage
from oshal.bots.harnesses import HarnessError, Job, Outcome, build_harness
from oshal.bots.harnesses.deterministic import count_tokens
from oshal.bots.harnesses.intents import INTENTS
from oshal.bots.manifest import BotManifest
from oshal.errors import ConfigError
from oshal.ledger import PriceTable, load_price_file, price_call
from oshal.mesh.envelopes import CallUsage

OPENAI_ENV = "OSHAL_TEST_OPENAI_KEY"
ANTHROPIC_ENV = "OSHAL_TEST_ANTHROPIC_KEY"
OPENAI_KEY = "sk-test-openai-0123456789"
ANTHROPIC_KEY = "sk-ant-test-0123456789"
WRONG_KEY = "sk-wrong-key-must-not-leak-9876"
PERSONA = "You are a terse assistant."
AT = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Loopback only: no proxy may sit between the SDK and the fake, and no ambient provider setting applies.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN",
                 "ANTHROPIC_BASE_URL", "ANTHROPIC_CUSTOM_HEADERS", "ANTHROPIC_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=OPENAI_KEY) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def anthropic_server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=ANTHROPIC_KEY) as server:
        yield server  # type: ignore[misc]


def openai_bot(server: FakeOpenAI, **overrides: Any) -> BotManifest:
    fields: dict[str, Any] = {
        "name": "writer", "harness": "openai", "base_url": server.base_url, "model": "gpt-4o-mini",
        "api_key_env": OPENAI_ENV, "persona": PERSONA, "max_tokens": 256, "timeout_s": 5.0, "max_retries": 2,
    }
    return BotManifest(**(fields | overrides))


def anthropic_bot(server: FakeAnthropic, **overrides: Any) -> BotManifest:
    fields: dict[str, Any] = {
        "name": "critic", "harness": "anthropic", "base_url": server.base_url,
        "model": "claude-3-5-haiku-latest", "api_key_env": ANTHROPIC_ENV, "persona": PERSONA,
        "max_tokens": 300, "timeout_s": 5.0, "max_retries": 2,
    }
    return BotManifest(**(fields | overrides))


async def run_once(manifest: BotManifest, job: Job) -> Outcome:
    harness = build_harness(manifest)
    try:
        return await harness.run(job)
    finally:
        await harness.aclose()


async def fail_once(manifest: BotManifest, job: Job) -> HarnessError:
    with pytest.raises(HarnessError) as caught:
        await run_once(manifest, job)
    return caught.value


def assert_secret_absent(err: HarnessError, secret: str) -> None:
    assert secret not in str(err)
    assert secret not in (err.hint or "")
    assert secret not in json.dumps(err.to_dict())


# --------------------------------------------------------------------------------------------- OpenAI


async def test_openai_returns_text_and_usage_with_cached_tokens_split_out(
        openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OPENAI_ENV, OPENAI_KEY)
    outcome = await run_once(openai_bot(openai_server), Job("ph-7", 1, {"prompt": "hello fleet"}))

    assert outcome.output == {"text": "HELLO FLEET", "finish_reason": "stop"}
    # prompt 1200 of which 1024 cached -> 176 fresh input tokens; the model is the configured (priced) name,
    # not the dated snapshot the API reports back.
    assert outcome.calls == (
        CallUsage("ph-7:1:0", "openai", "gpt-4o-mini", input_tokens=176, output_tokens=42,
                  cached_read_tokens=1024, cache_write_tokens=0, reported_cost_micros=None),
    )


async def test_openai_sends_model_persona_as_system_message_and_limits(
        openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OPENAI_ENV, OPENAI_KEY)
    await run_once(openai_bot(openai_server, temperature=0.3), Job("ph-1", 0, {"text": "count the bots"}))

    [request] = openai_server.completions
    assert request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["messages"] == [{"role": "system", "content": PERSONA},
                                        {"role": "user", "content": "count the bots"}]
    assert request.body["max_tokens"] == 256
    assert request.body["temperature"] == 0.3


async def test_openai_without_persona_sends_only_the_user_message(
        openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OPENAI_ENV, OPENAI_KEY)
    outcome = await run_once(openai_bot(openai_server, persona=""), Job("ph-1", 0, {"a": 1, "b": [2]}))

    # Input without a prompt-like field is sent as canonical JSON.
    sent = openai_server.completions[0].body["messages"]
    assert sent == [{"role": "user", "content": '{"a": 1, "b": [2]}'}]
    assert outcome.output["text"] == '{"A": 1, "B": [2]}'


async def test_openai_call_id_is_stable_across_reruns_of_the_same_job(
        openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OPENAI_ENV, OPENAI_KEY)
    job = Job("phase-42", 3, {"prompt": "again"})
    first = await run_once(openai_bot(openai_server), job)
    second = await run_once(openai_bot(openai_server), job)
    retry = await run_once(openai_bot(openai_server), Job("phase-42", 4, {"prompt": "again"}))

    assert [c.call_id for c in first.calls] == ["phase-42:3:0"]
    assert [c.call_id for c in second.calls] == ["phase-42:3:0"]
    assert [c.call_id for c in retry.calls] == ["phase-42:4:0"]
    assert first == second
    assert openai_server.count == 3


async def test_openai_usage_prices_with_the_bundled_table(
        openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OPENAI_ENV, OPENAI_KEY)
    outcome = await run_once(openai_bot(openai_server), Job("ph-1", 0, "x"))

    priced = price_call(PriceTable(load_price_file()), outcome.calls[0], AT)
    # 176 x 0.15 + 1024 x 0.075 + 42 x 0.6 = 26.4 + 76.8 + 25.2 = 128.4 micro-dollars -> 128
    assert (priced.cost_micros, priced.source) == (128, "estimated")


async def test_openai_bad_key_is_a_401_harness_error_naming_the_env_var_not_the_key(
        openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OPENAI_ENV, WRONG_KEY)
    err = await fail_once(openai_bot(openai_server), Job("ph-1", 0, "hi"))

    assert "401" in err.message
    assert err.hint == f"check the key in ${OPENAI_ENV}"
    assert err.retryable is False
    assert_secret_absent(err, WRONG_KEY)
    assert openai_server.count == 1  # credentials errors are not retried


async def test_openai_retries_429_then_succeeds(
        openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OPENAI_ENV, OPENAI_KEY)
    openai_server.fail(429, times=2)
    outcome = await run_once(openai_bot(openai_server, max_retries=2), Job("ph-1", 0, "retry me"))

    assert outcome.output == {"text": "RETRY ME", "finish_reason": "stop"}
    assert openai_server.count == 3
    assert [r.headers["x-stainless-retry-count"] for r in openai_server.requests] == ["0", "1", "2"]
    assert outcome.calls[0].call_id == "ph-1:0:0"


async def test_openai_retries_500_with_the_sdks_own_backoff(
        openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OPENAI_ENV, OPENAI_KEY)
    openai_server.fail(500, times=1, retry_after_ms=None)  # no server hint: exponential backoff applies
    outcome = await run_once(openai_bot(openai_server), Job("ph-1", 0, "once more"))

    assert outcome.output["text"] == "ONCE MORE"
    assert openai_server.count == 2


async def test_openai_persistent_500_is_retryable_after_exhausting_retries(
        openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OPENAI_ENV, OPENAI_KEY)
    openai_server.fail(500, times=10)
    err = await fail_once(openai_bot(openai_server, max_retries=2), Job("ph-1", 0, "doomed"))

    assert err.retryable is True
    assert err.message == "openai call failed after 2 retries: InternalServerError"
    assert openai_server.count == 3


async def test_openai_400_is_not_retried_and_not_retryable(
        openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OPENAI_ENV, OPENAI_KEY)
    openai_server.fail(400)
    err = await fail_once(openai_bot(openai_server), Job("ph-1", 0, "bad"))

    assert err.retryable is False
    assert err.message == "openai refused the request (HTTP 400)"
    assert openai_server.count == 1


async def test_openai_timeout_is_retryable(
        openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OPENAI_ENV, OPENAI_KEY)
    openai_server.delay_s = 30.0
    err = await fail_once(openai_bot(openai_server, timeout_s=0.3, max_retries=1), Job("ph-1", 0, "slow"))

    assert err.retryable is True
    assert err.message == "openai call failed after 1 retries: APITimeoutError"
    assert openai_server.count == 2  # the timed-out request was retried once


def test_openai_missing_env_var_is_a_config_error_naming_it(
        openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OPENAI_ENV, raising=False)
    with pytest.raises(ConfigError) as caught:
        build_harness(openai_bot(openai_server))

    assert f"${OPENAI_ENV}" in caught.value.message
    assert caught.value.hint == f"export {OPENAI_ENV}=... before starting the node"
    assert openai_server.count == 0


async def test_openai_without_api_key_env_works_against_a_keyless_local_server() -> None:
    with FakeOpenAI(api_key=None) as server:  # like Ollama or llama.cpp: any bearer is accepted
        manifest = BotManifest(name="local", harness="openai", base_url=server.base_url, model="llama3.1",
                               provider="ollama")
        outcome = await run_once(manifest, Job("ph-3", 0, {"question": "why local?"}))

        assert outcome.output == {"text": "WHY LOCAL?", "finish_reason": "stop"}
        assert outcome.calls == (CallUsage("ph-3:0:0", "ollama", "llama3.1", 176, 42, 1024),)
        assert server.completions[0].body["model"] == "llama3.1"


async def test_openai_keyless_bot_against_a_server_that_wants_a_key_hints_at_api_key_env() -> None:
    with FakeOpenAI(api_key=OPENAI_KEY) as server:
        manifest = BotManifest(name="local", harness="openai", base_url=server.base_url, model="llama3.1")
        err = await fail_once(manifest, Job("ph-3", 0, "hi"))

        assert "401" in err.message
        assert err.hint is not None and "api_key_env" in err.hint
        assert "None" not in err.hint


async def test_openai_reports_finish_reason_and_custom_usage() -> None:
    usage = OpenAIUsage(prompt_tokens=50, completion_tokens=256, cached_tokens=0)
    with FakeOpenAI(api_key=None, usage=usage, finish_reason="length",
                    reply=lambda body: f"{len(body['messages'])} messages") as server:
        manifest = BotManifest(name="local", harness="openai", base_url=server.base_url, model="m",
                               persona=PERSONA)
        outcome = await run_once(manifest, Job("p", 1, "long answer"))

    assert outcome.output == {"text": "2 messages", "finish_reason": "length"}
    assert outcome.calls == (CallUsage("p:1:0", "openai", "m", 50, 256, 0, 0),)


async def test_openai_records_reasoning_tokens_as_part_of_output() -> None:
    usage = {"prompt_tokens": 300, "completion_tokens": 900, "total_tokens": 1200,
             "completion_tokens_details": {"reasoning_tokens": 832}}
    with FakeOpenAI(api_key=None, usage=usage) as server:
        manifest = BotManifest(name="thinker", harness="openai", base_url=server.base_url, model="o4-mini")
        outcome = await run_once(manifest, Job("p", 1, "think"))

    assert outcome.calls == (CallUsage("p:1:0", "openai", "o4-mini", 300, 900, reasoning_tokens=832),)


async def test_openai_impossible_usage_is_a_non_retryable_harness_error_saying_why() -> None:
    usage = {"prompt_tokens": 100, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 1024}}
    with FakeOpenAI(api_key=None, usage=usage) as server:
        manifest = BotManifest(name="local", harness="openai", base_url=server.base_url, model="m")
        err = await fail_once(manifest, Job("p", 1, "x"))

    assert err.message == ("openai answered bot 'local' with impossible usage: usage has 1024 cached tokens but "
                           "only 100 prompt_tokens; cached tokens are part of prompt_tokens")
    assert err.retryable is False


# ------------------------------------------------------------------------------------------ Anthropic


async def test_anthropic_returns_text_and_maps_all_usage_fields(
        anthropic_server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ANTHROPIC_ENV, ANTHROPIC_KEY)
    outcome = await run_once(anthropic_bot(anthropic_server), Job("ph-9", 0, {"message": "abc def"}))

    assert outcome.output == {"text": "fed cba", "stop_reason": "end_turn"}
    assert outcome.calls == (
        CallUsage("ph-9:0:0", "anthropic", "claude-3-5-haiku-latest", input_tokens=900, output_tokens=60,
                  cached_read_tokens=2000, cache_write_tokens=300, reported_cost_micros=None),
    )


async def test_anthropic_sends_persona_as_system_param(
        anthropic_server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ANTHROPIC_ENV, ANTHROPIC_KEY)
    await run_once(anthropic_bot(anthropic_server), Job("ph-9", 0, {"prompt": "judge this"}))

    [request] = anthropic_server.messages
    assert presented_key(request) == ANTHROPIC_KEY
    assert request.headers["anthropic-version"] != ""
    assert request.body["system"] == PERSONA
    assert request.body["messages"] == [{"role": "user", "content": "judge this"}]
    assert request.body["model"] == "claude-3-5-haiku-latest"
    assert request.body["max_tokens"] == 300
    # temperature is sent only when the manifest sets it (newer models refuse non-default values)
    assert "temperature" not in request.body


async def test_anthropic_sends_an_explicit_temperature_on_the_wire(
        anthropic_server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ANTHROPIC_ENV, ANTHROPIC_KEY)
    outcome = await run_once(anthropic_bot(anthropic_server, temperature=0.2), Job("ph-9", 0, "warm"))

    assert anthropic_server.messages[0].body["temperature"] == 0.2
    assert outcome.output["text"] == "mraw"


async def test_anthropic_without_persona_omits_system(
        anthropic_server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ANTHROPIC_ENV, ANTHROPIC_KEY)
    outcome = await run_once(anthropic_bot(anthropic_server, persona=""), Job("ph-9", 0, "plain"))

    assert "system" not in anthropic_server.messages[0].body
    assert outcome.output["text"] == "nialp"


async def test_anthropic_defaults_to_anthropic_api_key_env(
        anthropic_server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    outcome = await run_once(anthropic_bot(anthropic_server, api_key_env=None), Job("ph-9", 0, "ok"))

    assert outcome.output["text"] == "ko"
    assert presented_key(anthropic_server.messages[0]) == ANTHROPIC_KEY


async def test_anthropic_call_id_is_stable_across_reruns_of_the_same_job(
        anthropic_server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ANTHROPIC_ENV, ANTHROPIC_KEY)
    job = Job("phase-7", 2, "same")
    first = await run_once(anthropic_bot(anthropic_server), job)
    second = await run_once(anthropic_bot(anthropic_server), job)

    assert first.calls[0].call_id == second.calls[0].call_id == "phase-7:2:0"
    assert first == second
    assert anthropic_server.count == 2


async def test_anthropic_usage_prices_with_the_bundled_table(
        anthropic_server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ANTHROPIC_ENV, ANTHROPIC_KEY)
    outcome = await run_once(anthropic_bot(anthropic_server), Job("ph-9", 0, "x"))

    priced = price_call(PriceTable(load_price_file()), outcome.calls[0], AT)
    # 900 x 0.8 + 60 x 4 + 2000 x 0.08 + 300 x 1 = 720 + 240 + 160 + 300 = 1420 micro-dollars
    assert (priced.cost_micros, priced.source) == (1420, "estimated")


async def test_anthropic_impossible_cache_breakdown_is_a_non_retryable_harness_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ANTHROPIC_ENV, ANTHROPIC_KEY)
    usage = {"input_tokens": 5, "output_tokens": 5, "cache_creation_input_tokens": 100,
             "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 10}}
    with FakeAnthropic(api_key=ANTHROPIC_KEY, usage=usage) as server:
        err = await fail_once(anthropic_bot(server), Job("ph-9", 0, "x"))

    assert err.message == ("anthropic answered bot 'critic' with impossible usage: usage cache_creation splits "
                           "10 + 10 tokens by lifetime, but cache_creation_input_tokens is 100")
    assert err.retryable is False


async def test_anthropic_bad_key_is_a_401_harness_error_naming_the_env_var_not_the_key(
        anthropic_server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ANTHROPIC_ENV, WRONG_KEY)
    err = await fail_once(anthropic_bot(anthropic_server), Job("ph-9", 0, "hi"))

    assert "401" in err.message
    assert err.hint == f"check the key in ${ANTHROPIC_ENV}"
    assert err.retryable is False
    assert_secret_absent(err, WRONG_KEY)
    assert anthropic_server.count == 1


async def test_anthropic_retries_529_overloaded_then_succeeds(
        anthropic_server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ANTHROPIC_ENV, ANTHROPIC_KEY)
    anthropic_server.fail(529, times=2)
    outcome = await run_once(anthropic_bot(anthropic_server, max_retries=2), Job("ph-9", 0, "busy"))

    assert outcome.output == {"text": "ysub", "stop_reason": "end_turn"}
    assert anthropic_server.count == 3
    assert [r.headers["x-stainless-retry-count"] for r in anthropic_server.requests] == ["0", "1", "2"]


async def test_anthropic_retries_500_with_the_sdks_own_backoff(
        anthropic_server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ANTHROPIC_ENV, ANTHROPIC_KEY)
    anthropic_server.fail(500, times=1, retry_after_ms=None)
    outcome = await run_once(anthropic_bot(anthropic_server), Job("ph-9", 0, "again"))

    assert outcome.output["text"] == "niaga"
    assert anthropic_server.count == 2


async def test_anthropic_persistent_500_is_retryable_after_exhausting_retries(
        anthropic_server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ANTHROPIC_ENV, ANTHROPIC_KEY)
    anthropic_server.fail(500, times=10)
    err = await fail_once(anthropic_bot(anthropic_server, max_retries=3), Job("ph-9", 0, "doomed"))

    assert err.retryable is True
    assert err.message == "anthropic call failed after 3 retries: InternalServerError"
    assert anthropic_server.count == 4


async def test_anthropic_persistent_529_is_retryable(
        anthropic_server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ANTHROPIC_ENV, ANTHROPIC_KEY)
    anthropic_server.fail(529, times=10)
    err = await fail_once(anthropic_bot(anthropic_server, max_retries=1), Job("ph-9", 0, "doomed"))

    assert err.retryable is True
    assert err.message == "anthropic call failed after 1 retries: OverloadedError"
    assert anthropic_server.count == 2


async def test_anthropic_400_is_not_retried_and_not_retryable(
        anthropic_server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ANTHROPIC_ENV, ANTHROPIC_KEY)
    anthropic_server.fail(400)
    err = await fail_once(anthropic_bot(anthropic_server), Job("ph-9", 0, "bad"))

    assert err.retryable is False
    assert err.message == "anthropic refused the request (HTTP 400)"
    assert anthropic_server.count == 1


async def test_anthropic_timeout_is_retryable(
        anthropic_server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ANTHROPIC_ENV, ANTHROPIC_KEY)
    anthropic_server.delay_s = 30.0
    manifest = anthropic_bot(anthropic_server, timeout_s=0.3, max_retries=0)
    err = await fail_once(manifest, Job("ph-9", 0, "slow"))

    assert err.retryable is True
    assert err.message == "anthropic call failed after 0 retries: APITimeoutError"
    assert anthropic_server.count == 1


def test_anthropic_missing_env_var_is_a_config_error_naming_it(
        anthropic_server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ANTHROPIC_ENV, raising=False)
    with pytest.raises(ConfigError) as caught:
        build_harness(anthropic_bot(anthropic_server))
    assert f"${ANTHROPIC_ENV}" in caught.value.message
    assert caught.value.hint == f"export {ANTHROPIC_ENV}=... before starting the node"

    with pytest.raises(ConfigError) as default:
        build_harness(anthropic_bot(anthropic_server, api_key_env=None))
    assert "$ANTHROPIC_API_KEY" in default.value.message


# -------------------------------------------------------------------------------------- deterministic

SUMMARY_TEXT = "The deploy failed at noon. We rolled back in ten minutes. Customers saw errors for a while!"


def deterministic_bot(intent: str, **overrides: Any) -> BotManifest:
    fields: dict[str, Any] = {"name": f"det-{intent}", "intent": intent, "model": f"deterministic-{intent}",
                              "persona": "You repeat exactly what you are given."}
    return BotManifest(**(fields | overrides))


async def run_intent(intent: str, value: Any, **overrides: Any) -> Any:
    outcome = await run_once(deterministic_bot(intent, **overrides), Job("ph-d", 0, value))
    return outcome.output


def test_every_intent_is_covered_below() -> None:
    assert sorted(INTENTS) == ["classify", "echo", "extract", "plan", "review", "summarize"]


async def test_echo_returns_its_input_exactly() -> None:
    value = {"a": [1, 2.5, {"b": None}], "z": "ünïcode", "t": True}
    assert await run_intent("echo", value) == {"a": [1, 2.5, {"b": None}], "z": "ünïcode", "t": True}
    assert await run_intent("echo", "just a string") == "just a string"


async def test_summarize_keeps_the_first_sentences_and_counts() -> None:
    assert await run_intent("summarize", {"text": SUMMARY_TEXT}) == {
        "summary": "The deploy failed at noon. We rolled back in ten minutes.", "sentences": 3, "words": 17,
    }
    assert await run_intent("summarize", {"text": SUMMARY_TEXT, "sentences": 1}) == {
        "summary": "The deploy failed at noon.", "sentences": 3, "words": 17,
    }


async def test_classify_labels_by_keyword_scores() -> None:
    text = "Our payment page is down and shows error 500 after the outage"
    assert await run_intent("classify", {"text": text}) == {
        "label": "incident", "scores": {"incident": 4, "billing": 1, "security": 0, "feature": 0},
    }
    assert await run_intent("classify", "hello there") == {
        "label": "general", "scores": {"incident": 0, "billing": 0, "security": 0, "feature": 0},
    }
    # A tie is broken deterministically (by label name, highest wins).
    assert (await run_intent("classify", "refund my password"))["label"] == "security"


async def test_extract_pulls_emails_urls_and_numbers() -> None:
    text = ("Mail ops@example.com or bob.smith+x@mail.example.org, see https://example.com/status) and pay "
            "1,250.50 by day 3; not v2 or -7x. Also ops@example.com again.")
    assert await run_intent("extract", {"text": text}) == {
        "emails": ["bob.smith+x@mail.example.org", "ops@example.com"],
        "urls": ["https://example.com/status"],
        "numbers": ["1,250.50", "3"],
    }


async def test_plan_splits_a_goal_into_ordered_steps() -> None:
    goal = "write the spec; build the service then test it, and deploy."
    assert await run_intent("plan", {"goal": goal}) == {
        "goal": goal,
        "steps": [{"n": 1, "do": "write the spec"}, {"n": 2, "do": "build the service"},
                  {"n": 3, "do": "test it"}, {"n": 4, "do": "deploy"}],
    }


async def test_review_approves_clean_text_and_lists_issues_otherwise() -> None:
    clean = "The change adds retries with backoff and tests for both paths."
    assert await run_intent("review", {"text": clean}) == {"verdict": "approve", "issues": []}
    dirty = "This handler is finished and tested. TODO: add metrics. password = hunter2"
    assert await run_intent("review", {"text": dirty}) == {
        "verdict": "revise", "issues": ["contains TODO", "appears to contain a credential"],
    }
    assert await run_intent("review", "ok") == {"verdict": "revise",
                                                "issues": ["too short to review meaningfully"]}


async def test_deterministic_token_counts_are_persona_plus_input_and_the_output() -> None:
    manifest = deterministic_bot("echo")
    value = {"text": "hi there"}
    outcome = await run_once(manifest, Job("ph-d", 5, value))

    # persona: You|repeat|exactly|what|you|are|given|.  = 8
    # input '{"text": "hi there"}': {|"|text|"|:|"|hi|there|"|}  = 10
    assert outcome.calls == (CallUsage("ph-d:5:0", "deterministic", "deterministic-echo", 18, 10),)
    assert outcome.calls[0].input_tokens == (count_tokens(manifest.persona)
                                             + count_tokens(json.dumps(value, sort_keys=True)))
    assert outcome.calls[0].output_tokens == count_tokens(json.dumps(outcome.output, sort_keys=True))


async def test_deterministic_token_counts_for_a_structured_output() -> None:
    manifest = deterministic_bot("summarize", persona="")
    value = {"text": SUMMARY_TEXT}
    outcome = await run_once(manifest, Job("ph-d", 0, value))
    call = outcome.calls[0]

    assert call.input_tokens == count_tokens(json.dumps(value, sort_keys=True)) == 28
    assert call.output_tokens == count_tokens(json.dumps(outcome.output, sort_keys=True)) == 33
    assert call.call_id == "ph-d:0:0"


async def test_deterministic_bad_input_is_a_harness_error_with_a_hint() -> None:
    with pytest.raises(HarnessError) as caught:
        await run_intent("summarize", {"body": "no text field"})
    assert caught.value.message == "the summarize intent expects input.text (a string)"
    assert caught.value.hint == 'submit e.g. {"text": "..."}'
    assert caught.value.retryable is False

    with pytest.raises(HarnessError) as plan_err:
        await run_intent("plan", {"goal": "   "})
    assert plan_err.value.hint == 'submit e.g. {"goal": "build X then test it"}'


async def test_deterministic_wraps_value_errors_from_an_intent() -> None:
    with pytest.raises(HarnessError) as caught:
        await run_intent("summarize", {"text": SUMMARY_TEXT, "sentences": "many"})
    assert caught.value.message.startswith("the summarize intent cannot use this input: ")
    assert "'many'" in caught.value.message


def test_unknown_intent_is_a_config_error_at_construction() -> None:
    with pytest.raises(ConfigError) as caught:
        build_harness(deterministic_bot("translate"))
    assert caught.value.message == "bot 'det-translate' names unknown intent 'translate'"
    assert caught.value.hint is not None
    assert caught.value.hint.startswith("one of: assemble, build, check, classify, decompose, deliver, echo")


async def test_an_operators_own_intent_is_imported_by_its_module_path() -> None:
    outcome = await run_once(deterministic_bot("json:dumps", name="det-op"), Job("ph-o", 1, {"b": 1}))
    assert outcome.output == '{"b": 1}'
    assert outcome.calls[0].output_tokens == count_tokens(json.dumps('{"b": 1}'))


@pytest.mark.parametrize(("intent", "reason"), [("no_such_module_here:run", "No module named 'no_such_module_here'"),
                                                ("json:no_such_function", "has no attribute 'no_such_function'"),
                                                ("json:__doc__", "is not a function")])
def test_an_operators_intent_that_cannot_be_used_is_a_config_error(intent: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_harness(deterministic_bot(intent, name="det-op"))
    assert caught.value.message.startswith("bot 'det-op'") and reason in caught.value.message


async def test_latency_ms_is_honoured_and_the_job_completes() -> None:
    outcome = await run_once(deterministic_bot("echo", latency_ms=20), Job("ph-l", 1, {"text": "later"}))
    assert outcome.output == {"text": "later"}
    assert outcome.calls[0].call_id == "ph-l:1:0"


async def test_openai_structured_output_sends_the_schema_and_parses_the_answer() -> None:
    schema = {"type": "object", "required": ["name", "steps"], "properties": {"name": {"type": "string"}}}
    definition = {"name": "from-model", "steps": [{"id": "only", "kind": "task", "bot": "echo"}]}

    def answer(body: dict[str, Any]) -> str:
        fmt = body.get("response_format") or {}
        return json.dumps(definition) if fmt.get("type") == "json_schema" else "no schema was sent"

    with FakeOpenAI(api_key=None, reply=answer) as server:
        manifest = BotManifest(name="designer", harness="openai", base_url=server.base_url, model="m")
        job = Job("p", 1, {"text": "design it", "response_schema": schema, "response_name": "workflow"})
        outcome = await run_once(manifest, job)
        [sent] = server.completions
    assert sent.body["response_format"] == {"type": "json_schema", "json_schema": {"name": "workflow",
                                                                                  "schema": schema}}
    assert "tools" not in sent.body and sent.body["messages"][-1]["content"] == "design it"
    assert outcome.output["json"] == definition
