"""``oshal security``, ``oshal audit`` and ``oshal kill``: the Security Center, the audit log, kill switches."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from oshal.cli.client import Client, JsonFlag, WideFlag, cut, emit_json, err, load_settings, out, print_table, when
from oshal.cli.exits import Exit
from oshal.errors import Invalid

security_app = typer.Typer(name="security", no_args_is_help=True,
                           help="The Security Center: scans, findings (as tickets), and the least-privilege proof.")
audit_app = typer.Typer(name="audit", no_args_is_help=True,
                        help="The append-only, hash-chained audit log: verify, export, list, prune.")
kill_app = typer.Typer(name="kill", no_args_is_help=True,
                       help="Kill switches: stop new dispatch and tool calls, globally or for one bot.")

_SCANS = "posture, secrets, code, runtime, ledger, access"
_COLOURS = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


@security_app.command("scan")
def security_scan(
    scan: Annotated[list[str] | None, typer.Argument(help=f"Scans to run (default all): {_SCANS}.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run scans now. Findings are kept one per fingerprint; HIGH and CRITICAL ones file tickets at once."""
    with Client.from_settings() as api:
        results: list[dict[str, Any]] = api.call("POST", "/v1/security/scan", body={"scans": scan} if scan else {},
                                                 timeout=600)
    if as_json:
        emit_json(results)
    else:
        table = Table("scan", "found", "new", "fixed", "tickets filed", "seconds", "error", title="security scans",
                      title_justify="left")
        for r in results:
            table.add_row(r["scan"], str(r["found"]), str(r["opened"]), str(r["fixed"]), str(r["filed"]),
                          f"{r['seconds']:.1f}", escape(r["error"] or ""))
        out.print(table)
    if any(r["error"] for r in results):
        raise typer.Exit(int(Exit.FAILED))


@security_app.command("findings")
def security_findings(
    status: Annotated[str, typer.Option(help="open, fixed or all.")] = "open",
    scan: Annotated[str | None, typer.Option(help=f"Only this scan: {_SCANS}.")] = None,
    severity: Annotated[str | None, typer.Option(help="This severity and above: info .. critical.")] = None,
    wide: WideFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """List findings, most severe first, with their triage and ticket."""
    with Client.from_settings() as api:
        rows: list[dict[str, Any]] = api.get("/v1/security/findings", status=None if status == "all" else status,
                                             scan=scan, severity=severity)
    if as_json:
        emit_json(rows)
        return
    table = Table(Column("severity", no_wrap=True), Column("fingerprint", no_wrap=True), Column("scan", no_wrap=True),
                  Column("title", ratio=1), Column("state", no_wrap=True),
                  title=f"findings ({len(rows)}; tickets and evidence with --json)", title_justify="left")
    for r in rows:
        colour = _COLOURS.get(r["severity"], "")
        state = r["status"] if r["status"] == "fixed" else r["triage"] + (" ticket" if r["ticket_id"] else "")
        table.add_row(f"[{colour}]{r['severity']}[/]", r["fingerprint"], r["scan"], escape(cut(r["title"], 160, wide)),
                      state)
    print_table(table, wide)


@security_app.command("assess")
def security_assess(
    fingerprint: Annotated[str, typer.Argument(help="The finding's fingerprint (see `oshal security findings`).")],
    decision: Annotated[str, typer.Argument(help="fix, accept or false_positive.")],
    reason: Annotated[str, typer.Option("--reason", help="Why; kept in the audit log.")],
    until: Annotated[str | None, typer.Option(help="For accept: the date the acceptance expires (YYYY-MM-DD).")]
    = None,
    as_json: JsonFlag = False,
) -> None:
    """Triage a finding: fix (files a ticket), accept the risk until a date, or mark it a false positive."""
    body: dict[str, Any] = {"decision": decision, "reason": reason}
    if until:
        try:
            body["until"] = dt.datetime.fromisoformat(until).replace(tzinfo=dt.UTC).isoformat()
        except ValueError as e:
            raise Invalid(f"--until {until!r} is not a date", hint="use YYYY-MM-DD") from e
    with Client.from_settings() as api:
        row = api.post(f"/v1/security/findings/{fingerprint}/assess", body)
    if as_json:
        emit_json(row)
        return
    out.print(f"finding {fingerprint}: {row['triage']}" + (f", ticket {row['ticket_id']}" if row["ticket_id"] else ""))


@security_app.command("summary")
def security_summary(as_json: JsonFlag = False) -> None:
    """Open findings by severity and scan, what waits for triage, each scan's last run, and kill switches."""
    with Client.from_settings() as api:
        summary: dict[str, Any] = api.get("/v1/security/summary")
    if as_json:
        emit_json(summary)
        return
    parts = [f"[{_COLOURS[s]}]{s} {n}[/]" for s, n in summary["by_severity"].items() if n]
    out.print(f"open findings: {summary['open']} ({', '.join(parts) or 'none'}); "
              f"waiting for triage: {summary['untriaged']}")
    for scan, run in sorted(summary["last_runs"].items()):
        out.print(f"  {scan:<8} last run {when(run['finished_at'])}: {run['found']} found"
                  + (f" [red]error: {escape(run['error'])}[/]" if run["error"] else ""))
    if summary["kill_switches"]:
        out.print(f"[bold red]kill switches engaged:[/] {', '.join(summary['kill_switches'])}")


@security_app.command("verify")
def security_verify(
    via_api: Annotated[bool, typer.Option("--api", help="Ask the API instead (no canary as other roles).")]
    = False,
    as_json: JsonFlag = False,
) -> None:
    """Prove least privilege: forced RLS on every tenant table, runtime roles without superuser, BYPASSRLS,
    ownership or unexpected grants, and a cross-tenant canary run as every runtime role. Exit 1 on any problem.

    On the platform's host it uses the owner's connection (embedded: from $OSHAL_HOME; external:
    OSHAL_DATABASE_URL); with --api, or elsewhere, it asks the API for the checks its own role can make."""
    if via_api:
        with Client.from_settings() as api:
            report: dict[str, Any] = api.post("/v1/security/verify")
    else:
        report = _verify_locally()
    if as_json:
        emit_json(report)
    elif report["ok"]:
        tables = report.get("checked", {}).get("tenant_tables") or report.get("tenant_tables", [])
        out.print(f"[green]verified[/]: {len(tables)} tenant tables with forced RLS; runtime roles least-privileged"
                  + "; audit log sealed" + ("; the canary leaked nothing" if "checked" in report else ""))
    else:
        for problem in report["problems"]:
            out.print(f"[red]✗[/] {escape(problem)}")
    if not report["ok"]:
        raise typer.Exit(int(Exit.FAILED))


def _verify_locally() -> dict[str, Any]:
    from oshal.launcher.host import verify_security

    return verify_security(load_settings())

@security_app.command("vulndb-import")
def security_vulndb_import(
    source: Annotated[Path, typer.Argument(help="An oshal-vulndb JSON file, an OSV JSON folder or OSV's zip.")],
    force: Annotated[bool, typer.Option(help="Import even if it is older than the current database.")] = False,
) -> None:
    """Refresh the offline vulnerability database the code scan checks installed packages against."""
    from oshal.launcher.host import import_vulndb

    advisories, as_of = import_vulndb(source, load_settings(), force=force)
    out.print(f"vulnerability database updated: {advisories} advisories, as of {as_of}")


# --- audit --------------------------------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(as_json: JsonFlag = False) -> None:
    """Recompute the hash chain, check every anchor (in the database, in $OSHAL_HOME/audit and in the object store)
    and that the log is sealed against the database owner. Writes nothing. Exit 1 on any problem."""
    with Client.from_settings() as api:
        report: dict[str, Any] = api.call("POST", "/v1/audit/verify", timeout=300)
    if as_json:
        emit_json(report)
    elif report["intact"]:
        out.print(f"[green]intact[/]: {report['entries']} entries (through #{report['head_seq']}), "
                  f"{report['anchors_checked']} anchors checked")
    else:
        for p in report["problems"]:
            where = "audit log" if p["seq"] is None else f"entry #{p['seq']}"
            out.print(f"[red]✗[/] {where}: {escape(p['problem'])}")
    if not report["intact"]:
        raise typer.Exit(int(Exit.FAILED))


@audit_app.command("seal")
def audit_seal(
    superuser_url: Annotated[str | None, typer.Option(
        "--superuser-url", envvar="OSHAL_SUPERUSER_DATABASE_URL",
        help="A superuser's URL for the platform's database (embedded: taken from $OSHAL_HOME).")] = None,
) -> None:
    """Hand the audit log to the oshal_audit_keeper role (nobody logs in as it), so the database owner can neither
    disable its triggers nor edit or drop it. `oshal up` does this itself on the embedded server."""
    from oshal.launcher.host import seal_audit_log

    seal_audit_log(load_settings(), superuser_url)
    out.print("[green]sealed[/]: the audit log belongs to oshal_audit_keeper; check with `oshal audit verify`")


@audit_app.command("export")
def audit_export(
    output: Annotated[Path | None, typer.Option("--out", help="Write here (default: stdout).")] = None,
) -> None:
    """Export the audit log as JSON lines (every tenant's for a platform operator, yours otherwise)."""
    with Client.from_settings() as api:
        response = api.raw("GET", "/v1/audit/export", timeout=600)
        if response.status_code >= 400:
            api.call("GET", "/v1/audit/export")  # raises the API's error
        if output is None:
            sys.stdout.write(response.text)
            return
        output.write_text(response.text)
    err.print(f"exported {response.text.count(chr(10))} entries to {output}")


@audit_app.command("list")
def audit_list(
    after: Annotated[int, typer.Option(help="Entries after this sequence number.")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    wide: WideFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Show audit entries in order."""
    with Client.from_settings() as api:
        rows: list[dict[str, Any]] = api.get("/v1/audit", after=after, limit=limit)
    if as_json:
        emit_json(rows)
        return
    table = Table("#", "at", Column("actor", no_wrap=True), "action", "target", title=f"audit ({len(rows)})",
                  title_justify="left")
    for r in rows:
        table.add_row(str(r["seq"]), when(r["at"]), escape(r["actor"]), r["action"], escape(cut(r["target"], 80, wide)))
    print_table(table, wide)


@audit_app.command("prune")
def audit_prune(
    older_than_days: Annotated[int, typer.Option("--older-than-days", min=30, help="Retention (at least 30).")],
) -> None:
    """Remove entries older than the retention; the rest of the chain still verifies."""
    with Client.from_settings() as api:
        result = api.post("/v1/audit/prune", {"older_than_days": older_than_days})
    out.print(f"removed {result['removed']} entries")


# --- kill switches ------------------------------------------------------------------------------------------------


@kill_app.command("engage")
def kill_engage(
    reason: Annotated[str, typer.Option("--reason", help="Why; shown wherever the switch is visible.")],
    bot: Annotated[str | None, typer.Option("--bot", help="One bot (default: every bot).")] = None,
) -> None:
    """Stop new dispatch and tool calls now. Held work stays queued and runs when released."""
    with Client.from_settings() as api:
        row = api.post("/v1/kill", {"bot": bot, "reason": reason})
    out.print(f"[bold red]kill switch {row['scope']} engaged[/]: {escape(row['reason'])}")


@kill_app.command("release")
def kill_release(bot: Annotated[str | None, typer.Option("--bot", help="One bot (default: the global switch).")]
                 = None) -> None:
    """Release a switch; the work it held is dispatched."""
    with Client.from_settings() as api:
        result = api.delete(f"/v1/kill/{bot or 'global'}")
    out.print(f"kill switch {result['released']} released; {result['dispatched']} held phases dispatched")


@kill_app.command("status")
def kill_status(as_json: JsonFlag = False) -> None:
    """Engaged kill switches."""
    with Client.from_settings() as api:
        rows: list[dict[str, Any]] = api.get("/v1/kill")
    if as_json:
        emit_json(rows)
        return
    if not rows:
        out.print("no kill switch engaged")
    for r in rows:
        out.print(f"[bold red]{r['scope']}[/] by {r['engaged_by']} at {when(r['engaged_at'])}: {escape(r['reason'])}")


def register(app: typer.Typer) -> None:
    app.add_typer(security_app)
    app.add_typer(audit_app)
    app.add_typer(kill_app)
