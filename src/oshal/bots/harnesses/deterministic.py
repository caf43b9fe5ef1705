"""The offline harness: runs a built-in intent and reports honest token counts for what it read and wrote."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import re
from typing import Any

from oshal.bots.harnesses.intents import INTENTS, Intent
from oshal.bots.harnesses.media_intents import MEDIA_INTENTS
from oshal.bots.harnesses.pipeline_intents import PIPELINE_INTENTS
from oshal.bots.harnesses.ports import Job, Outcome
from oshal.bots.manifest import BotManifest
from oshal.bots.media import make_storyboard, write_script
from oshal.errors import ConfigError, HarnessError
from oshal.mesh.envelopes import CallUsage

PURE_INTENTS: dict[str, Intent] = {**INTENTS, **PIPELINE_INTENTS, "script": write_script,
                                   "storyboard": make_storyboard}
KNOWN_INTENTS = sorted({*PURE_INTENTS, *MEDIA_INTENTS})
_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """The deterministic harness's tokenizer: words and punctuation marks, counted exactly."""
    return len(_TOKEN.findall(text))


def import_intent(manifest: BotManifest) -> Intent:
    """An operator's own intent, named ``package.module:function`` (a function of the input), from the node's path.
    An ``async def f(value, tools)`` gets the job's tool session as well, like the media intents (artifacts and
    brokered tool calls through the gateway, never a credential).

    It runs in the node host, with the node host's rights and nothing more (see ``oshal.launcher.node_seal``).
    """
    module_name, _, function = manifest.intent.partition(":")
    try:
        intent = getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"bot {manifest.name!r} names intent {manifest.intent!r}, which cannot be imported: {e}",
                          hint="put its module on the node's PYTHONPATH, or use a built-in intent") from e
    if not callable(intent):
        raise ConfigError(f"bot {manifest.name!r}: intent {manifest.intent!r} is not a function")
    return intent  # type: ignore[no-any-return]


class DeterministicHarness:
    def __init__(self, manifest: BotManifest) -> None:
        own = ":" in manifest.intent
        if not own and manifest.intent not in KNOWN_INTENTS:
            raise ConfigError(f"bot {manifest.name!r} names unknown intent {manifest.intent!r}",
                              hint=f"one of: {', '.join(KNOWN_INTENTS)}, or package.module:function")
        self._intent = import_intent(manifest) if own else PURE_INTENTS.get(manifest.intent)
        self._media = MEDIA_INTENTS.get(manifest.intent)
        if own and inspect.iscoroutinefunction(self._intent):
            self._media, self._intent = self._intent, None
        self._manifest = manifest
        self._persona_tokens = count_tokens(manifest.persona)

    async def run(self, job: Job) -> Outcome:
        if self._manifest.latency_ms:
            await asyncio.sleep(self._manifest.latency_ms / 1000)
        if isinstance(job.input, dict) and "tool_calls" in job.input:
            return await self._scripted_tools(job)
        try:
            output = await self._run_intent(job)
        except HarnessError:
            raise
        except (TypeError, ValueError, AttributeError) as e:
            raise HarnessError(f"the {self._manifest.intent} intent cannot use this input: {e}") from e
        read = self._persona_tokens + count_tokens(json.dumps(job.input, sort_keys=True))
        written = count_tokens(json.dumps(output, sort_keys=True))
        call = CallUsage(job.call_id(0), self._manifest.provider_name, self._manifest.model, read, written)
        return Outcome(output, (call,))

    async def _run_intent(self, job: Job) -> Any:
        if self._media is not None:
            if job.tools is None:
                raise HarnessError("this node has no gateway configured for artifacts",
                                   hint="start nodes through `oshal up`")
            return await self._media(job.input, job.tools)
        assert self._intent is not None
        return self._intent(job.input)

    async def _scripted_tools(self, job: Job) -> Outcome:
        """Run the tool calls the ticket scripts, in order, so tool use is testable offline."""
        script = job.input["tool_calls"]
        if not isinstance(script, list) or not all(isinstance(step, dict) for step in script):
            raise HarnessError("input.tool_calls must be a list of {connector, operation, arguments}")
        if job.tools is None:
            raise HarnessError("this node has no tool gateway configured", hint="start nodes through `oshal up`")
        results = []
        for step in script:
            connector, operation = step.get("connector"), step.get("operation")
            if not isinstance(connector, str) or not isinstance(operation, str):
                raise HarnessError("each tool call needs a connector and an operation (strings)")
            results.append(await job.tools.call(connector, operation, step.get("arguments") or {}))
        output = {"tool_results": results}
        read = self._persona_tokens + count_tokens(json.dumps(job.input, sort_keys=True))
        written = count_tokens(json.dumps(output, sort_keys=True))
        call = CallUsage(job.call_id(0), self._manifest.provider_name, self._manifest.model, read, written)
        return Outcome(output, (call,))

    async def aclose(self) -> None:
        return None
