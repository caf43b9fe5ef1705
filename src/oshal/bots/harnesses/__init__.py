"""Harnesses run one job: deterministic (offline, default), OpenAI-compatible and Anthropic."""

from oshal.bots.harnesses.base import Harness, HarnessError, Job, Outcome, build_harness

__all__ = ["Harness", "HarnessError", "Job", "Outcome", "build_harness"]
