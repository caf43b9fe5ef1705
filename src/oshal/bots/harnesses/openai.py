"""Any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server) through the official SDK.

With tools, the gateway's operations are offered as function tools and the harness runs the call/observe
loop: each ``tool_calls`` answer is executed through the job's tool session and sent back as ``tool``
messages until the model answers in text (or ``max_tool_steps`` model calls are spent).
"""

from __future__ import annotations

from typing import Any

from oshal.bots.harnesses.base import (
    HarnessError,
    Job,
    Outcome,
    import_sdk,
    model_key,
    parse_json_answer,
    render_prompt,
    structured_output,
)
from oshal.bots.harnesses.toolloop import ToolLoop, ToolLoopError
from oshal.bots.manifest import BotManifest
from oshal.bots.model_gate import gated_http_client, last_call, model_calls, raise_if_refused
from oshal.ledger.usage import openai_chat_usage
from oshal.mesh.envelopes import CallUsage


class OpenAIHarness:
    def __init__(self, manifest: BotManifest) -> None:
        openai = import_sdk(manifest, "openai")
        # Local servers (Ollama, llama.cpp) need no key; the SDK insists on one, so any placeholder works.
        key = model_key(manifest, manifest.api_key_env) if manifest.api_key_env else "unused"
        self._openai = openai
        self._manifest = manifest
        self._client = openai.AsyncOpenAI(
            api_key=key, base_url=manifest.base_url,
            timeout=manifest.timeout_s, max_retries=manifest.max_retries,
            http_client=gated_http_client(openai, manifest.timeout_s),
        )

    async def run(self, job: Job) -> Outcome:
        m = self._manifest
        with model_calls(job.tools, m.provider_name, m.model, m.max_tokens):
            return await self._run(job)

    async def _run(self, job: Job) -> Outcome:
        m = self._manifest
        messages: list[Any] = []
        if m.persona:
            messages.append({"role": "system", "content": m.persona})
        messages.append({"role": "user", "content": render_prompt(job.input)})
        schema = structured_output(job.input)
        loop = None if schema is not None else await ToolLoop.open(job, m.max_tool_steps)
        if loop is None:
            response = await self._create(messages, None, schema)
            choice = response.choices[0] if response.choices else None
            text = choice.message.content if choice else ""
            output: dict[str, Any] = {"text": text, "finish_reason": choice.finish_reason if choice else None}
            if schema is not None:
                output["json"] = parse_json_answer(text)
            return Outcome(output, (self._usage(job.call_id(0), response),))
        return await self._loop(loop, messages)

    async def _loop(self, loop: ToolLoop, messages: list[Any]) -> Outcome:
        tools = [{"type": "function", "function": {"name": spec.name, "description": spec.description,
                                                   "parameters": spec.parameters}} for spec in loop.specs]
        try:
            while True:
                response = await self._create(messages, tools, None)
                loop.add_usage(self._usage(loop.next_call_id(), response))
                choice = response.choices[0] if response.choices else None
                requested = list(choice.message.tool_calls or []) if choice else []
                if choice is None or not requested:
                    output = loop.output(choice.message.content if choice else "", "finish_reason",
                                         choice.finish_reason if choice else None)
                    return Outcome(output, tuple(loop.calls))
                loop.check_steps()
                messages.append({"role": "assistant", "content": choice.message.content,
                                 "tool_calls": [_echo(call) for call in requested]})
                for call in requested:
                    function = getattr(call, "function", None)
                    if function is None:  # a custom (free-form) tool call: not something we offered
                        custom = getattr(call, "custom", None)
                        reply = await loop.run(str(getattr(custom, "name", "")), None)
                    else:
                        reply = await loop.run(function.name, function.arguments)
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": reply.content})
        except ToolLoopError:
            raise
        except HarnessError as e:
            raise loop.failure(e) from e

    async def _create(self, messages: list[Any], tools: list[dict[str, Any]] | None,
                      schema: tuple[str, dict[str, Any]] | None = None) -> Any:
        m = self._manifest
        extra: dict[str, Any] = {"tools": tools} if tools else {}
        if schema is not None:  # structured output: the answer must be JSON meeting this schema
            name, body = schema
            extra["response_format"] = {"type": "json_schema", "json_schema": {"name": name, "schema": body}}
        try:
            return await self._client.chat.completions.create(
                model=m.model, messages=messages, max_tokens=m.max_tokens, temperature=m.temperature, **extra,
            )
        except self._openai.AuthenticationError as e:
            hint = (f"check the key in ${m.api_key_env}" if m.api_key_env
                    else "this endpoint wants a key: set api_key_env in the bot manifest")
            raise HarnessError(f"{m.provider_name} rejected the credentials for bot {m.name!r} (HTTP 401)",
                               hint=hint) from e
        except (self._openai.APITimeoutError, self._openai.APIConnectionError,
                self._openai.RateLimitError, self._openai.InternalServerError) as e:
            raise HarnessError(f"{m.provider_name} call failed after {m.max_retries} retries: "
                               f"{type(e).__name__}", retryable=True) from e
        except self._openai.APIStatusError as e:
            raise_if_refused()  # the control plane refused it (budget, kill switch, replay), not the provider
            raise HarnessError(f"{m.provider_name} refused the request (HTTP {e.status_code})") from e

    def _usage(self, call_id: str, response: Any) -> CallUsage:
        m = self._manifest
        try:
            counts = openai_chat_usage(response.usage)
        except ValueError as e:
            raise HarnessError(f"{m.provider_name} answered bot {m.name!r} with impossible usage: {e}") from e
        # Record the configured model, which is what prices are keyed by: the API answers an alias
        # ("gpt-4o-mini") with a dated snapshot ("gpt-4o-mini-2024-07-18") that no price row names.
        reservation, replayed = last_call()
        return CallUsage(
            call_id, m.provider_name, m.model,
            input_tokens=counts.input_tokens, output_tokens=counts.output_tokens,
            cached_read_tokens=counts.cached_read_tokens, reasoning_tokens=counts.reasoning_tokens,
            reservation=reservation, replayed=replayed,
        )

    async def aclose(self) -> None:
        await self._client.close()


def _echo(call: Any) -> dict[str, Any]:
    """A requested tool call as it goes back in the assistant message."""
    function = getattr(call, "function", None)
    if function is not None:
        return {"id": call.id, "type": "function",
                "function": {"name": function.name, "arguments": function.arguments}}
    custom = getattr(call, "custom", None)
    return {"id": call.id, "type": "custom",
            "custom": {"name": getattr(custom, "name", ""), "input": getattr(custom, "input", "")}}
