"""The ticket state machine: the one transition table, and the operator actions that move tickets.

Postgres enforces the same table (a trigger refuses any other transition and records every one in the
ticket's timeline); migrations copy :data:`oshal.transitions.TRANSITIONS` there, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from oshal.errors import Conflict
from oshal.transitions import TRANSITIONS
from oshal.types import RESTING_STATUSES
from oshal.types import TicketStatus as S


class Action(StrEnum):
    """What a person may do to a ticket: cancel is for any member of its tenant, the rest for operators."""

    APPROVE = "approve"
    REJECT = "reject"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    REQUEUE = "requeue"
    ESCALATE = "escalate"
    CLOSE = "close"


OPERATOR_ACTIONS: tuple[Action, ...] = tuple(action for action in Action if action is not Action.CANCEL)

# What each operator action does from each state it is allowed in.
ACTIONS: Mapping[Action, Mapping[S, S]] = {
    Action.APPROVE: {S.BACKLOG: S.APPROVED, S.APPROVAL_REQUIRED: S.IN_PROGRESS},
    Action.REJECT: {S.APPROVAL_REQUIRED: S.IN_PROGRESS, S.BACKLOG: S.CANCELLED},  # the run decides where it goes
    Action.PAUSE: {s: S.PAUSED for s in (S.BACKLOG, S.APPROVED, S.IN_PROGRESS, S.APPROVAL_REQUIRED,
                                         S.CUSTOMER_ACTION)},
    Action.RESUME: {S.PAUSED: S.IN_PROGRESS},  # back to the state it was paused in; see resume_status
    Action.CANCEL: {s: S.CANCELLED for s in (S.BACKLOG, S.APPROVED, S.IN_PROGRESS, S.APPROVAL_REQUIRED,
                                             S.CUSTOMER_ACTION, S.PAUSED, S.ESCALATED, S.DEAD_LETTER)},
    Action.REQUEUE: {S.DEAD_LETTER: S.IN_PROGRESS, S.FAILED: S.IN_PROGRESS, S.ESCALATED: S.IN_PROGRESS},
    Action.ESCALATE: {S.IN_PROGRESS: S.ESCALATED, S.APPROVAL_REQUIRED: S.ESCALATED, S.CUSTOMER_ACTION: S.ESCALATED},
    Action.CLOSE: {S.CUSTOMER_ACTION: S.DONE, S.ESCALATED: S.DONE},
}

RESTING = RESTING_STATUSES


def allowed(current: str) -> frozenset[S]:
    return TRANSITIONS.get(S(current), frozenset())


def check_transition(ticket: str, current: str, target: str) -> None:
    if S(target) not in allowed(current):
        options = ", ".join(sorted(allowed(current))) or "none (it is final)"
        raise Conflict(f"ticket {ticket} cannot go from {current} to {target}; from {current} it may go to: "
                       f"{options}")


def target_of(action: Action, ticket: str, current: str) -> S:
    """The state ``action`` moves a ticket to from ``current``, or a 409 listing what is possible."""
    moves = ACTIONS[action]
    if S(current) in moves:
        return moves[S(current)]
    possible = sorted(a.value for a, table in ACTIONS.items() if S(current) in table)
    raise Conflict(
        f"cannot {action.value} ticket {ticket}: it is {current}; {action.value} applies to "
        f"{', '.join(sorted(moves))}",
        hint=f"from {current} the possible actions are: {', '.join(possible) or 'none (it is final)'}")
