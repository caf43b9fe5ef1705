"""The harness port and the factory that picks an adapter by manifest, importing SDKs lazily."""

from __future__ import annotations

import importlib
import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from oshal.bots.manifest import BotManifest
from oshal.errors import ConfigError, OshalError
from oshal.mesh.envelopes import CallUsage

if TYPE_CHECKING:
    from oshal.bots.tools import ToolSession

_TOKEN = re.compile(r"\w+|[^\w\s]")


class HarnessError(OshalError):
    """A job failed inside the harness. ``retryable`` says whether provider retries were exhausted."""

    code = "harness"

    def __init__(self, message: str, *, retryable: bool = False, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class Job:
    phase_id: str
    attempt: int
    input: Any
    tools: ToolSession | None = None  # present when the node can reach the tool gateway
    delivery: int = 1  # how many times this envelope was delivered (a reclaim after a replica died adds one)

    def call_id(self, n: int) -> str:
        # One id per execution: a re-run (another attempt, or a reclaimed delivery) made its calls again and
        # is billed for them; a result delivered twice to the collector still carries the same ids.
        if self.delivery <= 1:
            return f"{self.phase_id}:{self.attempt}:{n}"
        return f"{self.phase_id}:{self.attempt}.{self.delivery}:{n}"


@dataclass(frozen=True, slots=True)
class Outcome:
    output: Any
    calls: tuple[CallUsage, ...]


class Harness(Protocol):
    async def run(self, job: Job) -> Outcome: ...

    async def aclose(self) -> None: ...


def count_tokens(text: str) -> int:
    """The deterministic harness's tokenizer: words and punctuation marks, counted exactly."""
    return len(_TOKEN.findall(text))


def structured_output(value: Any) -> tuple[str, dict[str, Any]] | None:
    """(name, JSON Schema) when the job asks for a structured answer: input.response_schema (+ response_name)."""
    if isinstance(value, dict) and isinstance(value.get("response_schema"), dict):
        name = value.get("response_name")
        return (name if isinstance(name, str) and name else "answer"), value["response_schema"]
    return None


def parse_json_answer(text: str | None) -> Any:
    """The JSON a structured answer holds (None when it holds none), tolerating a fenced code block."""
    body = (text or "").strip()
    if body.startswith("```"):
        body = body.strip("`").removeprefix("json").strip()
    try:
        return json.loads(body)
    except ValueError:
        return None


def render_prompt(value: Any) -> str:
    if isinstance(value, dict):
        for key in ("prompt", "text", "message", "question"):
            if isinstance(value.get(key), str):
                return str(value[key])
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def model_key(manifest: BotManifest, env: str) -> str:
    """The model key from the environment variable ``env``; a missing one is a configuration error."""
    key = os.environ.get(env)
    if not key:
        raise ConfigError(f"bot {manifest.name!r} needs a model key in ${env}, which is unset",
                          hint=f"export {env}=... before starting the node")
    return key


def import_sdk(manifest: BotManifest, module: str) -> Any:
    """Import an optional provider SDK, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(f"bot {manifest.name!r} uses the {manifest.harness} harness but the SDK is not installed",
                          hint=f"pip install 'oshal[{manifest.harness}]'") from e


def build_harness(manifest: BotManifest) -> Harness:
    if manifest.harness == "deterministic":
        from oshal.bots.harnesses.deterministic import DeterministicHarness

        return DeterministicHarness(manifest)
    if manifest.harness == "openai":
        from oshal.bots.harnesses.openai import OpenAIHarness

        return OpenAIHarness(manifest)
    from oshal.bots.harnesses.anthropic import AnthropicHarness

    return AnthropicHarness(manifest)
