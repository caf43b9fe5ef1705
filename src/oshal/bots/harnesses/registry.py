"""The factory that picks a harness adapter by manifest; adapters (and their SDKs) are imported only when picked."""

from __future__ import annotations

from oshal.bots.harnesses.ports import Harness
from oshal.bots.manifest import BotManifest


def build_harness(manifest: BotManifest) -> Harness:
    if manifest.harness == "deterministic":
        from oshal.bots.harnesses.deterministic import DeterministicHarness

        return DeterministicHarness(manifest)
    if manifest.harness == "openai":
        from oshal.bots.harnesses.openai import OpenAIHarness

        return OpenAIHarness(manifest)
    from oshal.bots.harnesses.anthropic import AnthropicHarness

    return AnthropicHarness(manifest)
