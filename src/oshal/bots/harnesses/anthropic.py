"""Anthropic's Messages API through the official SDK."""

from __future__ import annotations

from oshal.bots.harnesses.base import HarnessError, Job, Outcome, import_sdk, model_key, render_prompt
from oshal.bots.manifest import BotManifest
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
        )

    async def run(self, job: Job) -> Outcome:
        m = self._manifest
        # SDK 1.x dropped the `temperature` keyword (newer models reject non-default values), so it goes
        # on the wire through extra_body, and only when the manifest sets it.
        sampling = {"temperature": m.temperature} if "temperature" in m.model_fields_set else None
        try:
            response = await self._client.messages.create(
                model=m.model, max_tokens=m.max_tokens,
                system=m.persona or self._anthropic.omit,
                messages=[{"role": "user", "content": render_prompt(job.input)}],
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
            raise HarnessError(f"anthropic refused the request (HTTP {e.status_code})") from e
        text = "".join(getattr(block, "text", "") for block in response.content)
        usage = response.usage
        # Record the configured model, which is what prices are keyed by: the API answers an alias
        # ("claude-3-5-haiku-latest") with a dated model ("claude-3-5-haiku-20241022").
        call = CallUsage(
            job.call_id(0), m.provider_name, m.model,
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cached_read_tokens=usage.cache_read_input_tokens or 0,
            cache_write_tokens=usage.cache_creation_input_tokens or 0,
        )
        return Outcome({"text": text, "stop_reason": response.stop_reason}, (call,))

    async def aclose(self) -> None:
        await self._client.close()
