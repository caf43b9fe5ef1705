"""The factory that picks a harness adapter by manifest; adapters (and their SDKs) are imported only when picked."""

from __future__ import annotations

from oshal.bots.harnesses.ports import Harness
from oshal.bots.manifest import BotManifest, check_output_schema
from oshal.errors import ConfigError


def build_harness(manifest: BotManifest) -> Harness:
    if manifest.harness == "deterministic":
        from oshal.bots.harnesses.deterministic import DeterministicHarness

        return DeterministicHarness(manifest)
    if manifest.output_schema is not None:  # a node host loads its fleet leaving this check to here (see load_fleet)
        try:
            check_output_schema(manifest.output_schema)
        except ValueError as e:
            raise ConfigError(f"the manifest of bot {manifest.name!r} is invalid: {e}",
                              hint="see fleet/README.md for the fields") from e
    if manifest.harness == "openai":
        from oshal.bots.harnesses.openai import OpenAIHarness

        return OpenAIHarness(manifest)
    from oshal.bots.harnesses.anthropic import AnthropicHarness

    return AnthropicHarness(manifest)
