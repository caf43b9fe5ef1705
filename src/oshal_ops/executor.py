"""Runs one allowlisted action for an incident: rate budgets, precondition, apply, verify — and rollback when the
verification does not hold.

The per-incident count is the caller's (it keeps the incident); the hourly count is read from the platform's audit
log, the durable record of what this key did, so a restarted loop cannot forget what it already did. Anything the
executor cannot establish — who its key is, how often the action ran, whether its precondition holds — refuses the
action (fail closed).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from oshal_ops.actions import ACTIONS, Action, Check, Identity, RateBudget, Step, tag_of
from oshal_ops.api import PlatformAPI, PlatformError
from oshal_ops.audit_window import entries_since

HOUR = timedelta(hours=1)
_INCIDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")


@dataclass(frozen=True, slots=True)
class ActionResult:
    action: str
    target: str
    applied_at: datetime | None  # None: nothing was done (refused, or the platform refused the change)
    verified: bool
    detail: str
    rolled_back: bool
    refused_reason: str | None = None
    run: str = ""  # the run id the audit entries of this application carry in their reason

    @property
    def refused(self) -> bool:
        return self.refused_reason is not None


class Executor:
    """``budgets`` overrides actions' own rate budgets by name; ``verify_timeout_s`` bounds the wait for an
    action's effect to show."""

    def __init__(self, api: PlatformAPI, *, budgets: Mapping[str, RateBudget] | None = None,
                 verify_timeout_s: float = 30.0, poll_s: float = 0.25) -> None:
        unknown = set(budgets or {}) - set(ACTIONS)
        if unknown:
            raise ValueError(f"rate budgets for unknown action(s) {', '.join(sorted(unknown))}; "
                             f"the actions are {', '.join(ACTIONS)}")
        self.api = api
        self.budgets = dict(budgets or {})
        self.verify_timeout_s = verify_timeout_s
        self.poll_s = poll_s
        self._identity: Identity | None = None

    def budget(self, name: str) -> RateBudget:
        return self.budgets.get(name) or ACTIONS[name].budget

    async def identity(self) -> Identity:
        if self._identity is None:
            me = await self.api.get("/v1/whoami")
            self._identity = Identity(actor=f"key:{me['key_id']}", tenant=str(me["tenant"]), role=str(me["role"]))
        return self._identity

    async def applied_last_hour(self, name: str) -> int:
        """How many times this key applied ``name`` in the last hour, by the platform's audit log."""
        action = ACTIONS[name]
        me = await self.identity()
        runs = {run for entry in await entries_since(self.api, datetime.now(UTC) - HOUR)
                if entry["actor"] == me.actor and entry["action"] == action.audit_action
                and (run := action.application(entry)) is not None}
        return len(runs)

    async def execute(self, name: str, target: str, params: Mapping[str, Any] | None = None, *, incident: str,
                      taken_in_incident: int = 0) -> ActionResult:
        """Run ``name`` on ``target`` for ``incident``, whose caller has applied it ``taken_in_incident`` times."""
        params = dict(params or {})
        action = ACTIONS.get(name)
        if action is None:
            return _refused(name, target, f"{name!r} is not an allowed action; the allowlist is "
                                          f"{', '.join(ACTIONS)}")
        if not _INCIDENT.match(incident):
            return _refused(name, target, f"{incident!r} is not an incident id (letters, digits, '.', '_', ':', "
                                          "'-'; up to 100)")
        problem = action.problem(target, params)
        if problem:
            return _refused(name, target, problem)
        budget = self.budget(name)
        if taken_in_incident >= budget.per_incident:
            return _refused(name, target, f"rate budget: {name} was applied {taken_in_incident} time(s) in incident "
                                          f"{incident} (at most {budget.per_incident} per incident)")
        try:
            identity = await self.identity()
        except PlatformError as e:
            return _refused(name, target, f"cannot tell who this key is (GET /v1/whoami), so {name} does not run: {e}")
        try:
            hourly = await self.applied_last_hour(name)
        except PlatformError as e:
            return _refused(name, target, f"cannot count {name}'s applications in the audit log, so it does not "
                                          f"run: {e}")
        if hourly >= budget.per_hour:
            return _refused(name, target, f"rate budget: {name} was applied {hourly} time(s) in the last hour by "
                                          f"this key (at most {budget.per_hour} per hour), by the audit log")
        run = secrets.token_hex(6)
        step = Step(self.api, identity, target, params, tag_of(name, incident, run))
        try:
            before = await action.precondition(step)
        except PlatformError as e:
            before = Check(False, f"could not check the precondition: {e}")
        if not before.ok:
            return _refused(name, target, f"precondition: {before.detail}", run)
        return await self._apply(action, step, run)

    async def _apply(self, action: Action, step: Step, run: str) -> ActionResult:
        applied_at = datetime.now(UTC)
        try:
            done = await action.apply(step)
        except PlatformError as e:  # nothing changed: a rollback now could undo someone else's change
            return ActionResult(action.name, step.target, None, False, f"the platform refused it: {e}", False,
                                None, run)
        after = await self._verified(action, step)
        if after.ok:
            return ActionResult(action.name, step.target, applied_at, True, f"{done}; verified: {after.detail}",
                                False, None, run)
        failed = f"{done}; not verified within {self.verify_timeout_s:g}s: {after.detail}"
        try:
            undone = await action.rollback(step)
        except PlatformError as e:
            return ActionResult(action.name, step.target, applied_at, False, f"{failed}; the rollback failed: {e}",
                                False, None, run)
        if undone is None:
            return ActionResult(action.name, step.target, applied_at, False,
                                f"{failed}; no rollback: {action.rollback_plan}", False, None, run)
        return ActionResult(action.name, step.target, applied_at, False, f"{failed}; rolled back: {undone}", True,
                            None, run)

    async def _verified(self, action: Action, step: Step) -> Check:
        """Look until the effect holds or the wait is over; the last look is the verdict."""
        deadline = time.monotonic() + self.verify_timeout_s
        while True:
            try:
                seen = await action.verify(step)
            except PlatformError as e:
                seen = Check(False, f"could not look: {e}")
            if seen.ok or time.monotonic() >= deadline:
                return seen
            await asyncio.sleep(self.poll_s)


def _refused(name: str, target: str, reason: str, run: str = "") -> ActionResult:
    return ActionResult(name, target, None, False, reason, False, reason, run)
