"""Logging is configured here and only here: one structlog chain, ids bound through contextvars."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any


def _import_structlog_alone() -> None:
    """structlog imports Rich (for tracebacks) and greenlet (for its deprecated thread-locals) whenever they are
    installed: about 7 MB that a node host, which uses neither, would keep for its lifetime. They are hidden while
    structlog is first imported (a ``None`` in ``sys.modules`` reads as "not installed"); the chain below renders
    tracebacks plain, in every process alike. A process that imported them already (the CLI: Typer uses Rich)
    gains nothing from hiding them, so they are left alone there."""
    hidden = [name for name in ("rich", "greenlet") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import structlog  # noqa: F401
    finally:
        for name in hidden:
            del sys.modules[name]


_import_structlog_alone()
import structlog  # noqa: E402

_SECRET_FIELDS = frozenset({"api_key", "key", "password", "secret", "token", "authorization"})


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for field in _SECRET_FIELDS.intersection(event):
        event[field] = "[redacted]"
    return event


def configure(level: str = "info", *, json: bool = False) -> None:
    """Set the processor chain once per process (CLI entry, server start, tests)."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s")
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(
        colors=False, exception_formatter=structlog.dev.plain_traceback)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
