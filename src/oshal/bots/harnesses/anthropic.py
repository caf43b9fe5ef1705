"""Anthropic's Messages API through the official SDK.

With tools, the gateway's operations are offered as client tools and the harness runs the call/observe
loop: each answer with ``tool_use`` blocks is executed through the job's tool session and sent back as a
user message of ``tool_result`` blocks until the model answers without tools (or ``max_tool_steps`` model
calls are spent).
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
    render_prompt,
    render_task,
    sdk_errors,
)
from oshal.bots.harnesses.toolloop import ToolLoop, ToolLoopError
from oshal.bots.manifest import BotManifest
from oshal.errors import HarnessError
from oshal.ledger.usage import anthropic_usage
from oshal.mesh.envelopes import CallUsage


class AnthropicHarness(SdkHarness):
    def __init__(self, manifest: BotManifest) -> None:
        self._env = manifest.api_key_env or "ANTHROPIC_API_KEY"
        super().__init__(manifest, import_sdk(manifest, "anthropic"), "AsyncAnthropic", model_key(manifest, self._env))

    async def _run(self, job: Job) -> Outcome:
        if self._manifest.output_schema is not None:
            return await self._shaped(job)
        messages: list[Any] = [{"role": "user", "content": render_prompt(job.input)}]
        loop = await ToolLoop.open(job, self._manifest.max_tool_steps)
        if loop is None:
            response = await self._create(messages, None)
            text = "".join(getattr(block, "text", "") for block in response.content)
            return Outcome({"text": text, "stop_reason": response.stop_reason},
                           (self._usage(job.call_id(0), response),))
        return await self._loop(loop, messages)

    async def _shaped(self, job: Job) -> Outcome:
        """A structured answer, the way Anthropic's API gives one: a single tool whose input schema is the bot's
        output schema, which the model is made to call; its input is the answer. No other tool is offered."""
        m = self._manifest
        assert m.output_schema is not None
        tool = {"name": m.name, "description": f"Give your answer: the output of {m.name}, as this schema says.",
                "input_schema": m.output_schema}
        messages: list[Any] = [{"role": "user", "content": render_task(job.input)}]
        response = await self._create(messages, [tool], {"type": "tool", "name": m.name})
        calls = (self._usage(job.call_id(0), response),)
        answers = [block.input for block in response.content
                   if getattr(block, "type", None) == "tool_use" and block.name == m.name]
        return Outcome(checked_output(m, "anthropic", answers[0] if answers else None, calls), calls)

    async def _loop(self, loop: ToolLoop, messages: list[Any]) -> Outcome:
        tools = [{"name": spec.name, "description": spec.description, "input_schema": spec.parameters}
                 for spec in loop.specs]
        try:
            while True:
                response = await self._create(messages, tools)
                loop.add_usage(self._usage(loop.next_call_id(), response))
                requested = [block for block in response.content if getattr(block, "type", None) == "tool_use"]
                if not requested:
                    text = "".join(getattr(block, "text", "") for block in response.content)
                    return Outcome(loop.output(text, "stop_reason", response.stop_reason), tuple(loop.calls))
                loop.check_steps()
                messages.append({"role": "assistant", "content": [_echo(block) for block in response.content]})
                results: list[dict[str, Any]] = []
                for block in requested:
                    reply = await loop.run(block.name, block.input)
                    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": block.id,
                                              "content": reply.content}
                    if reply.is_error:
                        result["is_error"] = True
                    results.append(result)
                messages.append({"role": "user", "content": results})
        except ToolLoopError:
            raise
        except HarnessError as e:
            raise loop.failure(e) from e

    async def _create(self, messages: list[Any], tools: list[dict[str, Any]] | None,
                      tool_choice: dict[str, Any] | None = None) -> Any:
        m = self._manifest
        # SDK 1.x dropped the `temperature` keyword (newer models reject non-default values), so it goes
        # on the wire through extra_body, and only when the manifest sets it.
        sampling = {"temperature": m.temperature} if "temperature" in m.model_fields_set else None
        with sdk_errors(self._sdk, m, "anthropic", f"check the key in ${self._env}"):
            return await self._client.messages.create(
                model=m.model, max_tokens=m.max_tokens,
                system=m.persona or self._sdk.omit,
                messages=messages,
                tools=tools or self._sdk.omit,
                tool_choice=tool_choice or self._sdk.omit,
                extra_body=sampling,
            )

    def _usage(self, call_id: str, response: Any) -> CallUsage:
        return call_usage(self._manifest, "anthropic", call_id, response.usage, anthropic_usage)


def _echo(block: Any) -> dict[str, Any]:
    """A response content block as it goes back in the assistant turn."""
    kind = getattr(block, "type", None)
    if kind == "text":
        return {"type": "text", "text": block.text}
    if kind == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    dumped: dict[str, Any] = block.model_dump(mode="json", exclude_none=True)  # thinking etc., verbatim
    return dumped
