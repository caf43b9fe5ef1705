"""Anthropic's Messages API through the official SDK.

With tools, the gateway's operations are offered as client tools and the harness runs the call/observe
loop: each answer with ``tool_use`` blocks is executed through the job's tool session and sent back as a
user message of ``tool_result`` blocks until the model answers without tools (or ``max_tool_steps`` model
calls are spent).
"""

from __future__ import annotations

from typing import Any

from oshal.bots.harnesses.base import HarnessError, Job, Outcome, import_sdk, model_key, render_prompt
from oshal.bots.harnesses.toolloop import ToolLoop, ToolLoopError
from oshal.bots.manifest import BotManifest
from oshal.bots.model_gate import gated_http_client, last_call, model_calls, raise_if_refused
from oshal.ledger.usage import anthropic_usage
from oshal.mesh.envelopes import CallUsage


class AnthropicHarness:
    def __init__(self, manifest: BotManifest) -> None:
        anthropic = import_sdk(manifest, "anthropic")
        env = manifest.api_key_env or "ANTHROPIC_API_KEY"
        key = model_key(manifest, env)
        self._anthropic = anthropic
        self._manifest = manifest
        self._env = env
        self._client = anthropic.AsyncAnthropic(
            api_key=key, base_url=manifest.base_url, timeout=manifest.timeout_s,
            max_retries=manifest.max_retries,
            http_client=gated_http_client(anthropic, manifest.timeout_s),
        )

    async def run(self, job: Job) -> Outcome:
        m = self._manifest
        with model_calls(job.tools, m.provider_name, m.model, m.max_tokens):
            return await self._run(job)

    async def _run(self, job: Job) -> Outcome:
        messages: list[Any] = [{"role": "user", "content": render_prompt(job.input)}]
        loop = await ToolLoop.open(job, self._manifest.max_tool_steps)
        if loop is None:
            response = await self._create(messages, None)
            text = "".join(getattr(block, "text", "") for block in response.content)
            return Outcome({"text": text, "stop_reason": response.stop_reason},
                           (self._usage(job.call_id(0), response),))
        return await self._loop(loop, messages)

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

    async def _create(self, messages: list[Any], tools: list[dict[str, Any]] | None) -> Any:
        m = self._manifest
        # SDK 1.x dropped the `temperature` keyword (newer models reject non-default values), so it goes
        # on the wire through extra_body, and only when the manifest sets it.
        sampling = {"temperature": m.temperature} if "temperature" in m.model_fields_set else None
        try:
            return await self._client.messages.create(
                model=m.model, max_tokens=m.max_tokens,
                system=m.persona or self._anthropic.omit,
                messages=messages,
                tools=tools or self._anthropic.omit,
                extra_body=sampling,
            )
        except self._anthropic.AuthenticationError as e:
            raise HarnessError(f"anthropic rejected the credentials for bot {m.name!r} (HTTP 401)",
                               hint=f"check the key in ${self._env}") from e
        except (self._anthropic.APITimeoutError, self._anthropic.APIConnectionError,
                self._anthropic.RateLimitError, self._anthropic.InternalServerError) as e:
            raise HarnessError(f"anthropic call failed after {m.max_retries} retries: {type(e).__name__}",
                               retryable=True) from e
        except self._anthropic.APIStatusError as e:
            raise_if_refused()  # the control plane refused it (budget, kill switch, replay), not the provider
            raise HarnessError(f"anthropic refused the request (HTTP {e.status_code})") from e

    def _usage(self, call_id: str, response: Any) -> CallUsage:
        m = self._manifest
        try:
            counts = anthropic_usage(response.usage)
        except ValueError as e:
            raise HarnessError(f"anthropic answered bot {m.name!r} with impossible usage: {e}") from e
        # Record the configured model, which is what prices are keyed by: the API answers an alias
        # ("claude-3-5-haiku-latest") with a dated model ("claude-3-5-haiku-20241022").
        reservation, replayed = last_call()
        return CallUsage(
            call_id, m.provider_name, m.model,
            input_tokens=counts.input_tokens, output_tokens=counts.output_tokens,
            cached_read_tokens=counts.cached_read_tokens, cache_write_tokens=counts.cache_write_tokens,
            cache_write_1h_tokens=counts.cache_write_1h_tokens, reservation=reservation, replayed=replayed,
        )

    async def aclose(self) -> None:
        await self._client.close()


def _echo(block: Any) -> dict[str, Any]:
    """A response content block as it goes back in the assistant turn."""
    kind = getattr(block, "type", None)
    if kind == "text":
        return {"type": "text", "text": block.text}
    if kind == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    dumped: dict[str, Any] = block.model_dump(mode="json", exclude_none=True)  # thinking etc., verbatim
    return dumped
