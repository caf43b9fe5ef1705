"""The fleet's model provider chosen by configuration: which bots switch, the shape their answers keep, and the
misconfigurations that stop a start. Harness calls go to local servers speaking the providers' wire formats."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from external.fake_anthropic import FakeAnthropic
from external.fake_openai import FakeOpenAI
from oshal.bots.harnesses import HarnessError, Job, build_harness
from oshal.bots.harnesses.deterministic import DeterministicHarness
from oshal.bots.manifest import BotManifest, load_fleet, load_manifest
from oshal.bots.model_provider import ModelProvider, apply_provider, resolve_provider
from oshal.errors import ConfigError
from oshal.settings import Settings

REPO = Path(__file__).resolve().parents[2]
FLEET = load_fleet(REPO / "fleet")
MODEL_CAPABLE = {"summarizer", "triage", "reviewer", "support", "ops-diagnoser", "trade-analyst", "trade-narrator"}
CHECK_AT = datetime(2025, 6, 1, 3, 0, tzinfo=UTC).isoformat()
# One input per model-capable bot, as its workflow step sends it.
SAMPLE_INPUTS: dict[str, Any] = {
    "summarizer": {"text": "The queue is slow. Lag grew all night. Nobody was paged."},
    "triage": {"text": "The checkout page is down with a 500 error"},
    "reviewer": {"text": "Restart the failing service and watch its error rate for ten minutes."},
    "support": {"text": "I was charged twice for my subscription this month", "feedback": None},
    "ops-diagnoser": {
        "signal": {"kind": "check_failed", "check": "shop"},
        "evidence": [{"id": "check:shop", "kind": "check", "source": "GET http://127.0.0.1:9/health",
                      "collected_at": CHECK_AT, "summary": "shop health check failed: HTTP 503",
                      "data": {"name": "shop", "url": "http://127.0.0.1:9/health", "ok": False, "status": 503,
                               "error": None, "at": CHECK_AT}}],
        "feedback": None,
    },
    "trade-analyst": {"signals": [{"id": "sig-1", "strategy": "sma-cross", "symbol": "AAPL", "side": "buy",
                                   "strength": 0.4, "horizon_bars": 5, "at": "2016-03-01T00:00:00+00:00",
                                   "rationale": "fast SMA(3) crossed above slow SMA(8)",
                                   "inputs": {"fast": 10050, "slow": 10010}}]},
    "trade-narrator": {"recap": {"day": "2016-03-01", "pnl": 1250,
                                 "narrative": "On 2016-03-01 the desk made $12.50 (+0.01%), ending at $100,012.50."}},
}


def settings(**fields: Any) -> Settings:
    return Settings(**fields)


# ------------------------------------------------------------------------------------------ configuration


def test_without_a_provider_every_bot_keeps_its_own_harness() -> None:
    assert resolve_provider(settings(), {}) is None
    assert apply_provider(FLEET, None) is FLEET
    assert {m.harness for m in FLEET.values()} == {"deterministic"}  # the shipped fleet runs offline by default


def test_a_provider_switches_exactly_the_model_capable_bots_and_keeps_their_persona_and_shape() -> None:
    provider = resolve_provider(settings(model_provider="openai", model="gpt-4o-mini"),
                                {"OPENAI_API_KEY": "sk-test"})
    assert provider == ModelProvider("openai", "gpt-4o-mini", None, "OPENAI_API_KEY")
    switched = apply_provider(FLEET, provider)

    assert {n for n, m in switched.items() if m.harness == "openai"} == MODEL_CAPABLE
    for name in MODEL_CAPABLE:
        bot, before = switched[name], FLEET[name]
        assert (bot.model, bot.provider_name, bot.api_key_env, bot.base_url) == (
            "gpt-4o-mini", "openai", "OPENAI_API_KEY", None)
        assert (bot.persona, bot.output_schema, bot.max_tokens) == (before.persona, before.output_schema,
                                                                    before.max_tokens)
    for name in FLEET.keys() - MODEL_CAPABLE:
        assert switched[name] == FLEET[name]
    assert apply_provider(switched, provider) == switched  # a node re-applying it changes nothing


def test_a_local_openai_compatible_server_on_loopback_needs_no_key() -> None:
    local = resolve_provider(settings(model_provider="openai", model="llama3.1",
                                      model_base_url="http://127.0.0.1:11434/v1"), {})
    assert local == ModelProvider("openai", "llama3.1", "http://127.0.0.1:11434/v1", None)
    # a key variable named but unset: the local server is used without one
    named = resolve_provider(settings(model_provider="openai", model="llama3.1", model_api_key_env="MY_KEY",
                                      model_base_url="http://localhost:8000/v1"), {})
    assert named is not None and named.api_key_env is None
    with_key = resolve_provider(settings(model_provider="openai", model="m", model_api_key_env="MY_KEY",
                                         model_base_url="http://[::1]:8000/v1"), {"MY_KEY": "k"})
    assert with_key is not None and with_key.api_key_env == "MY_KEY"


def test_anthropic_takes_a_base_url_and_its_own_key_variable() -> None:
    provider = resolve_provider(settings(model_provider="anthropic", model="claude-3-5-haiku-latest",
                                         model_base_url="https://gateway.example.com"),
                                {"ANTHROPIC_API_KEY": "sk-ant"})
    assert provider == ModelProvider("anthropic", "claude-3-5-haiku-latest", "https://gateway.example.com",
                                     "ANTHROPIC_API_KEY")


@pytest.mark.parametrize(("fields", "environ", "says", "hint"), [
    ({"model_provider": "openai"}, {"OPENAI_API_KEY": "k"}, "no model", "OSHAL_MODEL"),
    ({"model_provider": "openai", "model": "  "}, {"OPENAI_API_KEY": "k"}, "no model", "--model"),
    ({"model": "gpt-4o-mini"}, {}, "OSHAL_MODEL / --model set without a model provider", "OSHAL_MODEL_PROVIDER"),
    ({"model_base_url": "http://127.0.0.1:1/v1"}, {}, "without a model provider", "--provider"),
    ({"model_provider": "openai", "model": "gpt-4o-mini"}, {}, "$OPENAI_API_KEY", "export OPENAI_API_KEY="),
    ({"model_provider": "openai", "model": "m", "model_api_key_env": "TEAM_KEY",
      "model_base_url": "https://llm.example.com/v1"}, {"OPENAI_API_KEY": "k"}, "$TEAM_KEY", "export TEAM_KEY="),
    ({"model_provider": "openai", "model": "m", "model_api_key_env": "TEAM_KEY"}, {"TEAM_KEY": ""},
     "unset or empty", "TEAM_KEY"),
    ({"model_provider": "anthropic", "model": "claude-3-5-haiku-latest",
      "model_base_url": "http://127.0.0.1:9/"}, {}, "$ANTHROPIC_API_KEY", "export ANTHROPIC_API_KEY="),
    ({"model_provider": "openai", "model": "m", "model_base_url": "http://10.1.2.3:8000/v1"},
     {"OPENAI_API_KEY": "k"}, "plain http to another machine", "https"),
    ({"model_provider": "openai", "model": "m", "model_base_url": "127.0.0.1:11434/v1"}, {},
     "is not an http(s) URL", "--base-url"),
])
def test_misconfiguration_is_refused_saying_what_to_fix(fields: dict[str, Any], environ: dict[str, str],
                                                         says: str, hint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_provider(settings(**fields), environ)
    assert says in caught.value.message
    assert hint in (caught.value.hint or "")


def test_the_provider_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSHAL_MODEL_PROVIDER", "anthropic")
    monkeypatch.setenv("OSHAL_MODEL", "claude-sonnet-4-0")
    monkeypatch.setenv("OSHAL_MODEL_API_KEY_ENV", "CLAUDE_KEY")
    monkeypatch.setenv("CLAUDE_KEY", "sk-ant-x")
    assert resolve_provider(Settings()) == ModelProvider("anthropic", "claude-sonnet-4-0", None, "CLAUDE_KEY")


# -------------------------------------------------------------------------------------------- manifests


@pytest.mark.parametrize(("extra", "says"), [
    ("model_capable: true\n", "model_capable needs output_schema"),
    ("output_schema: {type: array}\n", "must describe a JSON object"),
    ("output_schema: {type: object, properties: {x: {type: 12}}}\n", "not a valid JSON Schema"),
])
def test_a_model_capable_bot_must_state_a_valid_output_shape(tmp_path: Path, extra: str, says: str) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text("name: bot\nintent: echo\n" + extra)
    with pytest.raises(ConfigError) as caught:
        load_manifest(path)
    assert says in caught.value.message


_BAD_META_SCHEMA = "output_schema: {type: object, properties: {x: {type: 12}}}\n"


def test_a_node_host_leaves_the_schema_check_to_the_model_harness_that_uses_it(tmp_path: Path) -> None:
    """A node host loads its fleet with ``check_schemas=False`` (no jsonschema kept for deterministic bots): a schema
    the meta-schema refuses still fails clearly at the node's start, when the model harness is built for it."""
    (tmp_path / "bot.yaml").write_text("name: bot\nintent: echo\nmodel_capable: true\n" + _BAD_META_SCHEMA)
    with pytest.raises(ConfigError, match="not a valid JSON Schema"):
        load_fleet(tmp_path)  # whatever provisions a fleet (`oshal up`, migrate, deploy) refuses it first
    bot = load_fleet(tmp_path, check_schemas=False)["bot"]
    assert build_harness(bot) is not None  # the deterministic harness never reads the schema
    switched = apply_provider({"bot": bot}, ModelProvider("openai", "m", "http://127.0.0.1:9/v1", None))["bot"]
    with pytest.raises(ConfigError) as caught:
        build_harness(switched)
    assert caught.value.message.startswith("the manifest of bot 'bot' is invalid: output_schema is not a valid JSON "
                                           "Schema")
    assert caught.value.hint == "see fleet/README.md for the fields"


@pytest.mark.parametrize(("extra", "says"), [
    ("model_capable: true\n", "model_capable needs output_schema"),
    ("output_schema: {type: array}\n", "must describe a JSON object"),
])
def test_a_node_host_still_refuses_every_other_bad_shape_when_loading(tmp_path: Path, extra: str, says: str) -> None:
    (tmp_path / "bot.yaml").write_text("name: bot\nintent: echo\n" + extra)
    with pytest.raises(ConfigError) as caught:
        load_fleet(tmp_path, check_schemas=False)
    assert says in caught.value.message


@pytest.mark.parametrize("name", sorted(MODEL_CAPABLE))
async def test_the_output_schema_is_honest_the_deterministic_output_meets_it(name: str) -> None:
    harness = DeterministicHarness(FLEET[name])
    outcome = await harness.run(Job("p", 1, SAMPLE_INPUTS[name]))
    schema = FLEET[name].output_schema
    assert schema is not None
    jsonschema.Draft202012Validator(schema).validate(outcome.output)


# ---------------------------------------------------------------------------------- harnesses, switched


def switched(name: str, provider: str, base_url: str, key_env: str | None) -> BotManifest:
    model = "gpt-4o-mini" if provider == "openai" else "claude-3-5-haiku-latest"
    bot = apply_provider(FLEET, ModelProvider(provider, model, base_url, key_env))[name]  # type: ignore[arg-type]
    return bot.model_copy(update={"timeout_s": 5.0, "max_retries": 0})


async def run(manifest: BotManifest, job: Job) -> Any:
    harness = build_harness(manifest)
    try:
        return await harness.run(job)
    finally:
        await harness.aclose()


async def test_a_switched_bot_asks_for_its_schema_with_its_whole_input_and_answers_its_json() -> None:
    answer = '{"label": "incident", "scores": {"incident": 3}}'
    with FakeOpenAI(api_key=None, reply=lambda body: answer) as server:
        bot = switched("triage", "openai", server.base_url, None)
        outcome = await run(bot, Job("ph", 1, {"text": "checkout is down", "channel": "email"}))
        [sent] = server.completions
    assert outcome.output == {"label": "incident", "scores": {"incident": 3}}  # the shape triage's readers read
    assert sent.body["response_format"] == {"type": "json_schema",
                                            "json_schema": {"name": "triage", "schema": FLEET["triage"].output_schema}}
    assert sent.body["messages"] == [{"role": "system", "content": FLEET["triage"].persona},
                                     {"role": "user", "content": '{"channel": "email", "text": "checkout is down"}'}]
    assert "tools" not in sent.body
    [call] = outcome.calls
    assert (call.provider, call.model, call.input_tokens + call.cached_read_tokens, call.output_tokens) == (
        "openai", "gpt-4o-mini", 1200, 42)


@pytest.mark.parametrize(("answer", "says"), [
    ("I think it is an incident.", "without the JSON its output_schema asks for"),
    ('{"label": "urgent"}', "does not meet its output_schema at label"),
    ('{"scores": {}}', "'label' is a required property"),
])
async def test_an_answer_out_of_shape_fails_the_job_and_is_still_billed(answer: str, says: str) -> None:
    with FakeOpenAI(api_key=None, reply=lambda body: answer) as server, pytest.raises(HarnessError) as caught:
        await run(switched("triage", "openai", server.base_url, None), Job("ph", 1, {"text": "down"}))
    assert says in caught.value.message and not caught.value.retryable
    assert [c.output_tokens for c in caught.value.calls] == [42]  # type: ignore[attr-defined]


async def test_anthropic_answers_through_the_one_tool_it_is_made_to_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSHAL_TEST_ANTHROPIC_KEY", "sk-ant-test-0123456789")
    verdict = {"verdict": "revise", "issues": ["no rollback plan"]}
    with FakeAnthropic(api_key="sk-ant-test-0123456789",
                       tool_turns=[[{"name": "reviewer", "arguments": verdict}]]) as server:
        bot = switched("reviewer", "anthropic", server.base_url, "OSHAL_TEST_ANTHROPIC_KEY")
        outcome = await run(bot, Job("ph", 1, {"text": "Ship it."}))
        [sent] = server.messages
    assert outcome.output == verdict
    assert sent.body["tools"] == [{"name": "reviewer", "description": sent.body["tools"][0]["description"],
                                   "input_schema": FLEET["reviewer"].output_schema}]
    assert sent.body["tool_choice"] == {"type": "tool", "name": "reviewer"}
    assert sent.body["system"] == FLEET["reviewer"].persona
    assert sent.body["messages"] == [{"role": "user", "content": '{"text": "Ship it."}'}]
    assert [c.provider for c in outcome.calls] == ["anthropic"]
