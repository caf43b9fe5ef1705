"""Exit codes that mean something, shared by every command (documented in README)."""

from __future__ import annotations

import sys
from enum import IntEnum
from typing import NoReturn

from oshal.errors import ConfigError, Conflict, Forbidden, Invalid, NotFound, OshalError, Unauthorized, Unavailable


class Exit(IntEnum):
    OK = 0
    FAILED = 1          # the work itself failed (ticket failed / dead_letter / cancelled)
    USAGE = 2           # bad command line (Typer's own code)
    INVALID = 3         # the API refused the input (4xx validation)
    NOT_FOUND = 4
    AUTH = 5            # missing, invalid or insufficient key (401/403)
    CONFLICT = 6
    UNAVAILABLE = 7     # cannot reach the API or a backing service
    TIMEOUT = 8         # waited, and the ticket was still not finished
    CONFIG = 9


def exit_code_for(error: OshalError) -> Exit:
    for kind, code in ((Invalid, Exit.INVALID), (NotFound, Exit.NOT_FOUND), (Unauthorized, Exit.AUTH),
                       (Forbidden, Exit.AUTH), (Conflict, Exit.CONFLICT), (Unavailable, Exit.UNAVAILABLE),
                       (ConfigError, Exit.CONFIG)):
        if isinstance(error, kind):
            return code
    return Exit.FAILED


def fail(error: OshalError) -> NoReturn:
    """Say what went wrong (and how to fix it, when the error knows) on stderr, and exit with the error's code."""
    from rich.console import Console  # here: the node host imports Rich only when it has an error to show
    from rich.markup import escape

    console = Console(stderr=True)
    console.print(f"[bold red]error:[/] {escape(error.message)}")
    if error.hint:
        console.print(f"[dim]hint:[/] {escape(error.hint)}")
    sys.exit(int(exit_code_for(error)))
