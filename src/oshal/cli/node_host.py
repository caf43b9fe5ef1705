"""``oshal node [OPTIONS]``, the node host itself, read without Typer (and so without Click and Rich).

A node host stays up for the platform's lifetime, and what it imported stays in its memory: Typer, Click and Rich
are about 5 MB of it. The node host's options are few and plain, so they are read here. Anything this reader is not
sure of (an unknown option, a missing or odd value, a replica count out of range) is left to the Typer command line
of ``platform.node``, which reports it exactly as before; ``--help`` never reaches here (see ``main.runs_node_host``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from oshal.errors import OshalError

_PATHS = {"--fleet": "fleet", "--credentials": "credentials", "--tokens": "tokens"}
_MIN_REPLICAS, _MAX_REPLICAS = 1, 64  # as platform.node declares them


@dataclass
class NodeOptions:
    fleet: Path | None = None
    bots: list[str] = field(default_factory=list)
    credentials: Path | None = None
    tokens: Path | None = None
    replicas: int | None = None
    check: bool = False


def parse(args: list[str]) -> NodeOptions | None:
    """The options after ``node``; None when they are anything but plainly right (Typer then says what is wrong)."""
    options = NodeOptions()
    rest = list(args)
    while rest:
        name, equals, value = rest.pop(0).partition("=")
        if name == "--check" and not equals:
            options.check = True
            continue
        if name not in (*_PATHS, "--bot", "--replicas"):
            return None
        if not equals:
            if not rest:
                return None
            value = rest.pop(0)
        if not value or value.startswith("-"):
            return None
        if name == "--bot":
            options.bots.append(value)
        elif name == "--replicas":
            if not value.isdigit() or not _MIN_REPLICAS <= int(value) <= _MAX_REPLICAS:
                return None
            options.replicas = int(value)
        else:
            setattr(options, _PATHS[name], Path(value))
    return options


def run(options: NodeOptions) -> None:
    """What ``platform.node`` does for the same options."""
    from oshal.launcher.host import check_node, run_node

    if options.check:
        alive = check_node()
        print(f"alive: pid {alive.pid}, bots {', '.join(alive.bots)}, {alive.workers} workers, last written "
              f"{alive.age_s:.1f}s ago")
        return
    run_node(options.fleet, options.bots or None, options.credentials, options.tokens, options.replicas)


def main(options: NodeOptions) -> None:
    try:
        run(options)
    except OshalError as error:
        from oshal.cli.exits import fail

        fail(error)
    except KeyboardInterrupt:  # as Click ends a command interrupted before the node's own signal handlers are set
        print("Aborted!", file=sys.stderr)
        sys.exit(1)
