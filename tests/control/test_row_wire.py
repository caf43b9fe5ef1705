"""A finished ticket's row survives the trip to another control-plane process with its types; anything the
encoding does not carry is refused (the waiter then reads the ticket), and a malformed message decodes to None."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from uuid import uuid4
from zoneinfo import ZoneInfo

from oshal.control import row_wire


def _trip(row: dict[str, object]) -> dict[str, object] | None:
    wire = row_wire.encode(row)
    assert wire is not None
    return row_wire.decode(json.loads(row_wire.dumps(wire)))


def test_a_row_comes_back_with_the_same_values_and_types() -> None:
    row: dict[str, object] = {
        "id": uuid4(), "tenant_id": uuid4(), "parent_id": None, "status": "done", "attempt": 2, "cost_micros": 0,
        "created_at": dt.datetime(2026, 12, 6, 4, 5, 6, 789012, tzinfo=dt.UTC),
        "finished_at": dt.datetime(2026, 12, 6, 5, 5, 6, 1, tzinfo=ZoneInfo("Europe/Paris")),
        "input": {"n": 1, "nested": [1.5, True, None, {"id": "not-a-uuid-column"}]}, "result": [1, "two"],
        "ratio": 0.25, "flag": False,
    }
    back = _trip(row)
    assert back == row
    assert back is not None and {k: type(v) for k, v in back.items()} == {k: type(v) for k, v in row.items()}
    assert back["finished_at"].utcoffset() == row["finished_at"].utcoffset()  # type: ignore[union-attr]


def test_a_value_the_encoding_does_not_carry_refuses_the_row() -> None:
    assert row_wire.encode({"id": uuid4(), "amount": Decimal("1.5")}) is None
    assert row_wire.encode({"at": dt.datetime(2026, 1, 1)}) is None  # no time zone: not what Postgres returns
    assert row_wire.encode({"day": dt.date(2026, 1, 1)}) is None


def test_a_malformed_message_decodes_to_none() -> None:
    for wire in (None, [], {}, {"v": {"id": "x"}, "u": ["id"], "t": []}, {"v": {"at": "soon"}, "u": [], "t": ["at"]},
                 {"v": {}, "u": ["missing"], "t": []}, {"v": 5, "u": [], "t": []}):
        assert row_wire.decode(wire) is None
