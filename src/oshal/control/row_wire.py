"""A finished ticket's row as JSON, for handing it to a waiter in another control-plane process over Redis.

The row is what ``oshal_ticket`` returns: plain JSON values (its jsonb columns included), UUIDs and timestamps. The
encoding names the UUID and timestamp columns, so the waiter gets back the very types a read of its own returns.
A row holding anything else is not encoded (None): the waiter then reads the ticket itself.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from uuid import UUID

_PLAIN = (str, int, float, bool, dict, list)


def encode(row: dict[str, Any]) -> dict[str, Any] | None:
    """``row`` as a JSON-ready object, or None when a column has a type this encoding does not carry."""
    values: dict[str, Any] = {}
    uuids: list[str] = []
    times: list[str] = []
    for column, value in row.items():
        if value is None or isinstance(value, _PLAIN):
            values[column] = value
        elif isinstance(value, UUID):
            values[column] = str(value)
            uuids.append(column)
        elif isinstance(value, dt.datetime) and value.tzinfo is not None:
            values[column] = value.isoformat()
            times.append(column)
        else:
            return None
    return {"v": values, "u": uuids, "t": times}


def decode(wire: Any) -> dict[str, Any] | None:
    """The row :func:`encode` wrote, or None when ``wire`` is not one."""
    try:
        row = dict(wire["v"])
        for column in wire["u"]:
            row[column] = UUID(row[column])
        for column in wire["t"]:
            row[column] = dt.datetime.fromisoformat(row[column])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return row


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
