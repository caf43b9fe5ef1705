"""Entry point of the ``oshal`` command."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer
from rich.console import Console
from rich.markup import escape

from oshal import logs
from oshal.cli import (
    admin,
    budgets,
    catalog,
    connectors,
    deploy,
    diagram,
    fleet,
    node_enroll,
    platform,
    schedules,
    security,
    tickets,
    workflows,
)
from oshal.cli.exits import exit_code_for
from oshal.errors import OshalError

app = typer.Typer(
    name="oshal", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Run a fleet of AI bots as accountable workers. See README.md for the exit codes.",
)
app.command()(platform.up)
app.command()(platform.serve)
node_enroll.register(app, platform.node)
tickets.register(app)
admin.register(app)
fleet.register(app)
connectors.register(app)
catalog.register(app)
workflows.register(app)
schedules.register(app)
security.register(app)
budgets.register(app)
diagram.register(app)
deploy.register(app)


def _add_applications(root: typer.Typer) -> None:
    """Each installed application's command group (entry point group ``oshal.commands``), e.g. ``oshal ops``.
    One that cannot be loaded is named on stderr and left out; the platform's own commands still work."""
    for entry in sorted(entry_points(group="oshal.commands"), key=lambda e: e.name):
        try:
            group = entry.load()
        except Exception as e:  # an application's import error must not take the platform's CLI down
            Console(stderr=True).print(f"[yellow]warning:[/] the {escape(entry.name)} commands could not be "
                                       f"loaded: {escape(str(e))}")
            continue
        root.add_typer(group, name=entry.name)


_add_applications(app)


def main() -> None:
    logs.configure("warning")
    try:
        app()
    except OshalError as error:
        console = Console(stderr=True)
        console.print(f"[bold red]error:[/] {escape(error.message)}")
        if error.hint:
            console.print(f"[dim]hint:[/] {escape(error.hint)}")
        sys.exit(int(exit_code_for(error)))


if __name__ == "__main__":
    main()
