"""Shared identifiers and enums. A leaf: imports nothing internal."""

from __future__ import annotations

import os
import time
import uuid
from enum import StrEnum

_last_ms = 0
_counter = 0


def new_id() -> uuid.UUID:
    """A UUIDv7: time-ordered, so inserts stay index-local and ids sort by creation. Within one millisecond the
    12 bits after the version count up (RFC 9562's monotonic counter), so ids one process makes in a row sort in
    that order too; the low 62 bits stay random."""
    global _last_ms, _counter
    ms = time.time_ns() // 1_000_000
    if ms <= _last_ms:
        ms, _counter = _last_ms, _counter + 1
        if _counter > 0xFFF:  # 4,096 ids in one millisecond: borrow the next one
            ms, _counter = ms + 1, 0
    else:
        _counter = 0
    _last_ms = ms
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76
    value |= _counter << 64
    value |= 0b10 << 62
    value |= int.from_bytes(os.urandom(8), "big") & 0x3FFF_FFFF_FFFF_FFFF
    return uuid.UUID(int=value)


def first_id_at(epoch_ms: int) -> uuid.UUID:
    """The smallest UUIDv7 of that millisecond: every id made from then on sorts at or after it."""
    return uuid.UUID(int=((epoch_ms & 0xFFFF_FFFF_FFFF) << 80) | (0x7 << 76) | (0b10 << 62))


class TicketStatus(StrEnum):
    BACKLOG = "backlog"
    APPROVED = "approved"
    IN_PROGRESS = "in_progress"
    APPROVAL_REQUIRED = "approval_required"
    CUSTOMER_ACTION = "customer_action"
    PAUSED = "paused"
    DONE = "done"
    FAILED = "failed"
    ESCALATED = "escalated"
    DEAD_LETTER = "dead_letter"
    CANCELLED = "cancelled"


class PhaseStatus(StrEnum):
    """A phase is one dispatch of work to a bot's lane; its states are the mesh's, not the ticket's."""

    QUEUED = "queued"
    DISPATCHED = "dispatched"
    DONE = "done"
    FAILED = "failed"
    DEAD_LETTER = "dead_letter"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset(
    {TicketStatus.DONE, TicketStatus.FAILED, TicketStatus.DEAD_LETTER, TicketStatus.CANCELLED}
)
# Where a ticket waits for a person (or is finished): `?wait=` returns and events fire at these.
RESTING_STATUSES = TERMINAL_STATUSES | {TicketStatus.BACKLOG, TicketStatus.APPROVAL_REQUIRED,
                                        TicketStatus.CUSTOMER_ACTION, TicketStatus.PAUSED, TicketStatus.ESCALATED}
# A phase still on its way to a bot.
OPEN_PHASE_STATUSES = (PhaseStatus.QUEUED, PhaseStatus.DISPATCHED)


class Role(StrEnum):
    OPERATOR = "operator"
    MEMBER = "member"
