"""Ids: UUIDv7, unique, and in the order one process made them, even many within one millisecond."""

from __future__ import annotations

import uuid

from oshal.types import new_id


def test_ids_made_in_a_row_sort_in_that_order_and_never_repeat() -> None:
    ids = [new_id() for _ in range(20_000)]  # thousands land in the same millisecond
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids[:100])
