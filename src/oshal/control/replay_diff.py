"""What a replay did differently from the ticket it replayed: its calls, its result, and what it cost."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from oshal import jsontext
from oshal.errors import Invalid, NotFound
from oshal.store import ledger as ledger_repo
from oshal.store import recordings as recordings_repo
from oshal.store import tickets as tickets_repo
from oshal.store.db import Database
from oshal.types import TERMINAL_STATUSES, TicketStatus

_SHOWN = 2000  # characters of a differing request shown in the diff


async def replay_diff(db: Database, tenant: UUID, replay: UUID) -> dict[str, Any]:
    async with db.tenant(tenant) as conn:
        [mine] = await _ticket(conn, replay)
        original_id = mine["replay_of"]
        if original_id is None:
            raise Invalid(f"ticket {replay} is not a replay", hint="create one with `oshal ticket replay ID`")
        [original] = await _ticket(conn, original_id)
        ours = {_key(r): r for r in await recordings_repo.of_ticket(conn, replay)}
        theirs = {_key(r): r for r in await recordings_repo.of_ticket(conn, original_id)}
        spend = await ledger_repo.ticket_spend(conn, replay)
    calls = []
    for key in sorted(set(ours) | set(theirs)):
        a, b = theirs.get(key), ours.get(key)
        if a is None or b is None or _canonical(a["request"]) != _canonical(b["request"]):
            calls.append({"phase": key[0], "step": key[1], "kind": key[2], "seq": key[3],
                          "original": _shown(a["request"]) if a else None,
                          "replay": _shown(b["request"]) if b else None})
    same_result = mine["status"] == original["status"] and _canonical(mine["result"]) == _canonical(original["result"])
    finished = mine["status"] in TERMINAL_STATUSES | {TicketStatus.ESCALATED, TicketStatus.CUSTOMER_ACTION}
    return {
        "replay": str(replay), "original": str(original_id), "finished": finished,
        "identical": finished and same_result and not calls,
        "status": {"original": original["status"], "replay": mine["status"]},
        "result": None if same_result else {"original": original["result"], "replay": mine["result"]},
        "calls": {"original": len(theirs), "replay": len(ours), "differing": calls},
        "spend": {"calls": int(spend["calls"]), "cost_micros": int(spend["cost"]), "live_calls": int(spend["live"])},
    }


async def _ticket(conn: Any, ticket: UUID) -> list[dict[str, Any]]:
    row = await tickets_repo.replay_source(conn, ticket)
    if row is None:
        raise NotFound(f"ticket {ticket} not found")
    return [{**row, "result": await recordings_repo.ticket_result(conn, ticket)}]


def _key(row: dict[str, Any]) -> tuple[int, str, str, int]:
    return (int(row["phase_seq"]), str(row["step"]), str(row["kind"]), int(row["seq"]))


def _canonical(value: Any) -> str:
    return jsontext.canonical(value)


def _shown(value: Any) -> str:
    text = _canonical(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"
