"""The fleet's model provider, chosen by configuration: which provider, model, endpoint and key the model-capable bots
run on (``OSHAL_MODEL_PROVIDER``, ``OSHAL_MODEL``, ``OSHAL_MODEL_BASE_URL``, ``OSHAL_MODEL_API_KEY_ENV``, or the
matching ``oshal up`` options).

With none configured every bot keeps its own manifest (the deterministic harness offline). With one, each bot whose
manifest says ``model_capable: true`` is switched to it, keeping its persona, limits and output schema; every other
bot stays as it is. The configuration is checked before anything starts, and a key that is named but missing fails
the start (only a local OpenAI-compatible server on loopback may run without one).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from oshal.bots.manifest import BotManifest
from oshal.errors import ConfigError
from oshal.logs import get_logger
from oshal.settings_fields import SettingsFields

log = get_logger(__name__)

ProviderName = Literal["openai", "anthropic"]
DEFAULT_KEY_ENV: dict[str, str] = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


@dataclass(frozen=True, slots=True)
class ModelProvider:
    provider: ProviderName
    model: str
    base_url: str | None
    api_key_env: str | None  # None: a keyless local server

    def describe(self) -> str:
        where = f" at {self.base_url}" if self.base_url else ""
        key = f", key in ${self.api_key_env}" if self.api_key_env else ", no key"
        return f"{self.provider} {self.model}{where}{key}"


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_base_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"model base URL {url!r} is not an http(s) URL",
                          hint="e.g. --base-url http://127.0.0.1:11434/v1 (Ollama) or https://api.openai.com/v1")
    if parts.scheme == "http" and not is_loopback(url):
        raise ConfigError(f"model base URL {url!r} is plain http to another machine: the model key and the prompts "
                          "would cross the network unencrypted", hint="use https, or a server on loopback")


def resolve_provider(settings: SettingsFields, environ: Mapping[str, str] | None = None) -> ModelProvider | None:
    """The configured provider, checked; ``None`` when none is configured. Raises ``ConfigError`` saying what to fix."""
    env = os.environ if environ is None else environ
    provider = settings.model_provider
    if provider is None:
        stray = [name for name, value in (("OSHAL_MODEL / --model", settings.model),
                                          ("OSHAL_MODEL_BASE_URL / --base-url", settings.model_base_url),
                                          ("OSHAL_MODEL_API_KEY_ENV / --api-key-env", settings.model_api_key_env))
                 if value]
        if stray:
            raise ConfigError(f"{', '.join(stray)} set without a model provider",
                              hint="add OSHAL_MODEL_PROVIDER (or --provider) openai or anthropic, or unset them")
        return None
    if not settings.model or not settings.model.strip():
        raise ConfigError(f"model provider {provider!r} is set but no model",
                          hint="set OSHAL_MODEL (or --model), e.g. gpt-4o-mini, llama3.1 or claude-3-5-haiku-latest")
    base_url = settings.model_base_url or None
    if base_url is not None:
        _check_base_url(base_url)
    key_env = settings.model_api_key_env or DEFAULT_KEY_ENV[provider]
    keyless_ok = provider == "openai" and base_url is not None and is_loopback(base_url)
    if not env.get(key_env):
        if not keyless_ok:
            named = "named by OSHAL_MODEL_API_KEY_ENV" if settings.model_api_key_env else "the default for " + provider
            raise ConfigError(f"the model key variable ${key_env} ({named}) is unset or empty, so the {provider} "
                              "provider cannot be used",
                              hint=f"export {key_env}=<your key> before `oshal up`, or name another variable with "
                                   "--api-key-env")
        if settings.model_api_key_env:
            log.warning("model key variable unset; the local server on loopback is used without a key",
                        variable=key_env, base_url=base_url)
        key_env = ""
    return ModelProvider(provider, settings.model.strip(), base_url, key_env or None)


def switch_bot(manifest: BotManifest, provider: ModelProvider) -> BotManifest:
    """``manifest`` running on ``provider`` (persona, limits and output schema kept); unchanged unless model-capable."""
    if not manifest.model_capable:
        return manifest
    return manifest.model_copy(update={
        "harness": provider.provider, "provider": provider.provider, "model": provider.model,
        "base_url": provider.base_url, "api_key_env": provider.api_key_env, "latency_ms": 0,
    })


def apply_provider(fleet: dict[str, BotManifest], provider: ModelProvider | None) -> dict[str, BotManifest]:
    if provider is None:
        return fleet
    return {name: switch_bot(manifest, provider) for name, manifest in fleet.items()}
