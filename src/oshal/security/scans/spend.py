"""Ledger: cost spikes per bot and tenant against their own baseline, calls priced by estimate although the
provider reports cost for the same model, budgets overrun by cost no reservation covered, calls that used more than
their reservation held, and results that arrived after their reservation was released."""

from __future__ import annotations

from typing import Any

from oshal.security.findings import Finding, Severity
from oshal.security.scans import ScanContext
from oshal.store import access
from oshal.store import budgets as budgets_repo
from oshal.store import ledger as ledger_repo

SPIKE_FACTOR = 5
SPIKE_FLOOR_MICROS = 1_000_000  # a spike under a dollar an hour is not worth a finding


async def scan(ctx: ScanContext) -> list[Finding]:
    async with ctx.db.system() as conn:
        tenants = await access.list_tenants(conn)
    findings: list[Finding] = []
    for tenant in tenants:
        async with ctx.db.tenant(tenant["id"]) as conn:
            spikes = await ledger_repo.hourly_spend_by_bot(conn)
            mixed = await ledger_repo.price_sources(conn)
            overruns = await budgets_repo.overrun(conn)
            uncovered = await ledger_repo.uncovered_cost(conn)
        findings.extend(_overrun(tenant, row) for row in overruns)
        for row in uncovered:
            findings.extend(_uncovered(tenant, row))
        for row in spikes:
            last, baseline = int(row["last_hour"]), float(row["baseline"])
            if last >= SPIKE_FLOOR_MICROS and last > SPIKE_FACTOR * baseline:
                findings.append(Finding(
                    "ledger", "cost.spike", Severity.HIGH,
                    f"{row['bot']} spent ${last / 1e6:,.2f} in the last hour in tenant {tenant['name']}, "
                    f"{'over ' + str(SPIKE_FACTOR) + 'x' if baseline else 'with no'} its usual hourly spend",
                    f"spike:{tenant['id']}:{row['bot']}", "check the bot's recent tickets for a loop or a prompt that "
                    "grew; engage its kill switch (`oshal kill engage --bot NAME`) if it is runaway",
                    {"tenant": str(tenant["id"]), "bot": row["bot"], "last_hour_micros": last,
                     "baseline_hourly_micros": round(baseline)}))
        for row in mixed:
            if int(row["estimated"]) and int(row["reported"]):
                findings.append(Finding(
                    "ledger", "cost.estimated_despite_provider", Severity.MEDIUM,
                    f"{row['estimated']} calls to {row['provider']}/{row['model']} were priced by estimate although "
                    f"the provider reported cost for {row['reported']} others", f"estimated:{tenant['id']}:"
                    f"{row['provider']}/{row['model']}", "check that the harness passes the provider's reported cost "
                    "for every call; estimated rows may drift from the invoice",
                    {"tenant": str(tenant["id"]), "provider": row["provider"], "model": row["model"],
                     "estimated": int(row["estimated"]), "reported": int(row["reported"])}))
    return findings


def _overrun(tenant: dict[str, Any], row: dict[str, Any]) -> Finding:
    subject = f" {row['subject']}" if row["subject"] else ""
    return Finding(
        "ledger", "budget.overrun", Severity.HIGH,
        f"{row['scope']}{subject} budget ({row['period']}) in tenant {tenant['name']} went "
        f"${int(row['overrun_micros'] or 0) / 1e6:,.6f} past its limit of ${int(row['limit_micros']) / 1e6:,.6f}: "
        f"{row['overrun_reason']}", f"overrun:{tenant['id']}:{row['id']}",
        "its scope is paused (every call is refused, nothing resumes). Find out why the cost was not covered: a "
        "result that arrived after its reservation was released means OSHAL_RESERVATION_TTL_S is shorter than the "
        "bot's calls or the collector was down that long; usage above the reservation means the provider counted "
        "more than the request could hold. Then set the budget again (`oshal budget set`) to resume its work",
        {"tenant": str(tenant["id"]), "budget": str(row["id"]), "scope": row["scope"], "subject": row["subject"],
         "period": row["period"], "limit_micros": int(row["limit_micros"]),
         "over_micros": int(row["overrun_micros"] or 0), "at": row["overrun_at"].isoformat(),
         "reason": row["overrun_reason"]})


def _uncovered(tenant: dict[str, Any], row: dict[str, Any]) -> list[Finding]:
    where = f"{row['bot']} ({row['provider']}/{row['model']}) in tenant {tenant['name']}"
    evidence = {"tenant": str(tenant["id"]), "bot": row["bot"], "provider": row["provider"], "model": row["model"]}
    found = []
    if int(row["over_calls"]):
        found.append(Finding(
            "ledger", "cost.over_reservation", Severity.MEDIUM,
            f"{row['over_calls']} calls of {where} cost ${int(row['over_micros']) / 1e6:,.6f} more than their "
            "reservations held in the last 7 days", f"over-reservation:{tenant['id']}:{row['bot']}:"
            f"{row['provider']}/{row['model']}", "the provider reported more tokens than the request could hold "
            "(or the price table is off): check the ledger rows with over_reservation_micros > 0 against the "
            "provider's invoice; budgets cannot hold a limit against usage they cannot bound",
            {**evidence, "calls": int(row["over_calls"]), "over_micros": int(row["over_micros"]),
             "largest_over_micros": int(row["largest_over"])}))
    if int(row["late_calls"]):
        found.append(Finding(
            "ledger", "cost.settled_late", Severity.MEDIUM,
            f"{row['late_calls']} results of {where} arrived after their reservations were released in the last 7 "
            "days", f"settled-late:{tenant['id']}:{row['bot']}:{row['provider']}/{row['model']}",
            "raise OSHAL_RESERVATION_TTL_S above the bot's longest call and any collector outage: while a "
            "reservation is released early its room can be spent twice",
            {**evidence, "calls": int(row["late_calls"]), "cost_micros": int(row["late_micros"])}))
    return found
