"""Report: what an incident ends with, as Markdown a person reads at 3 a.m. — what happened, why (each claim with
the evidence it rests on, and where and when that was read), what was done and whether it held, and how long
detecting, diagnosing and recovering took."""

from __future__ import annotations

import datetime as dt
from typing import Any

from oshal_ops.model import RCA, Claim, Evidence


def _when(value: str | None) -> str:
    return value or "—"


def duration(start: str | None, end: str | None) -> float | None:
    """Seconds from ``start`` to ``end`` (ISO 8601), or None when either is unknown."""
    if not start or not end:
        return None
    return round((dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds(), 1)


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:g} s"


def _cite(claim: Claim) -> str:
    return claim.text + (" [" + ", ".join(f"`{c}`" for c in claim.citations) + "]" if claim.citations else "")


def timings(incident: dict[str, Any]) -> dict[str, float | None]:
    """time to detect (last healthy reading → first failing one), to diagnose (detected → RCA accepted) and to
    recover (detected → healthy again, or verified)."""
    return {"detect_s": duration(incident.get("last_ok_at"), incident.get("detected_at")),
            "diagnose_s": duration(incident.get("detected_at"), incident.get("diagnosed_at")),
            "recover_s": duration(incident.get("detected_at"), incident.get("recovered_at"))}


def render(incident: dict[str, Any], rca: RCA | None, evidence: list[Evidence],
           actions: list[dict[str, Any]]) -> str:
    t = timings(incident)
    lines = [f"# Incident {incident.get('key', '?')}", "",
             f"- **State**: {incident.get('state', 'open')}, "
             f"{'recovered' if incident.get('recovered_at') else 'NOT recovered'}",
             f"- **Signal**: {incident.get('signal')}",
             f"- **Detected**: {_when(incident.get('detected_at'))} "
             f"(last healthy: {_when(incident.get('last_ok_at'))})",
             f"- **Diagnosed**: {_when(incident.get('diagnosed_at'))}",
             f"- **Recovered**: {_when(incident.get('recovered_at'))}",
             f"- **Time to detect**: {_seconds(t['detect_s'])} · **to diagnose**: {_seconds(t['diagnose_s'])} · "
             f"**to recover**: {_seconds(t['recover_s'])}", ""]
    if rca is None:
        lines += ["## Root cause", "", "No diagnosis was accepted.", ""]
    else:
        lines += [f"## Summary ({rca.failure_mode})", "", rca.summary, "",
                  "## Root cause", "", _cite(rca.root_cause), "", "## Impact", "", _cite(rca.impact), "",
                  "## Timeline", "", *[f"1. {_cite(c)}" for c in rca.timeline], "",
                  "## Remediation options", "",
                  *([f"- `{r.action}` on `{r.target}` (risk {r.risk}): {_cite(r.why)}" for r in rca.remediation]
                    or ["None from the allowlist: this needs a person (see the summary)."]), ""]
    lines += ["## Actions taken", ""]
    if not actions:
        lines.append("None.")
    for a in actions:
        verdict = ("refused: " + str(a.get("refused_reason"))) if a.get("refused_reason") else (
            "verified" if a.get("verified") else "NOT verified" + (", rolled back" if a.get("rolled_back") else ""))
        lines.append(f"- `{a.get('action')}` on `{a.get('target')}` at {_when(a.get('applied_at'))}: {verdict}. "
                     f"{a.get('detail', '')}".rstrip() + (f" ({a['signal']})" if a.get("signal") else ""))
    lines += ["", "## Evidence", "", "| id | what | source | read at |", "|---|---|---|---|"]
    lines += [f"| `{e.id}` | {e.summary.replace('|', '/')} | {e.source} | {e.collected_at.isoformat()} |"
              for e in evidence]
    return "\n".join(lines) + "\n"
