"""``oshal ops ...``: the operations loop's commands (added to ``oshal`` by its entry point)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="The operations loop: watch endpoints and the platform, open incidents, diagnose, heal.")
