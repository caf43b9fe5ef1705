"""Any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server) through the official SDK."""

from __future__ import annotations

from typing import Any

from oshal.bots.harnesses.base import HarnessError, Job, Outcome, import_sdk, model_key, render_prompt
from oshal.bots.manifest import BotManifest
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
        )

    async def run(self, job: Job) -> Outcome:
        m = self._manifest
        messages: list[Any] = []
        if m.persona:
            messages.append({"role": "system", "content": m.persona})
        messages.append({"role": "user", "content": render_prompt(job.input)})
        try:
            response = await self._client.chat.completions.create(
                model=m.model, messages=messages, max_tokens=m.max_tokens, temperature=m.temperature,
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
            raise HarnessError(f"{m.provider_name} refused the request (HTTP {e.status_code})") from e
        choice = response.choices[0] if response.choices else None
        usage = response.usage
        prompt = usage.prompt_tokens if usage else 0
        details = getattr(usage, "prompt_tokens_details", None)
        cached = int(getattr(details, "cached_tokens", 0) or 0)
        # Record the configured model, which is what prices are keyed by: the API answers an alias
        # ("gpt-4o-mini") with a dated snapshot ("gpt-4o-mini-2024-07-18") that no price row names.
        call = CallUsage(
            job.call_id(0), m.provider_name, m.model,
            input_tokens=prompt - cached, output_tokens=usage.completion_tokens if usage else 0,
            cached_read_tokens=cached,
        )
        output = {"text": choice.message.content if choice else "",
                  "finish_reason": choice.finish_reason if choice else None}
        return Outcome(output, (call,))

    async def aclose(self) -> None:
        await self._client.close()
