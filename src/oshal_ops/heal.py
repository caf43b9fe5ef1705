"""Heal: a proposed remedy run through the executor (allowlist, rate budgets, precondition, act, verify, roll
back), its result kept as JSON for the incident's report."""

from __future__ import annotations

from collections import Counter
from typing import Any

from oshal_ops.api import PlatformAPI
from oshal_ops.config import OpsConfig
from oshal_ops.executor import ActionResult, Executor
from oshal_ops.model import Remedy
from oshal_ops.service import Heal


def result_json(result: ActionResult) -> dict[str, Any]:
    return {"action": result.action, "target": result.target,
            "applied_at": result.applied_at.isoformat() if result.applied_at else None, "verified": result.verified,
            "detail": result.detail, "rolled_back": result.rolled_back, "refused_reason": result.refused_reason,
            "run": result.run}


def executor_for(api: PlatformAPI, config: OpsConfig) -> Heal:
    """The service's heal step: each remedy executed once more for its incident (counted per incident here, per
    hour by the executor from the platform's audit log)."""
    executor = Executor(api)
    taken: Counter[tuple[str, str]] = Counter()

    async def heal(remedy: Remedy, incident: str) -> dict[str, Any]:
        result = await executor.execute(remedy.action, remedy.target, remedy.params, incident=incident,
                                        taken_in_incident=taken[(incident, remedy.action)])
        if result.applied_at is not None:
            taken[(incident, remedy.action)] += 1
        return result_json(result)

    return heal
