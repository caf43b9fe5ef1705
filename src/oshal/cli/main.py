"""Entry point of the ``oshal`` command.

A plain node-host run (``oshal node [options]``, no subcommand) gets a CLI of that one command: it runs once per bot,
so thousands of times on a large fleet, and building every other command first (their modules and everything they
import) cost each such process 17 MB of its 79 MB idle RSS (measured with bench/scale.py; see docs/scaling.md).
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from oshal import logs
from oshal.cli import platform
from oshal.cli.exits import exit_code_for
from oshal.errors import OshalError

# `oshal node`'s subcommands (cli/node_enroll.py registers them; a test checks that the two lists agree). A command
# line naming one of them, or asking for help, gets the whole CLI.
NODE_SUBCOMMANDS = frozenset({"enroll", "join", "list", "revoke", "resume"})


def build() -> typer.Typer:
    """The whole CLI: the platform's commands and each installed application's."""
    from oshal.cli import (
        admin,
        budgets,
        catalog,
        connectors,
        deploy,
        diagram,
        fleet,
        node_enroll,
        schedules,
        security,
        tickets,
        workflows,
    )

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
    _add_applications(app)
    return app


def _add_applications(root: typer.Typer) -> None:
    """Each installed application's command group (entry point group ``oshal.commands``), e.g. ``oshal ops``.
    One that cannot be loaded is named on stderr and left out; the platform's own commands still work."""
    from importlib.metadata import entry_points

    for entry in sorted(entry_points(group="oshal.commands"), key=lambda e: e.name):
        try:
            group = entry.load()
        except Exception as e:  # an application's import error must not take the platform's CLI down
            Console(stderr=True).print(f"[yellow]warning:[/] the {escape(entry.name)} commands could not be "
                                       f"loaded: {escape(str(e))}")
            continue
        root.add_typer(group, name=entry.name)


def is_node_host_run(args: list[str]) -> bool:
    """``oshal node`` itself (its options only), not one of its subcommands nor a request for help."""
    return args[:1] == ["node"] and not any(a in NODE_SUBCOMMANDS or a in ("--help", "-h") for a in args[1:])


def node_host_cli() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command(name="node")(platform.node)
    return app


def main() -> None:
    logs.configure("warning")
    args = sys.argv[1:]
    try:
        if is_node_host_run(args):
            node_host_cli()(args=args[1:], prog_name="oshal node")
        else:
            build()()
    except OshalError as error:
        console = Console(stderr=True)
        console.print(f"[bold red]error:[/] {escape(error.message)}")
        if error.hint:
            console.print(f"[dim]hint:[/] {escape(error.hint)}")
        sys.exit(int(exit_code_for(error)))


if __name__ == "__main__":
    main()
