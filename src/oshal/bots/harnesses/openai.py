"""Any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server) through the official SDK.

With tools, the gateway's operations are offered as function tools and the harness runs the call/observe
loop: each ``tool_calls`` answer is executed through the job's tool session and sent back as ``tool``
messages until the model answers in text (or ``max_tool_steps`` model calls are spent).
"""

from __future__ import annotations

from typing import Any

from oshal.bots.harnesses.ports import Job, Outcome
from oshal.bots.harnesses.provider import (
    SdkHarness,
    call_usage,
    checked_output,
    import_sdk,
    model_key,
    output_schema,
    parse_json_answer,
    render_prompt,
    render_task,
    sdk_errors,
)
from oshal.bots.harnesses.toolloop import ToolLoop, ToolLoopError
from oshal.bots.manifest import BotManifest
from oshal.errors import HarnessError
from oshal.ledger.usage import openai_chat_usage
from oshal.mesh.envelopes import CallUsage


class OpenAIHarness(SdkHarness):
    def __init__(self, manifest: BotManifest) -> None:
        openai = import_sdk(manifest, "openai")
        # Local servers (Ollama, llama.cpp) need no key; the SDK insists on one, so any placeholder works.
        key = model_key(manifest, manifest.api_key_env) if manifest.api_key_env else "unused"
        super().__init__(manifest, openai, "AsyncOpenAI", key)

    async def _run(self, job: Job) -> Outcome:
        m = self._manifest
        messages: list[Any] = []
        if m.persona:
            messages.append({"role": "system", "content": m.persona})
        shaped = m.output_schema is not None
        messages.append({"role": "user", "content": render_task(job.input) if shaped else render_prompt(job.input)})
        schema = output_schema(m, job.input)
        # A structured answer is one call without tools: a bot with an output schema stays in its box.
        loop = None if schema is not None else await ToolLoop.open(job, m.max_tool_steps)
        if loop is None:
            response = await self._create(messages, None, schema)
            choice = response.choices[0] if response.choices else None
            text = choice.message.content if choice else ""
            calls = (self._usage(job.call_id(0), response),)
            if shaped:
                return Outcome(checked_output(m, m.provider_name, parse_json_answer(text), calls), calls)
            output: dict[str, Any] = {"text": text, "finish_reason": choice.finish_reason if choice else None}
            if schema is not None:
                output["json"] = parse_json_answer(text)
            return Outcome(output, calls)
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
        hint = (f"check the key in ${m.api_key_env}" if m.api_key_env
                else "this endpoint wants a key: set api_key_env in the bot manifest")
        with sdk_errors(self._sdk, m, m.provider_name, hint):
            return await self._client.chat.completions.create(
                model=m.model, messages=messages, max_tokens=m.max_tokens, temperature=m.temperature, **extra,
            )

    def _usage(self, call_id: str, response: Any) -> CallUsage:
        m = self._manifest
        return call_usage(m, m.provider_name, call_id, response.usage, openai_chat_usage)


def _echo(call: Any) -> dict[str, Any]:
    """A requested tool call as it goes back in the assistant message."""
    function = getattr(call, "function", None)
    if function is not None:
        return {"id": call.id, "type": "function",
                "function": {"name": function.name, "arguments": function.arguments}}
    custom = getattr(call, "custom", None)
    return {"id": call.id, "type": "custom",
            "custom": {"name": getattr(custom, "name", ""), "input": getattr(custom, "input", "")}}
