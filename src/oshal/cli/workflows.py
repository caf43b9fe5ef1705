"""``oshal workflow list|show|publish|generate``: ticket types and their workflow definitions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from oshal.cli.client import Client, JsonFlag, WideFlag, emit_json, err, out, print_rows, report, request
from oshal.errors import Invalid

workflow_app = typer.Typer(name="workflow", no_args_is_help=True,
                           help="Ticket types: list and show workflow definitions, publish new versions, generate.")

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Workflow (ticket type) name.")]


@workflow_app.command("list")
def list_cmd(wide: WideFlag = False, as_json: JsonFlag = False) -> None:
    """Every ticket type with its newest version."""
    rows: list[dict[str, Any]] = request("GET", "/v1/workflows")
    print_rows(rows, Table("name", "version", "source", "title"), lambda row: (
        row["name"], str(row["version"]), "built-in" if row["builtin"] else "tenant", escape(row.get("title") or "")),
        wide=wide, as_json=as_json)


@workflow_app.command()
def show(name: NameArg, version: Annotated[int | None, typer.Option("--version", min=1)] = None,
         as_json: JsonFlag = False) -> None:
    """One definition: its steps as a preview and as YAML, and the versions published."""
    data: dict[str, Any] = request("GET", f"/v1/workflows/{name}", **({"version": version} if version else {}))
    if as_json:
        emit_json(data)
        return
    out.print(f"[bold]{data['name']}[/] version {data['version']} "
              f"(versions: {', '.join(str(v['version']) for v in data['versions'])})")
    out.print(escape(data["preview"]))
    out.print(Syntax(yaml.safe_dump(data["definition"], sort_keys=False), "yaml"))


@workflow_app.command()
def publish(path: Annotated[Path, typer.Argument(metavar="FILE", help="A YAML definition.")],
            as_json: JsonFlag = False) -> None:
    """Operator only: publish a definition as the next version of its name (running tickets keep theirs)."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise Invalid(f"cannot read {path}: {e}") from e
    result: dict[str, Any] = request("POST", "/v1/workflows", {"definition": document})
    report(result, as_json, f"published [bold]{result['name']}[/] version {result['version']}"
           if result["published"] else f"not published: {result.get('reason')}")


@workflow_app.command()
def generate(
    description: Annotated[str, typer.Argument(metavar="DESCRIPTION", help="The process, in words.")],
    name: Annotated[str | None, typer.Option("--name", help="Name of the ticket type to create.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Publish without asking.")] = False,
    bot: Annotated[str | None, typer.Option(
        "--bot", help="A model-backed bot writes it (structured output); default: the offline generator.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Generate a workflow from a description; shows the preview and diff, publishes only on confirmation (asked on a
    terminal; without one, only with --yes)."""
    with Client.from_settings() as api:
        body = {"description": description, "name": name, "publish": False, "bot": bot}
        draft: dict[str, Any] = api.post("/v1/workflows/generate", body)
        if not draft["valid"]:
            raise Invalid(f"the generated workflow does not validate: {draft['error']}", hint=draft.get("hint"))
        if not as_json:
            out.print(escape(draft["preview"]))
            out.print(Syntax(draft["diff"], "diff"))
        publish_it = yes or (not as_json and _confirmed(f"publish as ticket type {draft['name']}?"))
        if publish_it:  # exactly what was previewed (a model-backed bot is not asked twice)
            draft |= api.post("/v1/workflows", {"definition": draft["definition"]})
    if as_json:
        emit_json(draft)
    elif draft.get("published"):
        out.print(f"published [bold]{draft['name']}[/] version {draft['version']}")
    elif not sys.stdin.isatty():
        err.print("not published: no terminal to confirm on; run it again with --yes to publish it")
    else:
        err.print("not published")


def _confirmed(question: str) -> bool:
    """Ask on a terminal; without one (a script, a pipe, CI) never prompt: the answer is no (--yes publishes)."""
    return sys.stdin.isatty() and typer.confirm(question)


def register(app: typer.Typer) -> None:
    app.add_typer(workflow_app, name="workflow")
