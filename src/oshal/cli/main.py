"""Entry point of the ``oshal`` command.

A node host (``oshal node`` without a subcommand, what ``oshal up`` runs per node group) gets a command line of
its own that imports none of the other command groups or the applications' CLIs: it stays up for the platform's
lifetime, and what it imported stays in its memory (``python -X importtime -m oshal.cli.main node --help``).
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer
from rich.console import Console
from rich.markup import escape

from oshal import logs
from oshal.cli import platform
from oshal.cli.exits import exit_code_for
from oshal.errors import OshalError

_HELP = "Run a fleet of AI bots as accountable workers. See README.md for the exit codes."
NODE_SUBCOMMANDS = frozenset({"enroll", "join", "list", "revoke", "resume"})


def build() -> typer.Typer:
    """The whole command line: the platform's command groups and the installed applications'."""
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

    root = typer.Typer(name="oshal", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                       help=_HELP)
    root.command()(platform.up)
    root.command()(platform.serve)
    node_enroll.register(root, platform.node)
    for group in (tickets, admin, fleet, connectors, catalog, workflows, schedules, security, budgets, diagram,
                  deploy):
        group.register(root)
    _add_applications(root)
    return root


def _node_host() -> typer.Typer:
    """``oshal node [OPTIONS]`` alone: the node host (its options and --help are the full command line's)."""
    root = typer.Typer(name="oshal", add_completion=False, pretty_exceptions_enable=False, help=_HELP)
    root.command(name="node")(platform.node)
    root.callback()(lambda: None)  # keep "node" a subcommand, as in the full command line
    return root


def runs_node_host(args: list[str]) -> bool:
    """Whether ``args`` start the node host itself (``oshal node`` with options only, no help requested)."""
    return (args[:1] == ["node"] and not any(a in NODE_SUBCOMMANDS for a in args[1:])
            and not any(a in ("--help", "-h") for a in args[1:]))


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


def main() -> None:
    logs.configure("warning")
    app = _node_host() if runs_node_host(sys.argv[1:]) else build()
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
