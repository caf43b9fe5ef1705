"""``oshal ops ...``: the operations loop's commands (added to ``oshal`` by its entry point).

They reach the platform over its API with a platform operator key: ``--config``'s ``key_file``, else
``OSHAL_API_KEY``, else the admin key ``oshal up`` wrote (``$OSHAL_HOME/admin.key``).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from oshal_ops.api import PlatformAPI, PlatformError
from oshal_ops.config import ConfigError, OpsConfig, load
from oshal_ops.service import rca_of_run

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="The operations loop: watch endpoints and the platform, open incidents, diagnose, heal.")
runbook = typer.Typer(no_args_is_help=True, add_completion=False,
                      help="Runbooks in the knowledge store: what the gatherer attaches to matching incidents.")
app.add_typer(runbook, name="runbook")
out = Console()
err = Console(stderr=True)
ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="The loop's YAML configuration.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON, not tables.")]
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")


def _fail(message: str, hint: str = "", code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")
    if hint:
        err.print(f"[dim]hint:[/] {escape(hint)}")
    return typer.Exit(code)


def _config(path: Path | None) -> OpsConfig:
    try:
        return load(path)
    except ConfigError as e:
        raise _fail(str(e), code=2) from e


def _call(config: OpsConfig, method: str, path: str, **kw: Any) -> Any:
    async def go() -> Any:
        try:
            key = config.platform_key()
        except ConfigError as e:
            raise _fail(str(e), code=2) from e
        async with PlatformAPI(config.platform_url(), key) as api:
            return await api.request(method, path, **kw)
    try:
        return asyncio.run(go())
    except PlatformError as e:
        raise _fail(e.message, e.hint, code=3 if e.status in (401, 403) else 4 if e.status == 404 else 1) from e


def _incident_tickets(config: OpsConfig) -> list[dict[str, Any]]:
    page = _call(config, "GET", "/v1/tickets", params={"limit": 500})
    return [t for t in page.get("items", []) if t.get("type") == "incident"]


@app.command()
def run(config_path: ConfigOption = None,
        once: Annotated[bool, typer.Option("--once", help="One round (checks, open incidents moved on) and exit: "
                                                            "for cron and scripts.")] = False) -> None:
    """Run the loop until Ctrl-C: checks every interval_s, the Alertmanager webhook when configured, incidents
    opened, diagnosed, healed (after approval, unless automatic) and reported."""
    from oshal_ops.runner import run_loop, run_once  # the service and its web server load only for `run`

    config = _config(config_path)
    try:
        asyncio.run(run_once(config, out) if once else run_loop(config, out))
    except ConfigError as e:
        raise _fail(str(e), code=2) from e
    except PlatformError as e:
        raise _fail(e.message, e.hint) from e


@app.command()
def incidents(config_path: ConfigOption = None, as_json: JsonFlag = False,
              quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the newest incident's id.")] = False,
              ) -> None:
    """Incidents, newest first: state, what opened them, when."""
    tickets = _incident_tickets(_config(config_path))
    if quiet:
        if not tickets:
            raise _fail("there is no incident", "`oshal ops run --once` runs the checks", code=4)
        out.print(tickets[0]["id"])
        return
    if as_json:
        sys.stdout.write(json.dumps(tickets, indent=2, default=str) + "\n")
        return
    table = Table("incident", "state", "outcome", "key", "opened")
    for t in tickets:
        table.add_row(str(t["id"]), t["status"], str((t.get("result") or {}).get("outcome") or t.get("phase") or ""),
                      escape(str(t["input"].get("key"))), str(t["input"].get("opened_at", t["created_at"])))
    out.print(table if tickets else "No incidents.")


@app.command()
def show(incident: str, config_path: ConfigOption = None, as_json: JsonFlag = False) -> None:
    """One incident: its state, signal, evidence and (once diagnosed) its RCA."""
    config = _config(config_path)
    ticket = _call(config, "GET", f"/v1/tickets/{incident}")
    timeline = _call(config, "GET", f"/v1/tickets/{incident}/timeline")
    if as_json:
        sys.stdout.write(json.dumps({"ticket": ticket, "timeline": timeline}, indent=2, default=str) + "\n")
        return
    spec = ticket["input"]
    out.print(f"[bold]incident[/] {ticket['id']}  [bold]{ticket['status']}[/] {escape(str(ticket.get('phase') or ''))}")
    out.print(f"key: {escape(str(spec.get('key')))}\nsignal: {escape(json.dumps(spec.get('signal')))}")
    evidence = Table("evidence", "what", "source", "read at")
    for e in spec.get("evidence", []):
        evidence.add_row(escape(e["id"]), escape(e["summary"]), escape(e["source"]), e["collected_at"])
    out.print(evidence)
    rca = rca_of_run(timeline)
    if rca is not None:
        out.print(f"[bold]RCA[/] ({rca.failure_mode}): {escape(rca.summary)}")
        out.print(f"root cause: {escape(rca.root_cause.text)} {list(rca.root_cause.citations)}")
        out.print(f"impact: {escape(rca.impact.text)} {list(rca.impact.citations)}")
        for r in rca.remediation:
            out.print(f"  remedy: {r.action} on {escape(r.target)} (risk {r.risk}): {escape(r.why.text)}")
    for e in timeline.get("events", []):
        phase, why = escape(str(e.get("phase") or "")), escape(str(e.get("reason") or ""))
        out.print(f"  {e['at']}  {e['to_status']}  {phase}  {why}")


@app.command()
def approve(incident: str, reason: Annotated[str, typer.Option(help="Why it may go ahead.")] = "approved",
            wait: Annotated[float, typer.Option(help="Wait up to this many seconds for the diagnosis to reach "
                                                     "the gate.", min=0, max=300)] = 0,
            config_path: ConfigOption = None) -> None:
    """Approve an incident's proposed remediation (its approval gate); the running loop then acts and verifies."""
    config = _config(config_path)
    deadline = time.monotonic() + wait
    while True:
        current = _call(config, "GET", f"/v1/tickets/{incident}", params={"wait": min(10, wait) if wait else 0})
        if current["status"] == "approval_required" or time.monotonic() >= deadline:
            break
    if current["status"] != "approval_required":
        raise _fail(f"incident {incident} is {current['status']}, not waiting for approval",
                    "`oshal ops show` says where it is; --wait waits for the diagnosis", code=1)
    ticket = _call(config, "POST", f"/v1/tickets/{incident}/approve", json={"reason": reason})
    out.print(f"incident {ticket['id']}: {ticket['status']}")


@app.command()
def report(incident: str, config_path: ConfigOption = None) -> None:
    """The incident's report (Markdown): RCA with citations, actions and their verification, timings."""
    document = _call(_config(config_path), "GET", f"/v1/knowledge/incidents/{incident}")
    sys.stdout.write(str(document.get("body", "")))


@runbook.command("add")
def runbook_add(path: Annotated[Path, typer.Argument(help="A Markdown file; its first '# ' line is the title.")],
                slug: Annotated[str | None, typer.Option(help="Its name in the store; default: the file name.")] = None,
                tags: Annotated[str, typer.Option(help="Comma-separated tags.")] = "",
                config_path: ConfigOption = None) -> None:
    """Add or replace a runbook."""
    try:
        body = path.read_text()
    except OSError as e:
        raise _fail(f"cannot read {path}: {e.strerror}", code=2) from e
    name = slug or path.stem
    if not _SLUG.match(name):
        raise _fail(f"{name!r} is not a valid runbook name", "lowercase letters, digits, '-', '_', '.'", code=2)
    title = next((line[2:].strip() for line in body.splitlines() if line.startswith("# ")), name)
    _call(_config(config_path), "PUT", f"/v1/knowledge/runbooks/{name}",
          json={"title": title, "body": body, "tags": [t.strip() for t in tags.split(",") if t.strip()],
                "source": str(path)})
    out.print(f"runbook {name}: {title}")


@runbook.command("install")
def runbook_install(config_path: ConfigOption = None) -> None:
    """Add the runbooks shipped for the platform's own failure modes (dead bot, stuck lane, ...)."""
    config = _config(config_path)
    for item in sorted((files("oshal_ops") / "runbooks").iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".md"):
            continue
        body = item.read_text()
        title = next((line[2:].strip() for line in body.splitlines() if line.startswith("# ")), item.name)
        tags = next((line.split(":", 1)[1] for line in body.splitlines() if line.lower().startswith("tags:")), "")
        _call(config, "PUT", f"/v1/knowledge/runbooks/{item.name[:-3]}",
              json={"title": title, "body": body, "tags": [t.strip() for t in tags.split(",") if t.strip()],
                    "source": f"oshal_ops/runbooks/{item.name}"})
        out.print(f"runbook {item.name[:-3]}: {title}")


@runbook.command("list")
def runbook_list(config_path: ConfigOption = None, as_json: JsonFlag = False) -> None:
    """Every runbook."""
    documents = _call(_config(config_path), "GET", "/v1/knowledge/runbooks")
    items = documents.get("items", documents) if isinstance(documents, dict) else documents
    if as_json:
        sys.stdout.write(json.dumps(items, indent=2, default=str) + "\n")
        return
    table = Table("runbook", "title", "tags")
    for d in items:
        table.add_row(d["slug"], escape(d["title"]), ", ".join(d.get("tags") or []))
    out.print(table if items else "No runbooks. `oshal ops runbook install` adds the shipped ones.")


@runbook.command("search")
def runbook_search(query: str, config_path: ConfigOption = None, as_json: JsonFlag = False) -> None:
    """Runbooks matching QUERY, best first."""
    found = _call(_config(config_path), "GET", "/v1/knowledge/search",
                  params={"q": query, "collection": "runbooks", "limit": 10})
    results = found.get("results", found) if isinstance(found, dict) else found
    if as_json:
        sys.stdout.write(json.dumps(results, indent=2, default=str) + "\n")
        return
    table = Table("runbook", "title", "rank", "snippet")
    for r in results:
        table.add_row(r["slug"], escape(r["title"]), f"{float(r.get('rank', 0)):.3f}",
                      escape(str(r.get("snippet", ""))))
    out.print(table if results else f"No runbook matches {query!r}.")

