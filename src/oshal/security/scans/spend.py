"""Ledger: cost spikes per bot and tenant against their own baseline, and calls priced by estimate although the
provider reports cost for the same model."""

from __future__ import annotations

from oshal.security.findings import Finding, Severity
from oshal.security.scans import ScanContext
from oshal.store import access

SPIKE_FACTOR = 5
SPIKE_FLOOR_MICROS = 1_000_000  # a spike under a dollar an hour is not worth a finding

# Per tenant and bot: the last hour's spend against the hourly average of the 7 days before it.
_SPIKES = """
SELECT bot,
       coalesce(sum(cost_micros) FILTER (WHERE created_at >= now() - interval '1 hour'), 0) AS last_hour,
       coalesce(sum(cost_micros) FILTER (WHERE created_at < now() - interval '1 hour'), 0) / 168.0 AS baseline
  FROM ledger WHERE created_at >= now() - interval '169 hours' GROUP BY bot
"""
_ESTIMATED = """
SELECT provider, model, count(*) FILTER (WHERE price_source = 'estimated') AS estimated,
       count(*) FILTER (WHERE price_source = 'provider') AS reported
  FROM ledger WHERE created_at >= now() - interval '24 hours' GROUP BY provider, model
"""


async def scan(ctx: ScanContext) -> list[Finding]:
    async with ctx.db.system() as conn:
        tenants = await access.list_tenants(conn)
    findings: list[Finding] = []
    for tenant in tenants:
        async with ctx.db.tenant(tenant["id"]) as conn:
            spikes = await (await conn.execute(_SPIKES)).fetchall()
            mixed = await (await conn.execute(_ESTIMATED)).fetchall()
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
