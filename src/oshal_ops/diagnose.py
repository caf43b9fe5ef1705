"""The offline, deterministic diagnoser: rules for the platform's own failure modes.

``diagnose(signal, evidence) -> RCA`` is pure: it reads only what it is given, holds no API handle and cannot act
(importing it loads no HTTP client at all). Every claim it makes cites the evidence it rests on, and the remedies it
proposes come only from its rules — never from text inside the evidence or the signal — and name only allowlisted
actions (:mod:`oshal_ops.actions`), which the executor still checks before anything runs.

The signal says what opened the incident (``{"kind": "bot_offline", "bot": "echo"}``, or an alert's labels); its
``bot``, ``check``, ``connector`` and ``engine`` keys focus the rules on that subject. The signal is a lead, not a
fact: only evidence makes a finding.

Evidence the rules read, by kind (the data is the platform's own JSON):

- ``bots``: ``GET /v1/bots``; the latest one collected is used.
- ``lane``: ``{"bot": name, "samples": [...]}``, rows of ``GET /v1/bots`` for that bot, each with ``"at"`` (ISO
  time), oldest first — two samples or more show whether pending and lag grow.
- ``dead_letters``: ``GET /v1/dead-letters[?bot=]`` (a page with ``items``).
- ``budgets``: ``GET /v1/budgets``; ``tickets``: ``GET /v1/tickets?status=paused`` (a page with ``items``).
- ``connections``: ``GET /v1/connections``; ``readyz``: ``GET /readyz``'s body.
- ``check``: one HTTP check's result, ``{"name", "url", "ok": bool, "status", "error", "at"}``.
- ``alert``: one Alertmanager alert (``labels``, ``annotations``, ``startsAt``); ``audit``: audit entries (recent
  changes); ``runbook``: a knowledge document (``slug``, ``title``, ``tags``), cited by the remedies of the failure
  mode its slug or tags name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from oshal_ops.model import RCA, Claim, Evidence, Remedy

if TYPE_CHECKING:  # names only: the diagnoser never loads the module that can act
    from oshal_ops.actions import ActionName, Risk

FAILURE_MODES = ("engine_down", "dead_bot", "stuck_lane", "poison_message", "exhausted_budget", "failing_credential",
                 "endpoint_down")
# The failure mode a signal of the loop's own checks reports (the evidence still has to show it).
SIGNALLED_MODE = {"bot_offline": "dead_bot", "lane_stuck": "stuck_lane", "dead_letters": "poison_message",
                  "budget_exhausted": "exhausted_budget", "credential_failing": "failing_credential",
                  "connector_failing": "failing_credential", "engine_down": "engine_down",
                  "endpoint_down": "endpoint_down", "check_failed": "endpoint_down"}
_SEGMENTS = re.compile(r"[:/ ]")  # an audit target's parts: "bot:echo", "/v1/kill/echo"
_NUMBERS = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b|\d+")


@dataclass(frozen=True, slots=True)
class Focus:
    """The subject the signal names, if any."""

    bot: str | None = None
    check: str | None = None
    connector: str | None = None
    engine: str | None = None

    @classmethod
    def of(cls, signal: Mapping[str, Any]) -> Focus:
        def text(key: str) -> str | None:
            value = signal.get(key)
            return value if isinstance(value, str) and value else None

        return cls(text("bot"), text("check"), text("connector"), text("engine"))

    @property
    def named(self) -> bool:
        return any((self.bot, self.check, self.connector, self.engine))


@dataclass(frozen=True, slots=True)
class Finding:
    """One failure mode the evidence shows, for one subject."""

    mode: str
    subject: str
    summary: str
    root_cause: Claim
    impact: Claim
    observations: tuple[tuple[datetime, Claim], ...]
    remedies: tuple[Remedy, ...] = ()
    focused: bool = True  # about the subject the signal names (or the signal names none)


@dataclass(slots=True)
class Case:
    """The evidence, indexed for the rules."""

    signal: Mapping[str, Any]
    focus: Focus
    evidence: Sequence[Evidence]
    runbooks: dict[str, list[str]] = field(default_factory=dict)  # failure mode -> runbook evidence ids

    def of_kind(self, kind: str) -> list[Evidence]:
        return [e for e in self.evidence if e.kind == kind]

    def about(self, *, bot: str | None = None, check: str | None = None, connector: str | None = None,
              any_bot: bool = False) -> bool:
        """Whether a finding on this subject is about what the signal names (anything is, when it names nothing);
        ``any_bot``: the finding concerns every bot (a tenant's budget, a shared connector)."""
        f = self.focus
        if not f.named:
            return True
        return ((f.bot is not None and (any_bot or f.bot == bot)) or (f.check is not None and f.check == check)
                or (f.connector is not None and f.connector == connector))

    def latest(self, kind: str) -> Evidence | None:
        found = self.of_kind(kind)
        return max(found, key=lambda e: e.collected_at) if found else None


def diagnose(signal: Mapping[str, Any], evidence: Sequence[Evidence]) -> RCA:
    case = Case(signal, Focus.of(signal), evidence, _runbooks(evidence))
    findings = [finding for rule in RULES for finding in rule(case)]
    expected = SIGNALLED_MODE.get(str(signal.get("kind", "")))
    # An engine down explains everything else; then what the signal says it saw, when the evidence shows it.
    ranked = ([f for f in findings if f.mode == "engine_down"]
              + sorted((f for f in findings if f.mode != "engine_down" and f.focused),
                       key=lambda f: f.mode != expected))
    if not ranked:
        return _unknown(case, [f for f in findings if not f.focused])
    best = ranked[0]
    also = [f.summary for f in ranked[1:]]
    elsewhere = [f.summary for f in findings if f not in ranked]
    summary = " ".join([best.summary, *([f"Also seen: {' '.join(also)}"] if also else []),
                        *([f"Outside the signal's subject: {' '.join(elsewhere)}"] if elsewhere else [])])
    return RCA(best.mode, summary, _timeline(case, best), best.root_cause, best.impact, best.remedies)


def check_citations(rca: RCA, evidence: Iterable[Evidence]) -> list[str]:
    """Problems with the report's citations: a claim citing nothing, or citing evidence that is not there."""
    ids = [e.id for e in evidence]
    known = set(ids)
    problems = [f"evidence id {i!r} is used by more than one piece of evidence"
                for i in sorted({i for i in ids if ids.count(i) > 1})]
    for where, claim in _claims(rca):
        if not claim.citations:
            problems.append(f"{where}: {claim.text!r} cites no evidence")
        problems += [f"{where}: cites {cited!r}, which is not in the evidence" for cited in claim.citations
                     if cited not in known]
    return problems


def _claims(rca: RCA) -> Iterator[tuple[str, Claim]]:
    for n, claim in enumerate(rca.timeline):
        yield f"timeline[{n}]", claim
    yield "root_cause", rca.root_cause
    yield "impact", rca.impact
    for n, remedy in enumerate(rca.remediation):
        yield f"remediation[{n}] ({remedy.action})", remedy.why


# --- the rules ------------------------------------------------------------------------------------------------------


def engine_down(case: Case) -> Iterator[Finding]:
    ready = case.latest("readyz")
    if ready is None or not isinstance(ready.data, Mapping) or ready.data.get("status") == "ready":
        return
    engines: Mapping[str, Any] = ready.data.get("engines") or {}
    down = sorted(name for name, state in engines.items() if isinstance(state, Mapping) and not state.get("ready"))
    if not down:
        return
    names = " and ".join(down)
    details = "; ".join(f"{n}: down since {engines[n].get('since')} ({engines[n].get('error')})" for n in down)
    yield Finding(
        "engine_down", names, f"The platform's {names} is down: every ticket and lane that needs it waits.",
        Claim(f"The control plane's readiness probe reports {details}.", (ready.id,)),
        Claim(f"While {names} is down the platform is not ready: work that needs it is held or refused, and the "
              "other signals in this incident are likely its effects.", (ready.id,)),
        ((ready.collected_at, Claim(f"/readyz said {ready.data.get('status')}: {details}", (ready.id,))),),
        (),  # no allowlisted action restarts an engine: the engine keeper (or its operator) does
        True)  # the platform itself is down: whatever the signal named, this comes first


def dead_bot(case: Case) -> Iterator[Finding]:
    bots = case.latest("bots")
    if bots is None:
        return
    for row in _rows(bots.data):
        name = str(row.get("name"))
        if int(row.get("replicas") or 0) > 0 or int(row.get("replicas_desired") or 0) <= 0:
            continue
        waiting = int(row.get("pending") or 0) + int(row.get("lag") or 0)
        seen = (f"{name} has {row.get('replicas')} of {row.get('replicas_desired')} desired replicas alive "
                f"(status {row.get('status')}); its lane holds {row.get('pending')} pending and {row.get('lag')} "
                "undelivered message(s)")
        yield Finding(
            "dead_bot", name, f"Bot {name} is down: no replica is alive to read its lane.",
            Claim(f"No replica of {name} sends heartbeats: {seen}.", (bots.id,)),
            Claim(f"Tickets for {name} wait on its lane and do not run ({waiting} message(s) there now); other bots "
                  "are not affected.", (bots.id,)),
            ((bots.collected_at, Claim(seen, (bots.id,))),),
            (_remedy(case, "restart_bot", name, {}, "low", "dead_bot",
                     f"{name} needs a live replica again; restarting one brings back the reader of its lane.",
                     (bots.id,)),),
            case.about(bot=name))


def stuck_lane(case: Case) -> Iterator[Finding]:
    for lane in case.of_kind("lane"):
        if not isinstance(lane.data, Mapping):
            continue
        name = str(lane.data.get("bot"))
        samples = [s for s in lane.data.get("samples") or [] if isinstance(s, Mapping)]
        if len(samples) < 2 or not all(int(s.get("replicas") or 0) > 0 for s in samples):
            continue
        first, last = samples[0], samples[-1]
        pending_grew = int(last.get("pending") or 0) > int(first.get("pending") or 0)
        lag_grew = int(last.get("lag") or 0) > int(first.get("lag") or 0)
        if not (pending_grew or lag_grew):
            continue
        seen = (f"from {first.get('at')} to {last.get('at')}, {name}'s pending went {first.get('pending')} -> "
                f"{last.get('pending')} and its lag {first.get('lag')} -> {last.get('lag')}, with "
                f"{last.get('replicas')} replica(s) alive")
        if pending_grew:
            cause = (f"{name}'s replicas take messages but do not finish them (pending grows while they are alive): "
                     "a consumer is stuck")
            fix = _remedy(case, "restart_bot", name, {}, "low", "stuck_lane",
                          "A stuck consumer holds its messages until it is restarted and they are reclaimed.",
                          (lane.id,))
        else:
            cause = (f"{name}'s replicas do not keep up: undelivered messages (lag) grow while pending stays, so "
                     "the lane needs more consumers")
            fix = _remedy(case, "scale_lane", name, {"replicas": int(last.get("replicas") or 0) + 1}, "medium",
                          "stuck_lane", "One more consumer on the lane reads the backlog faster.", (lane.id,))
        yield Finding(
            "stuck_lane", name, f"Bot {name}'s lane is stuck: its backlog grows with replicas alive.",
            Claim(f"{cause}; {seen}.", (lane.id,)),
            Claim(f"Tickets for {name} wait longer and longer; {last.get('pending')} delivered and {last.get('lag')} "
                  "undelivered message(s) are on the lane.", (lane.id,)),
            tuple((_time(s.get("at")) or lane.collected_at,
                   Claim(f"{name}: pending {s.get('pending')}, lag {s.get('lag')}, replicas {s.get('replicas')}",
                         (lane.id,))) for s in (first, last)),
            (fix,), case.about(bot=name))


def poison_message(case: Case) -> Iterator[Finding]:
    groups: dict[tuple[str, str], list[tuple[Evidence, Mapping[str, Any]]]] = {}
    for found in case.of_kind("dead_letters"):
        for item in _items(found.data):
            if item.get("status") == "dead_letter" and item.get("bot"):
                key = (str(item["bot"]), _NUMBERS.sub("#", str(item.get("error") or "")))
                groups.setdefault(key, []).append((found, item))
    for (name, _), items in sorted(groups.items(), key=lambda g: -len(g[1])):
        cited = tuple(dict.fromkeys(e.id for e, _ in items))
        error = str(items[0][1].get("error") or "no error recorded")
        ids = [str(item["id"]) for _, item in items]
        yield Finding(
            "poison_message", name,
            f"{len(ids)} message(s) of bot {name} dead-lettered with the same error: {error}",
            Claim(f"{len(ids)} ticket(s) of {name} failed every delivery with the same error and were dead-lettered: "
                  f"{error}", cited),
            Claim(f"Ticket(s) {', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''} did not run; the lane itself "
                  "moves on.", cited),
            tuple((_time(item.get("finished_at")) or e.collected_at,
                   Claim(f"ticket {item['id']} of {name} dead-lettered: {item.get('error')}", (e.id,)))
                  for e, item in items[:5]),
            (_remedy(case, "requeue_dead_letters", name, {"limit": min(len(ids), 100)}, "medium", "poison_message",
                     f"The dead-lettered ticket(s) of {name} run again once the cause of '{error}' is fixed (a "
                     "requeue before the fix dead-letters them again).", cited),),
            case.about(bot=name))


def exhausted_budget(case: Case) -> Iterator[Finding]:
    paused = [(e, item) for e in case.of_kind("tickets") for item in _items(e.data)
              if item.get("status") == "paused" and str(item.get("status_reason") or "").startswith("budget")]
    for found in case.of_kind("budgets"):
        for row in _rows(found.data):
            overrun = row.get("overrun_at") is not None
            if int(row.get("remaining") or 0) > 0 and not overrun:
                continue
            scope, subject = str(row.get("scope")), str(row.get("subject") or "")
            name = f"{scope} budget" + (f" {subject}" if subject else "") + f" ({row.get('period')})"
            held = [(e, t) for e, t in paused if scope != "bot" or t.get("bot") == subject]
            cited = tuple(dict.fromkeys([found.id, *(e.id for e, _ in held)]))
            seen = (f"the {name} has spent {row.get('spent')} of {row.get('limit_micros')} micro-dollars with "
                    f"{row.get('reserved')} reserved: {row.get('remaining')} remaining"
                    + (f"; overrun at {row.get('overrun_at')}: {row.get('overrun_reason')}" if overrun else ""))
            remedies = ((_remedy(case, "pause_bot", subject, {}, "medium", "exhausted_budget",
                                 f"{subject} spent past its budget; pausing it stops further spend until the budget "
                                 "is raised.", (found.id,)),) if overrun and scope == "bot" else ())
            yield Finding(
                "exhausted_budget", name,
                f"The {name} is exhausted: model calls under it are refused and their tickets pause. Raising it is "
                "a spending decision for a person (PUT /v1/budgets); paused tickets resume by themselves when it "
                "has room.",
                Claim(f"Model calls are refused because {seen}.", (found.id,)),
                Claim(f"{len(held)} ticket(s) are paused for budget"
                      + (f": {', '.join(str(t['id']) for _, t in held[:5])}" if held else "")
                      + " — held, not failed.", cited),
                ((found.collected_at, Claim(seen, (found.id,))),
                 *((_time(t.get("created_at")) or e.collected_at,
                    Claim(f"ticket {t['id']} of {t.get('bot')} paused: {t.get('status_reason')}", (e.id,)))
                   for e, t in held[:5])),
                remedies, case.about(bot=subject, any_bot=scope != "bot"))


def failing_credential(case: Case) -> Iterator[Finding]:
    for found in case.of_kind("connections"):
        for row in _rows(found.data):
            health = row.get("health")
            if health not in ("failing", "expired"):
                continue
            connector = str(row.get("connector_id"))
            seen = (f"the credential of connector {connector} expired at {row.get('expires_at')}" if health == "expired"
                    else f"calls through connector {connector} fail since {row.get('last_error_at')} (last success "
                         f"{row.get('last_success_at')}): {row.get('last_error')}")
            yield Finding(
                "failing_credential", connector,
                f"Connector {connector}'s credential is {health}: replace it with POST /v1/connections.",
                Claim(f"The connection's health is {health}: {seen}.", (found.id,)),
                Claim(f"Every bot's tool call through {connector} fails for this tenant until the credential is "
                      "replaced.", (found.id,)),
                ((_time(row.get("last_error_at") or row.get("expires_at")) or found.collected_at,
                  Claim(seen, (found.id,))),),
                (_remedy(case, "disable_connector", connector, {}, "high", "failing_credential",
                         f"Calls through {connector} only fail until its credential is replaced; disabling it stops "
                         "them.", (found.id,)),),
                case.about(connector=connector, any_bot=True))


def endpoint_down(case: Case) -> Iterator[Finding]:
    for found in case.of_kind("check"):
        if not isinstance(found.data, Mapping) or found.data.get("ok") is not False:
            continue
        name, url = str(found.data.get("name") or found.id), found.data.get("url")
        outcome = (f"answered {found.data['status']}" if found.data.get("status") is not None
                   else f"did not answer ({found.data.get('error')})")
        seen = f"check {name}: {url} {outcome}"
        yield Finding(
            "endpoint_down", name, f"Endpoint {url} under check {name} is down: it {outcome}.",
            Claim(f"The HTTP check {name} fails: {url} {outcome}"
                  + (f"; expected {found.data.get('expected')}" if found.data.get("expected") else "") + ".",
                  (found.id,)),
            Claim(f"Whatever depends on {url} is unavailable while the check fails.", (found.id,)),
            ((_time(found.data.get("at")) or found.collected_at, Claim(seen, (found.id,))),),
            (),  # the service under watch is not the platform's: no allowlisted action reaches it
            case.about(check=name))


Rule = Callable[[Case], Iterator[Finding]]
RULES: tuple[Rule, ...] = (engine_down, dead_bot, stuck_lane, poison_message, exhausted_budget, failing_credential,
                           endpoint_down)


# --- the report's parts ---------------------------------------------------------------------------------------------


def _unknown(case: Case, elsewhere: Sequence[Finding]) -> RCA:
    cited = tuple(e.id for e in case.evidence)
    looked = ", ".join(f"{e.id} ({e.kind})" for e in case.evidence) or "no evidence"
    rules = ", ".join(FAILURE_MODES)
    other = (f" Outside the signal's subject: {' '.join(f.summary for f in elsewhere)}" if elsewhere else "")
    return RCA(
        "unknown",
        f"No rule matched the signal {dict(case.signal)!r} in the evidence: a person (or the model-backed diagnoser) "
        f"has to look.{other}",
        _in_order(_context(case, None)),
        Claim(f"None of the rules ({rules}) matches what was looked at: {looked}.", cited),
        Claim("Unknown: the evidence shows no failure the rules know.", cited),
        ())


def _timeline(case: Case, finding: Finding) -> tuple[Claim, ...]:
    return _in_order([*finding.observations, *_context(case, finding.subject)])


def _in_order(stamped: Iterable[tuple[datetime, Claim]]) -> tuple[Claim, ...]:
    """The claims oldest first, each led by its time (UTC)."""
    return tuple(Claim(f"{at.astimezone(UTC).isoformat(timespec='seconds')} {claim.text}", claim.citations)
                 for at, claim in sorted(stamped, key=lambda tc: tc[0]))


def _context(case: Case, subject: str | None) -> Iterator[tuple[datetime, Claim]]:
    """What happened around the incident: the alerts that fired and the recent changes that touch the subject (no
    changes without a subject)."""
    for alert in case.of_kind("alert"):
        data: Mapping[str, Any] = alert.data if isinstance(alert.data, Mapping) else {}
        labels: Mapping[str, Any] = data["labels"] if isinstance(data.get("labels"), Mapping) else {}
        at = _time(data.get("startsAt")) or alert.collected_at
        yield at, Claim(f"alert {labels.get('alertname', '?')} {data.get('status', 'firing')} "
                        f"({', '.join(f'{k}={v}' for k, v in sorted(labels.items()) if k != 'alertname')})",
                        (alert.id,))
    for audit in case.of_kind("audit"):
        for entry in _rows(audit.data):
            target = str(entry.get("target") or "")
            if subject is None or subject not in _SEGMENTS.split(target):
                continue
            at = _time(entry.get("at")) or audit.collected_at
            yield at, Claim(f"{entry.get('action')} {target} by {entry.get('actor')}", (audit.id,))


def _remedy(case: Case, action: ActionName, target: str, params: dict[str, Any], risk: Risk, mode: str, why: str,
            cited: tuple[str, ...]) -> Remedy:
    """A remedy whose reason also cites the runbooks for its failure mode."""
    return Remedy(action, target, params, risk, Claim(why, (*cited, *case.runbooks.get(mode, ()))))


def _runbooks(evidence: Iterable[Evidence]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for e in evidence:
        if e.kind != "runbook" or not isinstance(e.data, Mapping):
            continue
        names = {str(e.data.get("slug") or "").replace("-", "_"),
                 *(str(t).replace("-", "_") for t in e.data.get("tags") or [])}
        for mode in FAILURE_MODES:
            if mode in names:
                found.setdefault(mode, []).append(e.id)
    return found


def _rows(data: Any) -> list[Mapping[str, Any]]:
    return [row for row in data if isinstance(row, Mapping)] if isinstance(data, list) else []


def _items(data: Any) -> list[Mapping[str, Any]]:
    return _rows(data.get("items") if isinstance(data, Mapping) else data)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
