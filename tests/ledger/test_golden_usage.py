"""Golden fixtures: provider response bodies in their real shape, priced by hand, priced here to the micro-dollar.

Each ``fixtures/*.json`` holds a response body, the price row it is priced with (inline, so a change to
prices.yaml cannot move it) and the expected cost with its arithmetic. Every fixture is checked three
ways: the normaliser on the JSON body, the normaliser on the provider SDK's own object, and (for the
APIs a harness speaks) the real harness against the fake server answering with that exact usage object.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from external.fake_anthropic import FakeAnthropic
from external.fake_openai import FakeOpenAI
from oshal.bots.harnesses import Job, build_harness
from oshal.bots.manifest import BotManifest
from oshal.ledger import (
    Price,
    Priced,
    PriceTable,
    UsageCounts,
    anthropic_usage,
    openai_chat_usage,
    openai_responses_usage,
    price_call,
    price_usage,
)
from oshal.mesh.envelopes import CallUsage

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("*.json"))
NORMALISERS: dict[str, Callable[[Any], UsageCounts]] = {
    "chat.completions": openai_chat_usage, "responses": openai_responses_usage, "messages": anthropic_usage,
}
ANTHROPIC_KEY = "sk-ant-test-golden-0123456789"


def load(path: Path) -> dict[str, Any]:
    fixture: dict[str, Any] = json.loads(path.read_text())
    return fixture


def price_of(fixture: dict[str, Any]) -> Price:
    row = dict(fixture["price"])
    effective = dt.datetime.fromisoformat(row.pop("effective_from")).replace(tzinfo=dt.UTC)
    return Price(fixture["provider"], fixture["model"], effective, **row)


def called_at(fixture: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(fixture["called_at"])


def sdk_usage(fixture: dict[str, Any]) -> Any:
    """The usage as the provider's SDK hands it to a harness. The SDKs build response objects without
    validating them (so an older body still parses under a newer SDK that added required fields), and so
    does this: ``model_construct`` builds the nested models the same way."""
    body = fixture["response"]
    if fixture["api"] == "chat.completions":
        from openai.types.chat import ChatCompletion
        return ChatCompletion.model_construct(**body).usage
    if fixture["api"] == "responses":
        from openai.types.responses import Response
        return Response.model_construct(**body).usage
    from anthropic.types import Message
    return Message.model_construct(**body).usage


@pytest.fixture(params=FIXTURES, ids=[p.stem for p in FIXTURES])
def fixture(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(request.param)


def test_there_is_a_fixture_for_every_usage_shape() -> None:
    shapes = {(f["api"], "cache_creation" in f["response"]["usage"]) for f in map(load, FIXTURES)}
    assert shapes == {("chat.completions", False), ("responses", False), ("messages", False), ("messages", True)}
    for f in map(load, FIXTURES):
        assert f["expected_explanation"] and f["source"]
        assert f["response"]["usage"], f["name"]


def test_the_normalised_counts_are_the_hand_counted_ones(fixture: dict[str, Any]) -> None:
    counts = NORMALISERS[fixture["api"]](fixture["response"]["usage"])
    assert dataclasses.asdict(counts) == fixture["expected_counts"]


def test_the_sdk_object_normalises_to_the_same_counts_as_the_json(fixture: dict[str, Any]) -> None:
    normalise = NORMALISERS[fixture["api"]]
    usage = sdk_usage(fixture)
    assert not isinstance(usage, dict)  # really the SDK's object, read through attributes
    assert normalise(usage) == normalise(fixture["response"]["usage"])


def test_the_cost_is_the_hand_computed_micro_dollars(fixture: dict[str, Any]) -> None:
    counts = NORMALISERS[fixture["api"]](fixture["response"]["usage"])
    assert price_usage(price_of(fixture), counts) == fixture["expected_cost_micros"]


def test_the_ledger_path_prices_the_call_usage_exactly(fixture: dict[str, Any]) -> None:
    counts = NORMALISERS[fixture["api"]](fixture["response"]["usage"])
    call = CallUsage("golden:0:0", fixture["provider"], fixture["model"], counts.input_tokens,
                     counts.output_tokens, counts.cached_read_tokens, counts.cache_write_tokens,
                     reasoning_tokens=counts.reasoning_tokens, cache_write_1h_tokens=counts.cache_write_1h_tokens)
    cost = fixture["expected_cost_micros"]
    assert price_call(PriceTable([price_of(fixture)]), call, called_at(fixture)) == Priced(cost, "estimated", cost)


# ------------------------------------------------------------------------- through the real harnesses


@pytest.fixture
def _no_ambient_provider_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN",
                 "ANTHROPIC_BASE_URL", "ANTHROPIC_CUSTOM_HEADERS", "ANTHROPIC_PROFILE"):
        monkeypatch.delenv(name, raising=False)


async def run_through_harness(fixture: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> CallUsage:
    usage = fixture["response"]["usage"]
    fields: dict[str, Any] = {"name": "golden", "model": fixture["model"], "persona": "", "max_tokens": 64,
                              "timeout_s": 5.0, "max_retries": 0}
    server: FakeOpenAI | FakeAnthropic
    if fixture["api"] == "chat.completions":
        server = FakeOpenAI(api_key=None, usage=usage)
        fields |= {"harness": "openai"}
    else:
        monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        server = FakeAnthropic(api_key=ANTHROPIC_KEY, usage=usage)
        fields |= {"harness": "anthropic"}
    with server:
        harness = build_harness(BotManifest(**(fields | {"base_url": server.base_url})))
        try:
            outcome = await harness.run(Job("golden", 0, {"prompt": "price me"}))
        finally:
            await harness.aclose()
        [request] = server.requests
    assert request.body["model"] == fixture["model"]
    [call] = outcome.calls
    return call


@pytest.mark.usefixtures("_no_ambient_provider_settings")
@pytest.mark.parametrize("path", [p for p in FIXTURES if load(p)["api"] != "responses"], ids=lambda p: p.stem)
async def test_the_harness_records_and_the_ledger_prices_the_fixture_usage(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fixture = load(path)
    call = await run_through_harness(fixture, monkeypatch)
    expected = fixture["expected_counts"]

    assert (call.provider, call.model) == (fixture["provider"], fixture["model"])
    assert (call.input_tokens, call.output_tokens, call.reasoning_tokens, call.cached_read_tokens,
            call.cache_write_tokens) == (expected["input_tokens"], expected["output_tokens"],
                                         expected["reasoning_tokens"], expected["cached_read_tokens"],
                                         expected["cache_write_tokens"])
    priced = price_call(PriceTable([price_of(fixture)]), call, called_at(fixture))
    assert (priced.cost_micros, priced.source, priced.computed_micros) == \
        (fixture["expected_cost_micros"], "estimated", fixture["expected_cost_micros"])
