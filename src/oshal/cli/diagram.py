"""``oshal diagram VIEW``: one view of the live platform as Mermaid, Graphviz DOT or JSON (platform operators)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from oshal.cli.client import Client, out
from oshal.topology.render import FORMATS
from oshal.topology.views import VIEWS

ViewName = StrEnum("ViewName", {name: name for name in VIEWS})  # type: ignore[misc]
FormatName = StrEnum("FormatName", {name: name for name in FORMATS})  # type: ignore[misc]
_MERMAID = FormatName("mermaid")


def diagram(
    view: Annotated[ViewName, typer.Argument(help="system, deployment, routing, integration, workflows, security "
                                                  "or business.")],
    fmt: Annotated[FormatName, typer.Option("--format", help="mermaid, dot or json.")] = _MERMAID,
    output: Annotated[Path | None, typer.Option("--out", help="Write here (default: stdout).")] = None,
    ticket: Annotated[str | None, typer.Option("--ticket", help="routing: the hops and timings of this ticket.")
                      ] = None,
) -> None:
    """Draw one view of the platform from its live state (needs a platform operator key)."""
    path, params = f"/v1/topology/{view.value}", {"format": fmt.value, "ticket": ticket}
    with Client.from_settings() as api:
        response = api.raw("GET", path, params=params)
        if response.status_code >= 400:
            api.call("GET", path, params=params)  # raises the API's error
    if output is None:
        typer.echo(response.text, nl=False)
    else:
        output.write_text(response.text)
        out.print(f"{view.value} view written to {output}")


def register(app: typer.Typer) -> None:
    app.command("diagram")(diagram)
