"""Execution: bot manifests, harnesses, the per-bot worker and the node host."""

from oshal.bots.manifest import BotManifest, load_fleet, load_manifest

__all__ = ["BotManifest", "load_fleet", "load_manifest"]
