"""The heal actions the loop may take: a closed allowlist of typed actions.

Each action declares what it does, what must hold before it runs (checked against the live platform), the effect
it expects and how that is verified afterwards (a look at the live platform, repeated within a bounded wait by the
:class:`~oshal_ops.executor.Executor`), how it is rolled back, its risk and its rate budget (per incident and per
hour). Nothing outside :data:`ACTIONS` can be executed.

Every application stamps the reason the platform records with a tag, ``[oshal-ops <action> incident=<id>
run=<hex>]``, so the platform's audit log — the durable record the hourly budget is counted from — tells the loop's
own actions apart from anything else the same key did. The one exception is releasing a kill switch: the platform
records no reason for it, so every release by the key counts.

Fleet actions (restart, scale) are orders the platform records and whatever runs the nodes carries out; their
verification waits until the order is applied and the bot's replicas are live.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from oshal_ops.api import PlatformAPI, PlatformError
from oshal_ops.model import Remedy

ActionName = Literal["pause_bot", "release_kill_switch", "engage_global_kill_switch", "requeue_dead_letters",
                     "disable_connector", "restart_bot", "scale_lane"]
Risk = Literal["low", "medium", "high"]

GLOBAL = "global"
SYSTEM_TENANT = "system"
_BOT = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_CONNECTOR = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_TAG = re.compile(r"\[oshal-ops (?P<action>[a-z_]+) incident=(?P<incident>\S+) run=(?P<run>[0-9a-f]+)\]")
MAX_REASON = 500  # the platform's limit on a kill switch's reason
MAX_REQUEUE = 100


@dataclass(frozen=True, slots=True)
class RateBudget:
    per_incident: int
    per_hour: int


@dataclass(frozen=True, slots=True)
class Check:
    """A precondition's or a verification's verdict, with what was seen."""

    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the loop's key is, as ``GET /v1/whoami`` says; ``actor`` is how the audit log names it."""

    actor: str
    tenant: str
    role: str

    @property
    def platform_operator(self) -> bool:
        return self.tenant == SYSTEM_TENANT and self.role == "operator"


@dataclass(slots=True)
class Step:
    """One application of an action: its inputs, and what its precondition and apply learned (``memo``) for its
    verification and rollback."""

    api: PlatformAPI
    identity: Identity
    target: str
    params: Mapping[str, Any]
    tag: str
    memo: dict[str, Any] = field(default_factory=dict)

    def reason(self, default: str) -> str:
        """The reason given to the platform: the caller's (or ``default``), then the tag, within the limit."""
        given = str(self.params.get("reason") or default).strip()
        return f"{given[:MAX_REASON - len(self.tag) - 1]} {self.tag}"


def tag_of(action: str, incident: str, run: str) -> str:
    return f"[oshal-ops {action} incident={incident} run={run}]"


def tagged_run(entry: Mapping[str, Any], action: str) -> str | None:
    """The run id of ``action`` an audit entry's recorded reason carries, if it carries one."""
    detail = entry.get("detail")
    reason = detail.get("reason") if isinstance(detail, Mapping) else None
    found = _TAG.search(reason) if isinstance(reason, str) else None
    return found["run"] if found and found["action"] == action else None


class Action(ABC):
    name: ClassVar[ActionName]
    description: ClassVar[str]
    effect: ClassVar[str]
    verification: ClassVar[str]
    rollback_plan: ClassVar[str]
    risk: ClassVar[Risk]
    budget: ClassVar[RateBudget]
    audit_action: ClassVar[str]  # the platform's audit action one application records
    params: ClassVar[frozenset[str]] = frozenset({"reason"})

    def problem(self, target: str, params: Mapping[str, Any]) -> str | None:
        """What is wrong with the inputs (before anything is asked of the platform), or None."""
        unknown = set(params) - self.params
        if unknown:
            return (f"{self.name} takes no parameter(s) {', '.join(sorted(unknown))}"
                    f" (it takes: {', '.join(sorted(self.params)) or 'none'})")
        reason = params.get("reason")
        if reason is not None and not isinstance(reason, str):
            return f"{self.name}: reason must be text"
        return self.target_problem(target)

    def target_problem(self, target: str) -> str | None:
        if not _BOT.match(target):
            return f"{self.name} acts on a bot: {target!r} is not a bot name (lowercase letters, digits, '-')"
        return None

    def application(self, entry: Mapping[str, Any]) -> str | None:
        """Which application of this action an audit entry (already known to be this key's ``audit_action``)
        records, or None when it records something else."""
        return tagged_run(entry, self.name)

    @abstractmethod
    async def precondition(self, step: Step) -> Check: ...

    @abstractmethod
    async def apply(self, step: Step) -> str:
        """Act; returns what was done. A refusal by the platform raises :class:`PlatformError`."""

    @abstractmethod
    async def verify(self, step: Step) -> Check:
        """One look at the live platform: does the expected effect hold now?"""

    @abstractmethod
    async def rollback(self, step: Step) -> str | None:
        """Undo the application; returns what was done, or None when the action has no rollback."""


# --- looking at the platform ---------------------------------------------------------------------------------------


async def engaged_switches(api: PlatformAPI) -> dict[str, dict[str, Any]]:
    """Engaged kill switches by scope (``global``, ``bot:<name>``)."""
    return {str(row["scope"]): row for row in await api.get("/v1/kill")}


async def bot_rows(api: PlatformAPI) -> dict[str, dict[str, Any]]:
    return {str(row["name"]): row for row in await api.get("/v1/bots")}


def _scope(target: str) -> str:
    return GLOBAL if target == GLOBAL else f"bot:{target}"


def _needs_platform_operator(step: Step, what: str = "kill switches") -> Check | None:
    if step.identity.platform_operator:
        return None
    return Check(False, f"{what} needs a platform operator key (an operator of the {SYSTEM_TENANT!r} tenant);"
                        f" this key is a {step.identity.role} of {step.identity.tenant!r}")


# --- kill switches -------------------------------------------------------------------------------------------------


class PauseBot(Action):
    name = "pause_bot"
    description = "Engage a bot's kill switch: no new work reaches its lane and its tool calls are refused."
    effect = "The bot's new tickets are held queued (not failed) and its row in GET /v1/bots names the switch."
    verification = "GET /v1/kill lists bot:<name> and GET /v1/bots shows the bot held by a kill switch."
    rollback_plan = "Release the bot's kill switch (DELETE /v1/kill/<bot>); the held work is dispatched."
    risk = "medium"
    budget = RateBudget(per_incident=2, per_hour=6)
    audit_action = "kill_switch.engage"

    async def precondition(self, step: Step) -> Check:
        refused = _needs_platform_operator(step)
        if refused:
            return refused
        if step.target not in await bot_rows(step.api):
            return Check(False, f"no bot named {step.target!r} is registered (see GET /v1/bots)")
        held = (await engaged_switches(step.api)).get(_scope(step.target))
        if held is not None:
            return Check(False, f"bot {step.target} is already paused by {held['engaged_by']}: {held['reason']}")
        return Check(True, f"bot {step.target} is registered and not paused")

    async def apply(self, step: Step) -> str:
        await step.api.post("/v1/kill", {"bot": step.target, "reason": step.reason("paused by the operations loop")})
        return f"engaged kill switch bot:{step.target}"

    async def verify(self, step: Step) -> Check:
        engaged = _scope(step.target) in await engaged_switches(step.api)
        held_by = (await bot_rows(step.api)).get(step.target, {}).get("kill_switch")
        if engaged and held_by:
            return Check(True, f"bot {step.target} is held: {held_by}")
        return Check(False, f"bot {step.target} is not held (switch engaged: {engaged}; bot row: {held_by!r})")

    async def rollback(self, step: Step) -> str:
        return await _release(step.api, step.target)


class ReleaseKillSwitch(Action):
    name = "release_kill_switch"
    description = "Release a kill switch (a bot's, or 'global'): the work it held is dispatched."
    effect = "The scope's switch is gone and the bot (every bot, for 'global') may work again."
    verification = ("GET /v1/kill no longer lists the scope and GET /v1/bots shows the bot (for 'global': no bot) "
                    "held by it — a bot still held by another switch fails the verification.")
    rollback_plan = "Engage the same switch again, with its original reason."
    risk = "medium"
    budget = RateBudget(per_incident=2, per_hour=6)
    audit_action = "kill_switch.release"

    def target_problem(self, target: str) -> str | None:
        if target == GLOBAL or _BOT.match(target):
            return None
        return f"{self.name} acts on 'global' or a bot name, not {target!r}"

    def application(self, entry: Mapping[str, Any]) -> str | None:
        return f"seq:{entry['seq']}"  # the platform records no reason for a release: each one by this key counts

    async def precondition(self, step: Step) -> Check:
        refused = _needs_platform_operator(step)
        if refused:
            return refused
        held = (await engaged_switches(step.api)).get(_scope(step.target))
        if held is None:
            return Check(False, f"kill switch {_scope(step.target)} is not engaged: there is nothing to release")
        step.memo["reason"] = str(held["reason"])
        return Check(True, f"kill switch {_scope(step.target)} is engaged by {held['engaged_by']}: {held['reason']}")

    async def apply(self, step: Step) -> str:
        return await _release(step.api, step.target)

    async def verify(self, step: Step) -> Check:
        scope = _scope(step.target)
        if scope in await engaged_switches(step.api):
            return Check(False, f"kill switch {scope} is engaged again")
        rows = await bot_rows(step.api)
        if step.target == GLOBAL:
            held = sorted(name for name, row in rows.items() if f"kill switch {GLOBAL} " in str(row["kill_switch"]))
            if held:
                return Check(False, f"bots still held by the global switch: {', '.join(held)}")
            return Check(True, "no bot is held by the global switch")
        blocked = rows.get(step.target, {}).get("kill_switch")
        if blocked:
            return Check(False, f"bot {step.target} is still held: {blocked}")
        return Check(True, f"bot {step.target} is no longer held by any kill switch")

    async def rollback(self, step: Step) -> str:
        original = str(step.memo.get("reason") or "re-engaged by the operations loop")
        reason = step.reason(f"{original} (re-engaged: the release did not verify)")
        body = {"reason": reason} if step.target == GLOBAL else {"bot": step.target, "reason": reason}
        try:
            await step.api.post("/v1/kill", body)
        except PlatformError as e:
            if e.status != 409:
                raise
            return f"kill switch {_scope(step.target)} was already engaged again by someone else"
        return f"engaged kill switch {_scope(step.target)} again"


class EngageGlobalKillSwitch(Action):
    name = "engage_global_kill_switch"
    description = "Engage the global kill switch: no bot takes new work and no tool call is made, until released."
    effect = "Every bot's new tickets are held queued (not failed); every row in GET /v1/bots names the switch."
    verification = "GET /v1/kill lists 'global' and GET /v1/bots shows every bot held."
    rollback_plan = "Release the global switch (DELETE /v1/kill/global); the held work is dispatched."
    risk = "high"
    budget = RateBudget(per_incident=1, per_hour=2)
    audit_action = "kill_switch.engage"

    def target_problem(self, target: str) -> str | None:
        return None if target == GLOBAL else f"{self.name} acts on 'global' only, not {target!r}"

    async def precondition(self, step: Step) -> Check:
        refused = _needs_platform_operator(step)
        if refused:
            return refused
        held = (await engaged_switches(step.api)).get(GLOBAL)
        if held is not None:
            return Check(False, f"the global kill switch is already engaged by {held['engaged_by']}: {held['reason']}")
        return Check(True, "the global kill switch is not engaged")

    async def apply(self, step: Step) -> str:
        await step.api.post("/v1/kill", {"reason": step.reason("everything stopped by the operations loop")})
        return "engaged the global kill switch"

    async def verify(self, step: Step) -> Check:
        if GLOBAL not in await engaged_switches(step.api):
            return Check(False, "the global kill switch is not engaged")
        free = sorted(name for name, row in (await bot_rows(step.api)).items() if not row["kill_switch"])
        if free:
            return Check(False, f"bots not held: {', '.join(free)}")
        return Check(True, "every bot is held by the global kill switch")

    async def rollback(self, step: Step) -> str:
        return await _release(step.api, GLOBAL)


async def _release(api: PlatformAPI, target: str) -> str:
    try:
        released = await api.delete(f"/v1/kill/{target}")
    except PlatformError as e:
        if e.status != 404:
            raise
        return f"kill switch {_scope(target)} was already released"
    return f"released kill switch {_scope(target)} ({released['dispatched']} held phase(s) dispatched)"


# --- dead letters --------------------------------------------------------------------------------------------------


class RequeueDeadLetters(Action):
    name = "requeue_dead_letters"
    description = "Requeue a bot's dead-lettered tickets (up to 'limit', default 20, newest first) for a new attempt."
    effect = "Each requeued ticket leaves dead_letter and runs again."
    verification = ("Each requeued ticket (GET /v1/tickets/<id>) has left dead_letter and finished its new attempt "
                    "without dead-lettering again.")
    rollback_plan = ("None: the platform has no way back into dead letter. A ticket whose new attempt fails "
                     "dead-letters again by itself; the requeued tickets are named in the result.")
    risk = "medium"
    budget = RateBudget(per_incident=2, per_hour=6)
    audit_action = "ticket.requeue"
    params = frozenset({"reason", "limit"})
    DEFAULT_LIMIT = 20

    def problem(self, target: str, params: Mapping[str, Any]) -> str | None:
        limit = params.get("limit", self.DEFAULT_LIMIT)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_REQUEUE:
            return f"{self.name}: limit must be a whole number from 1 to {MAX_REQUEUE}, not {limit!r}"
        return super().problem(target, params)

    async def precondition(self, step: Step) -> Check:
        if step.identity.role != "operator":
            return Check(False, f"requeueing needs an operator key; this key is a {step.identity.role}")
        bot = (await bot_rows(step.api)).get(step.target)
        if bot is None:
            return Check(False, f"no bot named {step.target!r} is registered (see GET /v1/bots)")
        if not bot["replicas"]:
            return Check(False, f"bot {step.target} has no live replica: requeued work would only wait for one "
                                "(bring the bot back first)")
        limit = int(step.params.get("limit", self.DEFAULT_LIMIT))
        page = await step.api.get("/v1/dead-letters", bot=step.target, limit=limit)
        ids = [str(item["id"]) for item in page["items"]]
        if not ids:
            return Check(False, f"bot {step.target} has no dead letters (of this key's tenant) to requeue")
        step.memo["candidates"] = ids
        return Check(True, f"bot {step.target} has {len(ids)} dead letter(s) to requeue and "
                           f"{bot['replicas']} live replica(s)")

    async def apply(self, step: Step) -> str:
        requeued: list[str] = []
        refusals: list[PlatformError] = []
        for ticket in step.memo["candidates"]:
            try:  # one at a time: a ticket gone or changed since it was listed is left, and the rest go on
                await step.api.post(f"/v1/tickets/{ticket}/requeue", {"reason": step.reason("requeued")})
            except PlatformError as e:
                refusals.append(e)
                continue
            requeued.append(ticket)
        step.memo["requeued"] = requeued
        if not requeued and refusals:
            raise refusals[0]
        skipped = [f"{e.path.split('/')[3]} ({e.status} {e.message})" for e in refusals]
        return (f"requeued {len(requeued)} ticket(s): {', '.join(requeued) or 'none'}"
                + (f"; skipped {', '.join(skipped)}" if skipped else ""))

    async def verify(self, step: Step) -> Check:
        requeued: list[str] = step.memo.get("requeued", [])
        if not requeued:
            return Check(False, "no ticket was requeued")
        statuses = {t: str((await step.api.get(f"/v1/tickets/{t}"))["status"]) for t in requeued}
        dead = sorted(t for t, s in statuses.items() if s == "dead_letter")
        running = sorted(t for t, s in statuses.items() if s in ("in_progress", "approved"))
        seen = ", ".join(f"{t}: {s}" for t, s in statuses.items())
        if dead:
            return Check(False, f"{len(dead)} of {len(requeued)} requeued ticket(s) dead-lettered again ({seen})")
        if running:
            return Check(False, f"{len(running)} of {len(requeued)} requeued ticket(s) still running ({seen})")
        return Check(True, f"every requeued ticket left dead_letter and finished ({seen})")

    async def rollback(self, step: Step) -> None:
        return None


# --- connectors ----------------------------------------------------------------------------------------------------


class DisableConnector(Action):
    name = "disable_connector"
    description = "Take a failing connector out of service until it is enabled again (its signature is kept)."
    effect = "No bot can call the connector's operations; calls are refused at once with the reason."
    verification = "GET /v1/connectors/<id> shows the connector disabled."
    rollback_plan = "Enable it again (POST /v1/connectors/<id>/enable), which checks its signature once more."
    risk = "high"
    budget = RateBudget(per_incident=1, per_hour=4)
    audit_action = "connector.disable"

    def target_problem(self, target: str) -> str | None:
        return None if _CONNECTOR.match(target) else f"{self.name} acts on a connector id, not {target!r}"

    async def precondition(self, step: Step) -> Check:
        refused = _needs_platform_operator(step, "disabling a connector")
        if refused:
            return refused
        try:
            row = await step.api.get(f"/v1/connectors/{step.target}")
        except PlatformError as e:
            if e.status == 404:
                return Check(False, f"no connector {step.target!r} is in the catalog (see GET /v1/connectors)")
            raise
        if row["state"] != "enabled":
            return Check(False, f"connector {step.target} is {row['state']}, not enabled: nothing to disable")
        return Check(True, f"connector {step.target} is enabled")

    async def apply(self, step: Step) -> str:
        await step.api.post(f"/v1/connectors/{step.target}/disable",
                            {"reason": step.reason("disabled by the operations loop")})
        return f"disabled connector {step.target}"

    async def verify(self, step: Step) -> Check:
        row = await step.api.get(f"/v1/connectors/{step.target}")
        if row["state"] == "disabled":
            return Check(True, f"connector {step.target} is disabled: {row.get('disabled_reason')}")
        return Check(False, f"connector {step.target} is {row['state']}")

    async def rollback(self, step: Step) -> str:
        try:
            await step.api.post(f"/v1/connectors/{step.target}/enable")
        except PlatformError as e:
            if e.status == 409:
                return f"connector {step.target} was not disabled any more ({e.message})"
            raise
        return f"enabled connector {step.target} again"


# --- fleet control -------------------------------------------------------------------------------------------------


async def _control(api: PlatformAPI, bot: str) -> dict[str, Any]:
    control: dict[str, Any] = await api.get(f"/v1/bots/{bot}/control")
    return control


class RestartBot(Action):
    name = "restart_bot"
    description = "Restart a bot's processes (drained first: work in flight is finished or taken over)."
    effect = "The bot has its desired number of live replicas again."
    verification = ("GET /v1/bots/<bot>/control shows the restart carried out (applied_seq reached the order) and "
                    "GET /v1/bots shows at least one live replica.")
    rollback_plan = "None: a restart cannot be undone, and a second one is the same action again."
    risk = "low"
    budget = RateBudget(per_incident=2, per_hour=6)
    audit_action = "fleet.restart"

    async def precondition(self, step: Step) -> Check:
        refused = _needs_platform_operator(step, "restarting a bot")
        if refused:
            return refused
        bot = (await bot_rows(step.api)).get(step.target)
        if bot is None:
            return Check(False, f"no bot named {step.target!r} is registered (see GET /v1/bots)")
        if bot["replicas_desired"] == 0:
            return Check(False, f"bot {step.target} is scaled to 0 replicas on purpose; scale it up instead")
        return Check(True, f"bot {step.target} has {bot['replicas']} of {bot['replicas_desired']} replica(s) live")

    async def apply(self, step: Step) -> str:
        order = await step.api.post(f"/v1/bots/{step.target}/restart",
                                    {"reason": step.reason("restarted by the operations loop")})
        step.memo["restart_seq"] = int(order["restart_seq"])
        return f"ordered restart #{order['restart_seq']} of bot {step.target}"

    async def verify(self, step: Step) -> Check:
        control = await _control(step.api, step.target)
        ordered = int(step.memo.get("restart_seq", control["restart_seq"]))
        if int(control["applied_seq"]) < ordered:
            return Check(False, f"restart #{ordered} of {step.target} not carried out yet "
                                f"(applied #{control['applied_seq']}; is anything running the bot's nodes?)")
        bot = (await bot_rows(step.api)).get(step.target, {})
        if not bot.get("replicas"):
            return Check(False, f"bot {step.target} was restarted ({control['applied_note']}) but has no live "
                                "replica yet")
        return Check(True, f"bot {step.target} restarted ({control['applied_note']}); {bot['replicas']} of "
                           f"{bot['replicas_desired']} replica(s) live")

    async def rollback(self, step: Step) -> None:
        return None


class ScaleLane(Action):
    name = "scale_lane"
    description = "Change how many replicas consume a bot's lane."
    effect = "The lane has the requested number of live consumers."
    verification = ("GET /v1/bots/<bot>/control shows the replicas applied and GET /v1/bots shows that many live "
                    "replicas.")
    rollback_plan = "Order the replicas the bot had before (or its manifest's number, if none was ordered)."
    risk = "medium"
    budget = RateBudget(per_incident=2, per_hour=6)
    audit_action = "fleet.scale"
    params = frozenset({"reason", "replicas"})
    MAX_REPLICAS = 16

    def problem(self, target: str, params: Mapping[str, Any]) -> str | None:
        replicas = params.get("replicas")
        if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= self.MAX_REPLICAS:
            return (f"{self.name}: replicas must be a whole number from 1 to {self.MAX_REPLICAS}, not {replicas!r} "
                    "(the loop never scales a lane to zero)")
        return super().problem(target, params)

    async def precondition(self, step: Step) -> Check:
        refused = _needs_platform_operator(step, "scaling a lane")
        if refused:
            return refused
        if step.target not in await bot_rows(step.api):
            return Check(False, f"no bot named {step.target!r} is registered (see GET /v1/bots)")
        control = await _control(step.api, step.target)
        step.memo["previous"] = control["replicas"]
        if control["replicas"] == step.params["replicas"]:
            return Check(False, f"bot {step.target} is ordered to {control['replicas']} replica(s) already")
        return Check(True, f"bot {step.target} is ordered to "
                           f"{'its manifest' if control['replicas'] is None else control['replicas']} replica(s)")

    async def apply(self, step: Step) -> str:
        wanted = int(step.params["replicas"])
        await step.api.put(f"/v1/bots/{step.target}/replicas",
                           {"replicas": wanted, "reason": step.reason("scaled by the operations loop")})
        return f"ordered {wanted} replica(s) for bot {step.target}"

    async def verify(self, step: Step) -> Check:
        wanted = int(step.params["replicas"])
        control = await _control(step.api, step.target)
        if control["applied_replicas"] != wanted:
            return Check(False, f"{wanted} replica(s) of {step.target} not applied yet "
                                f"(applied: {control['applied_replicas']})")
        live = int((await bot_rows(step.api)).get(step.target, {}).get("replicas", 0))
        if live != wanted:
            return Check(False, f"bot {step.target} has {live} live replica(s), not {wanted}")
        return Check(True, f"bot {step.target} has {live} live replica(s) ({control['applied_note']})")

    async def rollback(self, step: Step) -> str:
        previous = step.memo.get("previous")
        await step.api.put(f"/v1/bots/{step.target}/replicas",
                           {"replicas": previous, "reason": step.reason("scaling rolled back by the operations loop")})
        return f"ordered bot {step.target} back to {'its manifest' if previous is None else previous} replica(s)"


ACTIONS: Mapping[str, Action] = {action.name: action for action in (
    PauseBot(), ReleaseKillSwitch(), EngageGlobalKillSwitch(), RequeueDeadLetters(), DisableConnector(),
    RestartBot(), ScaleLane())}

_RISKS = ("low", "medium", "high")


def remedy_problems(remedies: Iterable[Remedy]) -> list[str]:
    """What is wrong with proposed remedies (a diagnoser's, a model's): an action outside the allowlist, a risk
    stated lower than the action's own, or inputs the action would refuse."""
    problems = []
    for n, remedy in enumerate(remedies):
        action = ACTIONS.get(remedy.action)
        where = f"remediation[{n}] ({remedy.action} {remedy.target})"
        if action is None:
            problems.append(f"{where}: {remedy.action!r} is not an allowed action; the allowlist is "
                            f"{', '.join(ACTIONS)}")
        elif remedy.risk not in _RISKS:
            problems.append(f"{where}: risk {remedy.risk!r} is not one of {', '.join(_RISKS)}")
        elif _RISKS.index(remedy.risk) < _RISKS.index(action.risk):
            problems.append(f"{where}: states risk {remedy.risk}, below the action's own ({action.risk})")
        elif (problem := action.problem(remedy.target, remedy.params)) is not None:
            problems.append(f"{where}: {problem}")
    return problems
