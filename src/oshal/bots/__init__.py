"""Execution: bot manifests, harnesses, the per-bot worker and the node host."""

# First, before any module here imports structlog itself: oshal.logs imports it without Rich (see there).
from oshal import logs  # noqa: F401
from oshal.bots.manifest import BotManifest, load_fleet, load_manifest

__all__ = ["BotManifest", "load_fleet", "load_manifest"]
