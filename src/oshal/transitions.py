"""The ticket transition table. A leaf, so both the state machine and the migrations read the same one."""

from __future__ import annotations

from collections.abc import Mapping

from oshal.types import TicketStatus as S

TRANSITIONS: Mapping[S, frozenset[S]] = {
    S.BACKLOG: frozenset({S.APPROVED, S.IN_PROGRESS, S.PAUSED, S.CANCELLED}),
    S.APPROVED: frozenset({S.IN_PROGRESS, S.PAUSED, S.CANCELLED}),
    S.IN_PROGRESS: frozenset({S.APPROVAL_REQUIRED, S.CUSTOMER_ACTION, S.PAUSED, S.DONE, S.FAILED, S.ESCALATED,
                              S.DEAD_LETTER, S.CANCELLED}),
    S.APPROVAL_REQUIRED: frozenset({S.IN_PROGRESS, S.PAUSED, S.ESCALATED, S.FAILED, S.CANCELLED, S.DONE,
                                    S.CUSTOMER_ACTION}),
    S.CUSTOMER_ACTION: frozenset({S.IN_PROGRESS, S.DONE, S.ESCALATED, S.PAUSED, S.CANCELLED}),
    S.PAUSED: frozenset({S.BACKLOG, S.APPROVED, S.IN_PROGRESS, S.APPROVAL_REQUIRED, S.CUSTOMER_ACTION,
                         S.CANCELLED}),
    S.ESCALATED: frozenset({S.IN_PROGRESS, S.DONE, S.FAILED, S.CANCELLED}),
    S.FAILED: frozenset({S.IN_PROGRESS}),
    S.DEAD_LETTER: frozenset({S.IN_PROGRESS, S.CANCELLED, S.DONE}),  # done: a late success of another execution
    S.DONE: frozenset(),
    S.CANCELLED: frozenset(),
}


def transition_pairs() -> list[tuple[str, str]]:
    return [(str(a), str(b)) for a, targets in TRANSITIONS.items() for b in sorted(targets)]
