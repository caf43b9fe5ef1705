"""The scheduled daily recap: a platform schedule files a recap *request* and the desk service answers it.

The schedule (``/v1/schedules``, cron in the exchange's time zone) creates, on its timetable, a ticket to the
``trade-recap`` bot whose input is only ``{"request": "daily-recap", "desk": NAME}``; the bot acknowledges it (it
has no books to write from). The desk service (``oshal trade desk serve``) looks for the requests of its desk, oldest
first, and answers each by filing the recap of the desk's last booked session — the recap is one ticket
per desk and day however often it is asked for — then records the answer as ``recap-requests/<desk>.<ticket>``.
A request is answered once; a restarted service answers what it had not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oshal_trading.desk import RECAP_BOT, DeskService
from oshal_trading.platform import PlatformAPI

REQUEST = "daily-recap"
DEFAULT_CRON = "30 16 * * 1-5"  # half an hour after the New York close, on weekdays
DEFAULT_TIMEZONE = "America/New_York"
REFUSED = frozenset({"failed", "dead_letter", "cancelled"})


def schedule_name(desk: str) -> str:
    return f"desk-recap-{desk}"


def request_input(desk: str) -> dict[str, Any]:
    return {"request": REQUEST, "desk": desk}


async def schedule_recap(api: PlatformAPI, desk: str, *, cron: str = DEFAULT_CRON,
                         timezone: str = DEFAULT_TIMEZONE) -> tuple[str, dict[str, Any]]:
    """Create the desk's recap schedule, or set its timetable if it exists: ("created" | "updated", schedule)."""
    name = schedule_name(desk)
    status, body = await api.request("POST", "/v1/schedules", json={
        "name": name, "cron": cron, "timezone": timezone, "bot": RECAP_BOT, "input": request_input(desk),
        "policy": "catch_up_once"}, ok=(409,))
    if status != 409:
        return "created", body
    _, body = await api.request("PATCH", f"/v1/schedules/{name}", json={
        "cron": cron, "timezone": timezone, "input": request_input(desk), "enabled": True})
    return "updated", body


@dataclass(frozen=True, slots=True)
class Answer:
    request: str  # the request's ticket
    day: str | None  # the session recapped (None: the desk has none booked yet)
    recap_ticket: str | None


async def pending_requests(service: DeskService) -> list[dict[str, Any]]:
    """The desk's recap requests not answered yet, oldest first (the bot's acknowledgement is not waited for)."""
    desk = service.config.name
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = await service.api.get("/v1/tickets", bot=RECAP_BOT, limit=200, cursor=cursor)
        for ticket in page["items"]:
            given = ticket.get("input")
            if not isinstance(given, dict) or given.get("request") != REQUEST or given.get("desk") != desk:
                continue
            if ticket["status"] in REFUSED:  # the bot refused it (a bad request) or an operator cancelled it
                continue
            if await service.records.get("recap-requests", f"{desk}.{ticket['id']}") is not None:
                return found[::-1]  # answered oldest first, so everything older is answered too
            found.append(ticket)
        cursor = page.get("next_cursor")
        if cursor is None:
            return found[::-1]


async def answer_requests(service: DeskService) -> list[Answer]:
    """Answer every pending request with the recap of the last booked session (filed once per desk and day)."""
    await service.rebuild()  # sessions booked by another process (`oshal trade desk run`) since the last round
    answers = []
    for ticket in await pending_requests(service):
        desk = service.config.name
        if service.books.curve:
            day = service.books.curve[-1][0]
            filed = await service.recap(day)
            answer = Answer(str(ticket["id"]), day.isoformat(), str(filed["ticket"]))
        else:
            answer = Answer(str(ticket["id"]), None, None)
        await service.records.put("recap-requests", f"{desk}.{ticket['id']}", {
            "desk": desk, "request": answer.request, "day": answer.day, "recap_ticket": answer.recap_ticket,
            "requested_at": ticket.get("created_at")})
        answers.append(answer)
    return answers
