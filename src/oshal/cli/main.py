"""Entry point of the ``oshal`` command.

A node host (``oshal node`` without a subcommand, what ``oshal up`` runs per node group) imports none of the other
command groups or the applications' CLIs, and reads its options without Typer (``cli/node_host.py``): it stays up
for the platform's lifetime, and what it imported stays in its memory. Hence the imports inside the functions here.
See what an idle node host holds with ``python -X importtime -m oshal.cli.main node --bot echo`` and
``bench/node_memory.py``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from oshal import logs
from oshal.errors import OshalError

if TYPE_CHECKING:
    import typer

_HELP = "Run a fleet of AI bots as accountable workers. See README.md for the exit codes."
NODE_SUBCOMMANDS = frozenset({"enroll", "join", "list", "revoke", "resume"})


def build() -> typer.Typer:
    """The whole command line: the platform's command groups and the installed applications'."""
    import typer

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
    import typer

    from oshal.cli import platform

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
    from importlib.metadata import entry_points

    from rich.console import Console
    from rich.markup import escape

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
    args = sys.argv[1:]
    node = runs_node_host(args)
    if node:
        from oshal.cli import node_host

        options = node_host.parse(args[1:])
        if options is not None:
            node_host.main(options)
            return
    app = _node_host() if node else build()
    try:
        app()
    except OshalError as error:
        from oshal.cli.exits import fail

        fail(error)


if __name__ == "__main__":
    main()
