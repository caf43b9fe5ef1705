"""What the SDK-backed harnesses (OpenAI-compatible, Anthropic) share: loading the SDK and the key, the client
and the gated run (:class:`SdkHarness`), shaping the prompt and a structured answer, mapping the SDK's errors,
and reading a response's usage into a ``CallUsage``.

Both official SDKs raise the same exception classes, so one mapping serves both; ``label`` is the name the
messages give the provider.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import jsonschema

from oshal.bots.harnesses.ports import Job, Outcome
from oshal.bots.manifest import BotManifest
from oshal.bots.model_gate import gated_http_client, last_call, model_calls, raise_if_refused
from oshal.errors import ConfigError, HarnessError
from oshal.ledger.usage import UsageCounts
from oshal.mesh.envelopes import CallUsage


def import_sdk(manifest: BotManifest, module: str) -> Any:
    """Import an optional provider SDK, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(f"bot {manifest.name!r} uses the {manifest.harness} harness but the SDK is not installed",
                          hint=f"pip install 'oshal[{manifest.harness}]'") from e


def model_key(manifest: BotManifest, env: str) -> str:
    """The model key from the environment variable ``env``; a missing one is a configuration error."""
    key = os.environ.get(env)
    if not key:
        raise ConfigError(f"bot {manifest.name!r} needs a model key in ${env}, which is unset",
                          hint=f"export {env}=... before starting the node")
    return key


class SdkHarness:
    """The frame of an SDK-backed harness: the SDK's async client, with its HTTP calls going through the control
    plane's model gate, and each job run as one gated unit. An adapter implements ``_run``."""

    def __init__(self, manifest: BotManifest, sdk: Any, client_class: str, key: str) -> None:
        self._manifest = manifest
        self._sdk = sdk
        self._client = getattr(sdk, client_class)(
            api_key=key, base_url=manifest.base_url, timeout=manifest.timeout_s, max_retries=manifest.max_retries,
            http_client=gated_http_client(sdk, manifest.timeout_s),
        )

    async def run(self, job: Job) -> Outcome:
        m = self._manifest
        with model_calls(job.tools, m.provider_name, m.model, m.max_tokens):
            return await self._run(job)

    async def _run(self, job: Job) -> Outcome:
        raise NotImplementedError

    async def aclose(self) -> None:
        await self._client.close()


def render_prompt(value: Any) -> str:
    if isinstance(value, dict):
        for key in ("prompt", "text", "message", "question"):
            if isinstance(value.get(key), str):
                return str(value[key])
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def structured_output(value: Any) -> tuple[str, dict[str, Any]] | None:
    """(name, JSON Schema) when the job asks for a structured answer: input.response_schema (+ response_name)."""
    if isinstance(value, dict) and isinstance(value.get("response_schema"), dict):
        name = value.get("response_name")
        return (name if isinstance(name, str) and name else "answer"), value["response_schema"]
    return None


def render_task(value: Any) -> str:
    """The whole job input as the prompt of a bot with an output schema: a string as is, an object as JSON (so its
    evidence, feedback and every other field reach the model, not only its text)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def output_schema(manifest: BotManifest, value: Any) -> tuple[str, dict[str, Any]] | None:
    """The structured answer this job needs: the bot's own ``output_schema`` first, else what the input asks for."""
    if manifest.output_schema is not None:
        return manifest.name, manifest.output_schema
    return structured_output(value)


class UnusableAnswer(HarnessError):
    """The model answered, but not in the shape the bot's consumers read; ``calls`` are billed all the same."""

    def __init__(self, message: str, *, calls: tuple[CallUsage, ...], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.calls = calls


def checked_output(manifest: BotManifest, label: str, answer: Any, calls: tuple[CallUsage, ...]) -> Any:
    """The answer's JSON as the bot's output, when it meets the bot's ``output_schema``; else ``UnusableAnswer``."""
    assert manifest.output_schema is not None
    hint = "a model this small may not follow JSON schemas; try a larger one"
    if answer is None:
        raise UnusableAnswer(f"{label} answered bot {manifest.name!r} without the JSON its output_schema asks for",
                             calls=calls, hint=hint)
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(manifest.output_schema)
                                             .iter_errors(answer))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        raise UnusableAnswer(f"{label} answered bot {manifest.name!r} with JSON that does not meet its "
                             f"output_schema at {where}: {error.message}", calls=calls, hint=hint)
    return answer


def parse_json_answer(text: str | None) -> Any:
    """The JSON a structured answer holds (None when it holds none), tolerating a fenced code block."""
    body = (text or "").strip()
    if body.startswith("```"):
        body = body.strip("`").removeprefix("json").strip()
    try:
        return json.loads(body)
    except ValueError:
        return None


@contextmanager
def sdk_errors(sdk: Any, manifest: BotManifest, label: str, auth_hint: str) -> Iterator[None]:
    """Turn the SDK's errors from one model call into ``HarnessError``: retryable once the SDK's own retries
    are spent on a transient failure; a refusal by the control plane's model gate is raised as that refusal."""
    try:
        yield
    except sdk.AuthenticationError as e:
        raise HarnessError(f"{label} rejected the credentials for bot {manifest.name!r} (HTTP 401)",
                           hint=auth_hint) from e
    except (sdk.APITimeoutError, sdk.APIConnectionError, sdk.RateLimitError, sdk.InternalServerError) as e:
        raise HarnessError(f"{label} call failed after {manifest.max_retries} retries: {type(e).__name__}",
                           retryable=True) from e
    except sdk.APIStatusError as e:
        raise_if_refused()  # the control plane refused it (budget, kill switch, replay), not the provider
        raise HarnessError(f"{label} refused the request (HTTP {e.status_code})") from e


def call_usage(manifest: BotManifest, label: str, call_id: str, usage: Any,
               read: Callable[[Any], UsageCounts]) -> CallUsage:
    """One model call's usage, read from the response by ``read``. It records the configured model, which is
    what prices are keyed by: the APIs answer an alias ("gpt-4o-mini", "claude-3-5-haiku-latest") with a dated
    snapshot that no price row names."""
    try:
        counts = read(usage)
    except ValueError as e:
        raise HarnessError(f"{label} answered bot {manifest.name!r} with impossible usage: {e}") from e
    reservation, replayed = last_call()
    return CallUsage(
        call_id, manifest.provider_name, manifest.model,
        input_tokens=counts.input_tokens, output_tokens=counts.output_tokens,
        cached_read_tokens=counts.cached_read_tokens, reasoning_tokens=counts.reasoning_tokens,
        cache_write_tokens=counts.cache_write_tokens, cache_write_1h_tokens=counts.cache_write_1h_tokens,
        reservation=reservation, replayed=replayed,
    )
