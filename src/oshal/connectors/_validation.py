"""Readable JSON Schema validation errors, shared by the HTTP and MCP runtimes."""

from __future__ import annotations

from jsonschema import ValidationError


def describe(error: ValidationError) -> str:
    """The validator's message, with a long offending value replaced by its kind and size (never echoed)."""
    message, shown = error.message, repr(error.instance)
    if len(shown) > 60:
        value = error.instance
        size = f" ({len(value)} {'characters' if isinstance(value, str) else 'items'})" if isinstance(
            value, str | list | dict) else ""
        message = message.replace(shown, f"the given {type(value).__name__}{size}")
    return message if len(message) <= 300 else message[:297] + "..."
