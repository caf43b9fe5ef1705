"""A small synchronous client for the oshal API, plus the output helpers every CLI command shares.

HTTP failures become :class:`~oshal.errors.OshalError` subclasses, so ``oshal.cli.main`` prints them and picks
the exit code; commands never print errors themselves.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console, RenderableType
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from oshal.errors import (
    ConfigError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    OshalError,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from oshal.settings import Settings
from oshal.types import RESTING_STATUSES, TERMINAL_STATUSES, TicketStatus

TERMINAL = RESTING_STATUSES  # where a ticket rests: finished, or waiting for a person (a wait ends at these)
FAILED = TERMINAL_STATUSES - {TicketStatus.DONE}
SERVER_WAIT_CAP_S = 60.0
_TIMEOUT_S = 30.0

_BY_STATUS: dict[int, type[OshalError]] = {
    400: Invalid, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 413: TooLarge,
    422: Invalid, 429: Unavailable, 502: Unavailable, 503: Unavailable, 504: Unavailable,
}

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document to stdout, not tables.")]
WideFlag = Annotated[bool, typer.Option(
    "--wide", help="Whole ids and values: nothing is cut to fit the terminal (lines may be wider than it).")]

out = Console()
err = Console(stderr=True)
_UNLIMITED = 1_000_000  # a table renders at its natural width, never wider


def emit_json(document: Any) -> None:
    """Write exactly one JSON document to stdout (no colour, no wrapping)."""
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def usd(micros: int) -> str:
    return f"${micros / 1_000_000:.6f}"


def when(value: object) -> str:
    """An API timestamp to the second, for tables (--json keeps the full value)."""
    return str(value or "-")[:19].replace("T", " ")


def short(value: object, wide: bool = False) -> str:
    """A UUID's first block is enough to tell rows apart on screen; --wide and --json have the full id."""
    return str(value) if wide else str(value).split("-", 1)[0]


def cut(text: str, limit: int, wide: bool) -> str:
    """A long free-text cell cut to ``limit`` characters, unless --wide asked for whole values."""
    return text if wide else text[:limit]


def print_table(table: RenderableType, wide: bool = False) -> None:
    """Print a table to fit the terminal, or with --wide at its natural width so no id or value is cut."""
    (Console(width=_UNLIMITED) if wide else out).print(table)


def report(document: Any, as_json: bool, text: RenderableType, next_step: str | None = None) -> None:
    """A command's answer: ``document`` as JSON with --json; else ``text`` on stdout and, dimmed on stderr, what
    to do next."""
    if as_json:
        emit_json(document)
        return
    out.print(text)
    if next_step:
        err.print(f"[dim]{next_step}[/]")


def print_rows(rows: list[dict[str, Any]], table: Table, cells: Callable[[dict[str, Any]], Sequence[RenderableType]],
               *, wide: bool, as_json: bool) -> None:
    """A list command's answer: ``rows`` as JSON with --json; else ``table`` with the ``cells`` of each row."""
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        table.add_row(*cells(row))
    print_table(table, wide)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as e:
        first = e.errors()[0]
        name = ".".join(str(p) for p in first.get("loc", ()))
        raise ConfigError(f"invalid setting OSHAL_{name.upper()}: {first.get('msg')}",
                          hint="fix or unset that environment variable") from e


def _error_from(response: httpx.Response, what: str) -> OshalError:
    try:
        body = response.json()
    except ValueError:
        body = None
    message = hint = None
    if isinstance(body, dict):
        message, hint = body.get("message"), body.get("hint")
    message = str(message or f"{what} answered HTTP {response.status_code}")
    kind = _BY_STATUS.get(response.status_code)
    if kind is None:
        return OshalError(f"{message} (HTTP {response.status_code})", hint=hint or "see the API server's log")
    return kind(message, hint=str(hint) if hint else None)


class Client:
    """One API base URL and (optionally) one key. Use as a context manager."""

    def __init__(self, url: str, key: str | None) -> None:
        self.url = url.rstrip("/")
        self.key = key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=_TIMEOUT_S)

    @classmethod
    def from_settings(cls, *, require_key: bool = True) -> Client:
        """OSHAL_API_URL and OSHAL_API_KEY, falling back to the admin key file that `oshal up` writes."""
        settings = load_settings()
        key = settings.api_key
        if not key and settings.admin_key_file.is_file():
            key = settings.admin_key_file.read_text().strip() or None
        if not key and require_key:
            raise ConfigError(f"no API key: OSHAL_API_KEY is unset and {settings.admin_key_file} is missing",
                              hint="run `make up` or set OSHAL_API_KEY")
        return cls(settings.api_url, key)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def raw(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None,
            timeout: float | None = None) -> httpx.Response:
        """Send one request; only transport failures raise here (as Unavailable)."""
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        try:
            return self._http.request(method, path, params=query, json=body,
                                      timeout=_TIMEOUT_S if timeout is None else timeout)
        except httpx.ConnectError as e:
            raise Unavailable(f"cannot reach the oshal API at {self.url}; is `make up` running?",
                              hint="start it with `make up`, or point OSHAL_API_URL at it") from e
        except httpx.TimeoutException as e:
            raise Unavailable(f"the oshal API at {self.url} did not answer {method} {path} in time",
                              hint="retry; check the API server's health with `oshal status`") from e
        except httpx.TransportError as e:
            raise Unavailable(f"talking to the oshal API at {self.url} failed: {e}",
                              hint="check OSHAL_API_URL and that the API is running") from e

    def call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None,
             timeout: float | None = None, anonymous: bool = False) -> Any:
        """Send one request and return its JSON body, or raise the OshalError its status means. ``anonymous``: a
        route that takes no key (a node's join, whose code is its credential)."""
        if self.key is None and not anonymous and not path.startswith(("/healthz", "/readyz")):
            raise ConfigError("no API key configured", hint="run `make up` or set OSHAL_API_KEY")
        response = self.raw(method, path, params=params, body=body, timeout=timeout)
        if response.status_code >= 400:
            raise _error_from(response, f"{method} {path}")
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("POST", path, body=body)

    def delete(self, path: str, **params: Any) -> Any:
        return self.call("DELETE", path, params=params)

    def pages(self, path: str, *, limit: int, **params: Any) -> Iterator[dict[str, Any]]:
        """Follow next_cursor from the first page to the last."""
        cursor = params.pop("cursor", None)
        while True:
            page: dict[str, Any] = self.get(path, limit=limit, cursor=cursor, **params)
            yield page
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def wait_ticket(self, ticket_id: str, timeout_s: float,
                    on_change: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Block until the ticket is terminal or ``timeout_s`` passed, in server waits of at most 60 s."""
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while True:
            remaining = deadline - time.monotonic()
            chunk = min(max(remaining, 0.0), SERVER_WAIT_CAP_S)
            ticket: dict[str, Any] = self.call("GET", f"/v1/tickets/{ticket_id}",
                                               params={"wait": round(chunk, 3)}, timeout=chunk + _TIMEOUT_S)
            if on_change is not None:
                on_change(ticket)
            if ticket["status"] in TERMINAL or deadline - time.monotonic() <= 0:
                return ticket


def request(method: str, path: str, body: Any = None, **params: Any) -> Any:
    """A command's one API call, with the configured URL and key: its JSON body, or the OshalError it means."""
    with Client.from_settings() as api:
        return api.call(method, path, params=params, body=body)


@contextmanager
def spinner(text: str) -> Iterator[Callable[[str], None]]:
    """A transient spinner with elapsed time on stderr (stdout stays clean for --json); yields an updater.

    Only on a terminal: when stderr is a pipe or a file, nothing is drawn.
    """
    if not err.is_terminal:
        yield lambda description: None
        return
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                        console=err, transient=True)
    task = progress.add_task(text)
    with progress:
        yield lambda description: progress.update(task, description=description)
