"""Harnesses run one job: deterministic (offline, default), OpenAI-compatible and Anthropic."""

from oshal.bots.harnesses.ports import Harness, Job, Outcome
from oshal.bots.harnesses.registry import build_harness
from oshal.errors import HarnessError

__all__ = ["Harness", "HarnessError", "Job", "Outcome", "build_harness"]
