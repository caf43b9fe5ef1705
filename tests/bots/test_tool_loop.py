"""The call/observe tool loop of the model harnesses: the real SDKs against local servers speaking the
providers' wire formats (scripted to ask for tools), with the gateway side played by :class:`ScriptedTools`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from external.fake_anthropic import AnthropicUsage, FakeAnthropic, tool_use_id
from external.fake_openai import FakeOpenAI, OpenAIUsage, tool_call_id
from oshal.bots.harnesses import HarnessError, Job, Outcome, build_harness
from oshal.bots.harnesses.toolloop import ToolLoopError, tool_name, tool_specs
from oshal.bots.manifest import BotManifest
from oshal.mesh.envelopes import CallUsage

OPENAI_ENV = "OSHAL_TEST_OPENAI_KEY"
ANTHROPIC_ENV = "OSHAL_TEST_ANTHROPIC_KEY"
OPENAI_KEY = "sk-test-openai-0123456789"
ANTHROPIC_KEY = "sk-ant-test-0123456789"
PERSONA = "You are a terse assistant."
PROMPT = "where is order A-1?"

GET_ORDER = {
    "connector": "shop", "operation": "get_order", "mode": "auto", "risk": "read",
    "description": "Fetch one order by id.",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string", "description": "Order id"}},
                   "required": ["order_id"]},
}
REFUND = {
    "connector": "shop", "operation": "refund.create", "mode": "ask", "risk": "write",
    "description": "Refund an order.",
    "parameters": {"type": "object", "properties": {"body": {"type": "object", "properties": {
        "order_id": {"type": "string"}, "amount": {"type": "number"}}}}, "required": ["body"]},
}
FORECAST = {
    "connector": "weather-api", "operation": "GET /forecast/{city}", "mode": "auto", "risk": "read",
    "description": "", "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                      "required": ["city"]},
}
LISTED = [GET_ORDER, REFUND, FORECAST]


def order(arguments: dict[str, Any]) -> dict[str, Any]:
    return {"id": arguments["order_id"], "state": "shipped"}


def forecast(arguments: dict[str, Any]) -> dict[str, Any]:
    return {"city": arguments["city"], "sky": "clear"}


class ScriptedTools:
    """Stands in for the platform's ToolSession (the tool gateway client) in these harness unit tests only;
    the gateway itself is covered by its own end-to-end tests. ``list()`` returns a fixed table; ``call()``
    answers from a handler per (connector, operation) in the gateway's normalized shape, or raises the
    HarnessError it was given (a refusal, or an unreachable gateway)."""

    def __init__(self, tools: list[dict[str, Any]],
                 answers: dict[tuple[str, str], Callable[[dict[str, Any]], Any] | HarnessError] | None = None,
                 *, list_error: HarnessError | None = None) -> None:
        self.tools = tools
        self.answers = answers or {}
        self.list_error = list_error
        self.lists = 0
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.model_calls: list[dict[str, Any]] = []
        self.recorded: list[tuple[Any, ...]] = []

    async def list(self) -> list[dict[str, Any]]:
        self.lists += 1
        if self.list_error is not None:
            raise self.list_error
        return [dict(tool) for tool in self.tools]

    async def call(self, connector: str, operation: str, arguments: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((connector, operation, dict(arguments)))
        answer = self.answers[(connector, operation)]
        if isinstance(answer, HarnessError):
            raise answer
        return {"connector": connector, "operation": operation, "status": 200, "data": answer(dict(arguments)),
                "pages": 1, "truncated": False}

    async def model_begin(self, **call: Any) -> dict[str, Any]:
        self.model_calls.append(call)
        return {"reservation": None}  # no budgets here: the gateway's reservation path has its own tests

    async def model_end(self, *recorded: Any) -> None:
        self.recorded.append(recorded)


def shop_tools(**extra: Callable[[dict[str, Any]], Any] | HarnessError) -> ScriptedTools:
    answers: dict[tuple[str, str], Any] = {("shop", "get_order"): order,
                                           ("weather-api", "GET /forecast/{city}"): forecast}
    if "refund" in extra:
        answers[("shop", "refund.create")] = extra.pop("refund")
    assert not extra
    return ScriptedTools(LISTED, answers)


def result_json(connector: str, operation: str, data: Any) -> str:
    """What the harness sends back for a successful call: the gateway's result as compact JSON."""
    return json.dumps({"connector": connector, "operation": operation, "status": 200, "data": data, "pages": 1,
                       "truncated": False}, separators=(",", ":"))


OPENAI_TOOLS = [
    {"type": "function", "function": {"name": "shop__get_order", "description": "Fetch one order by id.",
                                      "parameters": GET_ORDER["parameters"]}},
    {"type": "function", "function": {"name": "shop__refund_create", "description": "Refund an order.",
                                      "parameters": REFUND["parameters"]}},
    {"type": "function", "function": {"name": "weather-api__GET__forecast__city_",
                                      "description": "GET /forecast/{city} on weather-api",
                                      "parameters": FORECAST["parameters"]}},
]
ANTHROPIC_TOOLS = [{"name": t["function"]["name"], "description": t["function"]["description"],
                    "input_schema": t["function"]["parameters"]} for t in OPENAI_TOOLS]

ORDER_A1 = {"name": "shop__get_order", "arguments": {"order_id": "A-1"}}
ORDER_B2 = {"name": "shop__get_order", "arguments": {"order_id": "B-2"}}
FORECAST_OSLO = {"name": "weather-api__GET__forecast__city_", "arguments": {"city": "Oslo"}}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN",
                 "ANTHROPIC_BASE_URL", "ANTHROPIC_CUSTOM_HEADERS", "ANTHROPIC_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(OPENAI_ENV, OPENAI_KEY)
    monkeypatch.setenv(ANTHROPIC_ENV, ANTHROPIC_KEY)


def openai_fake(**kwargs: Any) -> FakeOpenAI:
    """Use as ``with openai_fake(...) as server``."""
    return FakeOpenAI(api_key=OPENAI_KEY, **kwargs)


def anthropic_fake(**kwargs: Any) -> FakeAnthropic:
    """Use as ``with anthropic_fake(...) as server``."""
    return FakeAnthropic(api_key=ANTHROPIC_KEY, **kwargs)


def openai_bot(server: FakeOpenAI, **overrides: Any) -> BotManifest:
    fields: dict[str, Any] = {
        "name": "writer", "harness": "openai", "base_url": server.base_url, "model": "gpt-4o-mini",
        "api_key_env": OPENAI_ENV, "persona": PERSONA, "max_tokens": 256, "timeout_s": 5.0, "max_retries": 0,
    }
    return BotManifest(**(fields | overrides))


def anthropic_bot(server: FakeAnthropic, **overrides: Any) -> BotManifest:
    fields: dict[str, Any] = {
        "name": "critic", "harness": "anthropic", "base_url": server.base_url,
        "model": "claude-3-5-haiku-latest", "api_key_env": ANTHROPIC_ENV, "persona": PERSONA,
        "max_tokens": 300, "timeout_s": 5.0, "max_retries": 0,
    }
    return BotManifest(**(fields | overrides))


def job(tools: ScriptedTools | None, phase: str = "ph-t", attempt: int = 1, prompt: str = PROMPT) -> Job:
    return Job(phase, attempt, {"prompt": prompt}, tools)  # type: ignore[arg-type]


async def run_once(manifest: BotManifest, the_job: Job) -> Outcome:
    harness = build_harness(manifest)
    try:
        return await harness.run(the_job)
    finally:
        await harness.aclose()


async def fail_once(manifest: BotManifest, the_job: Job) -> HarnessError:
    with pytest.raises(HarnessError) as caught:
        await run_once(manifest, the_job)
    return caught.value


OPENAI_START = [{"role": "system", "content": PERSONA}, {"role": "user", "content": PROMPT}]
ANTHROPIC_START = [{"role": "user", "content": PROMPT}]


def openai_usage(n: int) -> OpenAIUsage:
    return OpenAIUsage(prompt_tokens=1000 + 100 * n, completion_tokens=10 + n, cached_tokens=200 * n)


def anthropic_usage(n: int) -> AnthropicUsage:
    return AnthropicUsage(input_tokens=500 + 50 * n, output_tokens=20 + n, cache_creation_input_tokens=7 * n,
                          cache_read_input_tokens=300 * n)


def openai_call(call_id: str, n: int) -> CallUsage:
    u = openai_usage(n)
    return CallUsage(call_id, "openai", "gpt-4o-mini", u.prompt_tokens - u.cached_tokens, u.completion_tokens,
                     u.cached_tokens)


def anthropic_call(call_id: str, n: int) -> CallUsage:
    u = anthropic_usage(n)
    return CallUsage(call_id, "anthropic", "claude-3-5-haiku-latest", u.input_tokens, u.output_tokens,
                     u.cache_read_input_tokens, u.cache_creation_input_tokens)


# ------------------------------------------------------------------------------------------ tool names


def test_tool_names_are_connector_and_operation_sanitized_for_both_providers() -> None:
    assert tool_name("shop", "get_order") == "shop__get_order"
    assert tool_name("weather-api", "GET /forecast/{city}") == "weather-api__GET__forecast__city_"
    assert tool_name("crm", "contacts.list:v2") == "crm__contacts_list_v2"
    long = tool_name("c" * 40, "o" * 40)
    assert len(long) == 64 and long == "c" * 40 + "__" + "o" * 22


def test_colliding_names_all_get_a_hash_and_map_back_to_their_pair() -> None:
    specs = tool_specs([
        {"connector": "shop", "operation": "a.b", "description": "dot", "parameters": {"type": "object"}},
        {"connector": "shop", "operation": "a_b", "description": "underscore", "parameters": {"type": "object"}},
        {"connector": "shop", "operation": "a.b", "description": "listed twice", "parameters": {}},
        {"connector": "shop", "operation": "plain", "description": "", "parameters": None},
        {"connector": "c" * 40, "operation": "o" * 40 + "1", "description": "", "parameters": {"type": "object"}},
        {"connector": "c" * 40, "operation": "o" * 40 + "2", "description": "", "parameters": {"type": "object"}},
    ])
    names = [s.name for s in specs]
    assert len(specs) == 5 and len(set(names)) == 5
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", n) for n in names)
    dot, underscore, plain, long1, long2 = specs
    assert (dot.operation, dot.description) == ("a.b", "dot")  # the first listing wins
    assert re.fullmatch(r"shop__a_b_[0-9a-f]{8}", dot.name) and re.fullmatch(r"shop__a_b_[0-9a-f]{8}", underscore.name)
    assert plain.name == "shop__plain"  # no collision, no hash
    assert plain.description == "plain on shop"
    assert plain.parameters == {"type": "object", "properties": {}}
    assert len(long1.name) == len(long2.name) == 64 and long1.name != long2.name
    # Order-independent: reversing the listing names every pair the same.
    again = {(s.connector, s.operation): s.name for s in tool_specs([
        {"connector": "shop", "operation": "a_b"}, {"connector": "shop", "operation": "a.b"}])}
    assert again == {("shop", "a_b"): underscore.name, ("shop", "a.b"): dot.name}


def test_max_tool_steps_is_bounded() -> None:
    assert BotManifest(name="b").max_tool_steps == 8
    for bad in (0, 51):
        with pytest.raises(ValidationError):
            BotManifest(name="b", max_tool_steps=bad)


# --------------------------------------------------------------------------------------------- OpenAI


async def test_openai_offers_the_listed_tools_once_and_a_plain_answer_has_no_tool_calls_key() -> None:
    with openai_fake(tool_turns=[], reply=lambda body: "no tools needed") as server:
        tools = shop_tools()
        outcome = await run_once(openai_bot(server), job(tools))

        [request] = server.completions
        assert request.body["tools"] == OPENAI_TOOLS
        assert request.body["messages"] == OPENAI_START
        assert tools.lists == 1 and tools.calls == []
        assert outcome.output == {"text": "no tools needed", "finish_reason": "stop"}
        assert outcome.calls == (CallUsage("ph-t:1:0", "openai", "gpt-4o-mini", 176, 42, 1024),)


async def test_openai_two_step_loop_sends_the_result_back_and_answers() -> None:
    with openai_fake(tool_turns=[[ORDER_A1]], turn_usage=[openai_usage(0), openai_usage(1)]) as server:
        tools = shop_tools()
        outcome = await run_once(openai_bot(server, temperature=0.3), job(tools))

        first, second = server.completions
        sent = result_json("shop", "get_order", {"id": "A-1", "state": "shipped"})
        call_id = tool_call_id(0, 0)
        for request in (first, second):
            assert {k: v for k, v in request.body.items() if k != "messages"} == {
                "model": "gpt-4o-mini", "max_tokens": 256, "temperature": 0.3, "tools": OPENAI_TOOLS}
        assert first.body["messages"] == OPENAI_START
        assert second.body["messages"] == [
            *OPENAI_START,
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function",
                 "function": {"name": "shop__get_order", "arguments": '{"order_id": "A-1"}'}}]},
            {"role": "tool", "tool_call_id": call_id, "content": sent},
        ]
        assert tools.calls == [("shop", "get_order", {"order_id": "A-1"})]
        assert outcome.output == {
            "text": f"tool results: {call_id}={sent}", "finish_reason": "stop",
            "tool_calls": [{"connector": "shop", "operation": "get_order", "arguments": {"order_id": "A-1"},
                            "status": 200}],
        }
        assert outcome.calls == (openai_call("ph-t:1:0", 0), openai_call("ph-t:1:1", 1))


async def test_openai_runs_several_tool_calls_per_turn_in_order_and_echoes_assistant_text() -> None:
    script = [[ORDER_A1, ORDER_B2], [FORECAST_OSLO]]
    with openai_fake(tool_turns=script, tool_preamble="Checking.", turn_usage=[openai_usage(n)
                                                                                      for n in range(3)]) as server:
        tools = shop_tools()
        outcome = await run_once(openai_bot(server), job(tools))

        assert server.count == 3
        assert tools.calls == [("shop", "get_order", {"order_id": "A-1"}), ("shop", "get_order", {"order_id": "B-2"}),
                               ("weather-api", "GET /forecast/{city}", {"city": "Oslo"})]
        a1 = result_json("shop", "get_order", {"id": "A-1", "state": "shipped"})
        b2 = result_json("shop", "get_order", {"id": "B-2", "state": "shipped"})
        oslo = result_json("weather-api", "GET /forecast/{city}", {"city": "Oslo", "sky": "clear"})
        last = server.completions[2].body["messages"]
        assert last[2] == {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": tool_call_id(0, 0), "type": "function",
             "function": {"name": "shop__get_order", "arguments": '{"order_id": "A-1"}'}},
            {"id": tool_call_id(0, 1), "type": "function",
             "function": {"name": "shop__get_order", "arguments": '{"order_id": "B-2"}'}}]}
        assert last[3:5] == [{"role": "tool", "tool_call_id": tool_call_id(0, 0), "content": a1},
                             {"role": "tool", "tool_call_id": tool_call_id(0, 1), "content": b2}]
        assert last[5]["tool_calls"][0]["function"]["name"] == "weather-api__GET__forecast__city_"
        assert last[6] == {"role": "tool", "tool_call_id": tool_call_id(1, 0), "content": oslo}
        assert len(last) == 7
        assert outcome.output["text"] == (f"tool results: {tool_call_id(0, 0)}={a1} | {tool_call_id(0, 1)}={b2} | "
                                          f"{tool_call_id(1, 0)}={oslo}")
        assert [(c["operation"], c["arguments"], c["status"]) for c in outcome.output["tool_calls"]] == [
            ("get_order", {"order_id": "A-1"}, 200), ("get_order", {"order_id": "B-2"}, 200),
            ("GET /forecast/{city}", {"city": "Oslo"}, 200)]
        assert outcome.calls == tuple(openai_call(f"ph-t:1:{n}", n) for n in range(3))


async def test_openai_refused_call_goes_back_to_the_model_as_an_error_and_the_job_succeeds() -> None:
    refusal = HarnessError("tool call shop.refund.create refused: needs an approval", hint="approve it")
    refund = {"name": "shop__refund_create", "arguments": {"body": {"order_id": "A-1", "amount": 5}}}
    with openai_fake(tool_turns=[[refund, ORDER_A1]]) as server:
        tools = shop_tools(refund=refusal)
        outcome = await run_once(openai_bot(server), job(tools))

        error = '{"error":"tool call shop.refund.create refused: needs an approval"}'
        a1 = result_json("shop", "get_order", {"id": "A-1", "state": "shipped"})
        assert server.completions[1].body["messages"][3:] == [
            {"role": "tool", "tool_call_id": tool_call_id(0, 0), "content": error},
            {"role": "tool", "tool_call_id": tool_call_id(0, 1), "content": a1}]
        assert outcome.output["tool_calls"] == [
            {"connector": "shop", "operation": "refund.create", "arguments": {"body": {"order_id": "A-1", "amount": 5}},
             "status": "refused", "error": "tool call shop.refund.create refused: needs an approval"},
            {"connector": "shop", "operation": "get_order", "arguments": {"order_id": "A-1"}, "status": 200}]
        assert outcome.output["text"].startswith(f"tool results: {tool_call_id(0, 0)}={error} | ")
        assert len(outcome.calls) == 2


async def test_openai_malformed_arguments_and_unknown_tools_become_error_results() -> None:
    broken = {"name": "shop__get_order", "arguments": '{"order_id": '}
    unknown = {"name": "shop__delete_everything", "arguments": {}}
    listy = {"name": "shop__get_order", "arguments": "[1, 2]"}
    with openai_fake(tool_turns=[[broken, unknown, listy]]) as server:
        tools = shop_tools()
        outcome = await run_once(openai_bot(server), job(tools))

        assert tools.calls == []  # nothing malformed reaches the gateway
        contents = [json.loads(m["content"]) for m in server.completions[1].body["messages"] if m["role"] == "tool"]
        assert contents == [
            {"error": "the arguments are not valid JSON: Expecting value at position 13"},
            {"error": "there is no tool named 'shop__delete_everything'"},
            {"error": "the arguments must be a JSON object"}]
        assert outcome.output["tool_calls"] == [
            {"connector": "shop", "operation": "get_order", "arguments": '{"order_id": ', "status": "invalid",
             "error": "the arguments are not valid JSON: Expecting value at position 13"},
            {"connector": None, "operation": "shop__delete_everything", "arguments": {}, "status": "invalid",
             "error": "there is no tool named 'shop__delete_everything'"},
            {"connector": "shop", "operation": "get_order", "arguments": [1, 2], "status": "invalid",
             "error": "the arguments must be a JSON object"}]
        assert outcome.output["finish_reason"] == "stop"


async def test_openai_unreachable_gateway_fails_the_job_retryably_with_the_usage_so_far() -> None:
    down = HarnessError("tool gateway unreachable: ConnectError", retryable=True)
    with openai_fake(tool_turns=[[ORDER_A1]]) as server:
        tools = ScriptedTools(LISTED, {("shop", "get_order"): down})
        err = await fail_once(openai_bot(server), job(tools))

        assert err.message == "tool gateway unreachable: ConnectError"
        assert err.retryable is True
        assert isinstance(err, ToolLoopError)
        assert err.calls == (CallUsage("ph-t:1:0", "openai", "gpt-4o-mini", 176, 42, 1024),)
        assert server.count == 1  # the model is not asked again


async def test_openai_step_limit_fails_the_job_after_exactly_max_tool_steps_model_calls() -> None:
    with openai_fake(tool_turns=[[ORDER_A1]] * 10, turn_usage=[openai_usage(n) for n in range(10)]) as server:
        tools = shop_tools()
        err = await fail_once(openai_bot(server, max_tool_steps=3), job(tools, "phase-9", 4))

        assert err.message == "tool loop did not finish within 3 steps"
        assert err.retryable is False
        assert err.hint is not None and "max_tool_steps" in err.hint
        assert server.count == 3
        assert len(tools.calls) == 2  # the calls of the last, over-limit turn are not run
        assert isinstance(err, ToolLoopError)
        assert err.calls == tuple(openai_call(f"phase-9:4:{n}", n) for n in range(3))


async def test_openai_provider_failure_mid_loop_keeps_the_usage_of_earlier_calls() -> None:
    with openai_fake(tool_turns=[[ORDER_A1]]) as server:
        def order_then_outage(arguments: dict[str, Any]) -> dict[str, Any]:
            server.fail(500, times=5)  # the model call after this tool call meets an outage
            return order(arguments)

        tools = ScriptedTools(LISTED, {("shop", "get_order"): order_then_outage})
        err = await fail_once(openai_bot(server, max_retries=1), job(tools))

        assert err.message == "openai call failed after 1 retries: InternalServerError"
        assert err.retryable is True
        assert isinstance(err, ToolLoopError) and [c.call_id for c in err.calls] == ["ph-t:1:0"]


async def test_openai_call_ids_are_stable_across_redeliveries_of_a_tool_job() -> None:
    with openai_fake(tool_turns=[[ORDER_A1], [ORDER_B2]]) as server:
        first = await run_once(openai_bot(server), job(shop_tools(), "phase-s", 2))
        again = await run_once(openai_bot(server), job(shop_tools(), "phase-s", 2))

        assert [c.call_id for c in first.calls] == ["phase-s:2:0", "phase-s:2:1", "phase-s:2:2"]
        assert first == again


async def test_openai_without_tools_makes_exactly_the_single_call_as_before() -> None:
    with openai_fake(tool_turns=[[ORDER_A1]]) as server:
        empty = ScriptedTools([])
        listed_none = await run_once(openai_bot(server), job(empty, prompt="hello"))
        no_gateway = await run_once(openai_bot(server), job(None, prompt="hello"))

        assert empty.lists == 1
        for outcome in (listed_none, no_gateway):
            assert outcome.output == {"text": "tool results: ", "finish_reason": "stop"}
            assert outcome.calls == (CallUsage("ph-t:1:0", "openai", "gpt-4o-mini", 176, 42, 1024),)
        for request in server.completions:
            assert request.body == {"model": "gpt-4o-mini", "max_tokens": 256, "temperature": 0.0,
                                    "messages": [{"role": "system", "content": PERSONA},
                                                 {"role": "user", "content": "hello"}]}
        assert server.count == 2


async def test_openai_refused_tool_listing_fails_before_any_model_call() -> None:
    with openai_fake() as server:
        tools = ScriptedTools(LISTED, list_error=HarnessError("tool listing refused: ticket is done"))
        err = await fail_once(openai_bot(server), job(tools))

        assert err.message == "tool listing refused: ticket is done"
        assert server.count == 0


# ------------------------------------------------------------------------------------------ Anthropic


async def test_anthropic_offers_the_listed_tools_once_and_a_plain_answer_has_no_tool_calls_key() -> None:
    with anthropic_fake(tool_turns=[], reply=lambda body: "no tools needed") as server:
        tools = shop_tools()
        outcome = await run_once(anthropic_bot(server), job(tools))

        [request] = server.messages
        assert request.body["tools"] == ANTHROPIC_TOOLS
        assert request.body["messages"] == ANTHROPIC_START
        assert tools.lists == 1 and tools.calls == []
        assert outcome.output == {"text": "no tools needed", "stop_reason": "end_turn"}
        assert outcome.calls == (CallUsage("ph-t:1:0", "anthropic", "claude-3-5-haiku-latest", 900, 60, 2000, 300),)


async def test_anthropic_two_step_loop_sends_the_result_back_and_answers() -> None:
    with anthropic_fake(tool_turns=[[ORDER_A1]], tool_preamble="Let me look that up.",
                                 turn_usage=[anthropic_usage(0), anthropic_usage(1)]) as server:
        tools = shop_tools()
        outcome = await run_once(anthropic_bot(server), job(tools))

        first, second = server.messages
        sent = result_json("shop", "get_order", {"id": "A-1", "state": "shipped"})
        use_id = tool_use_id(0, 0)
        for request in (first, second):
            assert {k: v for k, v in request.body.items() if k != "messages"} == {
                "model": "claude-3-5-haiku-latest", "max_tokens": 300, "system": PERSONA, "tools": ANTHROPIC_TOOLS}
        assert first.body["messages"] == ANTHROPIC_START
        assert second.body["messages"] == [
            *ANTHROPIC_START,
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me look that up."},
                {"type": "tool_use", "id": use_id, "name": "shop__get_order", "input": {"order_id": "A-1"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use_id, "content": sent}]},
        ]
        assert tools.calls == [("shop", "get_order", {"order_id": "A-1"})]
        assert outcome.output == {
            "text": f"tool results: {use_id}={sent}", "stop_reason": "end_turn",
            "tool_calls": [{"connector": "shop", "operation": "get_order", "arguments": {"order_id": "A-1"},
                            "status": 200}],
        }
        assert outcome.calls == (anthropic_call("ph-t:1:0", 0), anthropic_call("ph-t:1:1", 1))


async def test_anthropic_runs_several_tool_calls_per_turn_in_one_user_message() -> None:
    script = [[ORDER_A1, ORDER_B2], [FORECAST_OSLO]]
    with anthropic_fake(tool_turns=script, turn_usage=[anthropic_usage(n) for n in range(3)]) as server:
        tools = shop_tools()
        outcome = await run_once(anthropic_bot(server), job(tools))

        assert server.count == 3
        a1 = result_json("shop", "get_order", {"id": "A-1", "state": "shipped"})
        b2 = result_json("shop", "get_order", {"id": "B-2", "state": "shipped"})
        oslo = result_json("weather-api", "GET /forecast/{city}", {"city": "Oslo", "sky": "clear"})
        last = server.messages[2].body["messages"]
        assert len(last) == 5
        assert [b["id"] for b in last[1]["content"]] == [tool_use_id(0, 0), tool_use_id(0, 1)]
        assert last[2] == {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": tool_use_id(0, 0), "content": a1},
            {"type": "tool_result", "tool_use_id": tool_use_id(0, 1), "content": b2}]}
        assert last[4] == {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": tool_use_id(1, 0), "content": oslo}]}
        assert outcome.output["text"] == (f"tool results: {tool_use_id(0, 0)}={a1} | {tool_use_id(0, 1)}={b2} | "
                                          f"{tool_use_id(1, 0)}={oslo}")
        assert len(outcome.output["tool_calls"]) == 3
        assert outcome.calls == tuple(anthropic_call(f"ph-t:1:{n}", n) for n in range(3))


async def test_anthropic_refused_and_unknown_calls_are_error_results_and_the_job_succeeds() -> None:
    refusal = HarnessError("tool call shop.refund.create refused: the approval was rejected")
    refund = {"name": "shop__refund_create", "arguments": {"body": {"order_id": "A-1", "amount": 5}}}
    unknown = {"name": "shop__delete_everything", "arguments": {"all": True}}
    with anthropic_fake(tool_turns=[[refund, unknown]]) as server:
        tools = shop_tools(refund=refusal)
        outcome = await run_once(anthropic_bot(server), job(tools))

        refused = '{"error":"tool call shop.refund.create refused: the approval was rejected"}'
        missing = '{"error":"there is no tool named \'shop__delete_everything\'"}'
        assert server.messages[1].body["messages"][2] == {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": tool_use_id(0, 0), "content": refused, "is_error": True},
            {"type": "tool_result", "tool_use_id": tool_use_id(0, 1), "content": missing, "is_error": True}]}
        assert outcome.output["text"] == (f"tool results: {tool_use_id(0, 0)}!={refused} | "
                                          f"{tool_use_id(0, 1)}!={missing}")
        assert [(c["connector"], c["operation"], c["status"]) for c in outcome.output["tool_calls"]] == [
            ("shop", "refund.create", "refused"), (None, "shop__delete_everything", "invalid")]
        assert tools.calls == [("shop", "refund.create", {"body": {"order_id": "A-1", "amount": 5}})]


async def test_anthropic_unreachable_gateway_fails_the_job_retryably() -> None:
    down = HarnessError("tool gateway unreachable: ReadTimeout", retryable=True)
    with anthropic_fake(tool_turns=[[ORDER_A1]]) as server:
        err = await fail_once(anthropic_bot(server), job(ScriptedTools(LISTED, {("shop", "get_order"): down})))

        assert (err.message, err.retryable) == ("tool gateway unreachable: ReadTimeout", True)
        assert isinstance(err, ToolLoopError) and [c.call_id for c in err.calls] == ["ph-t:1:0"]
        assert server.count == 1


async def test_anthropic_step_limit_fails_the_job_after_exactly_max_tool_steps_model_calls() -> None:
    with anthropic_fake(tool_turns=[[ORDER_A1]] * 10, turn_usage=[anthropic_usage(n) for n in range(10)]) as server:
        tools = shop_tools()
        err = await fail_once(anthropic_bot(server, max_tool_steps=2), job(tools, "phase-a", 0))

        assert err.message == "tool loop did not finish within 2 steps"
        assert err.retryable is False
        assert server.count == 2
        assert len(tools.calls) == 1
        assert isinstance(err, ToolLoopError)
        assert err.calls == (anthropic_call("phase-a:0:0", 0), anthropic_call("phase-a:0:1", 1))


async def test_anthropic_without_tools_makes_exactly_the_single_call_as_before() -> None:
    with anthropic_fake(tool_turns=[[ORDER_A1]]) as server:
        empty = ScriptedTools([])
        listed_none = await run_once(anthropic_bot(server), job(empty, prompt="hello"))
        no_gateway = await run_once(anthropic_bot(server), job(None, prompt="hello"))

        assert empty.lists == 1
        for outcome in (listed_none, no_gateway):
            assert outcome.output == {"text": "tool results: ", "stop_reason": "end_turn"}
            assert outcome.calls == (CallUsage("ph-t:1:0", "anthropic", "claude-3-5-haiku-latest", 900, 60, 2000,
                                               300),)
        for request in server.messages:
            assert request.body == {"model": "claude-3-5-haiku-latest", "max_tokens": 300, "system": PERSONA,
                                    "messages": [{"role": "user", "content": "hello"}]}
        assert server.count == 2


# ------------------------------------------------------------------- the fakes hold the wire rules too


def test_the_fakes_refuse_tool_conversations_the_real_apis_refuse() -> None:
    # The loop tests above pass only if the harness keeps these rules; prove the fakes enforce them.
    with openai_fake() as server:
        headers = {"authorization": f"Bearer {OPENAI_KEY}"}
        unanswered = {"model": "m", "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "t", "arguments": "{}"}}]},
            {"role": "user", "content": "y"}]}
        stray = {"model": "m", "messages": [{"role": "user", "content": "x"},
                                            {"role": "tool", "tool_call_id": "call_9", "content": "{}"}]}
        bad_name = {"model": "m", "messages": [{"role": "user", "content": "x"}],
                    "tools": [{"type": "function", "function": {"name": "shop.get order", "parameters": {}}}]}
        for body, fragment in ((unanswered, "did not have response messages: call_1"),
                               (stray, "must be a response to a preceeding message with 'tool_calls'"),
                               (bad_name, "does not match pattern")):
            response = httpx.post(f"{server.base_url}/chat/completions", json=body, headers=headers)
            assert response.status_code == 400 and fragment in response.json()["error"]["message"]
    with anthropic_fake() as server:
        headers = {"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"}
        unanswered = {"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}]},
            {"role": "user", "content": "y"}]}
        stray = {"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "{}"}]}]}
        no_schema = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                     "tools": [{"name": "t"}]}
        for body, fragment in ((unanswered, "`tool_use` ids were found without `tool_result` blocks"),
                               (stray, "unexpected `tool_use_id`"), (no_schema, "input_schema: Field required")):
            response = httpx.post(f"{server.base_url}/v1/messages", json=body, headers=headers)
            assert response.status_code == 400 and fragment in response.json()["error"]["message"]

