"""Exit codes that mean something, shared by every command (documented in README)."""

from __future__ import annotations

from enum import IntEnum

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
