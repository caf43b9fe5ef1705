"""What travels on the streams: a small dispatch envelope down, a result with usage back."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from oshal import jsontext

FIELD = b"e"
PHASE_FIELD = b"p"  # the phase id again, outside the JSON: fence checks and lane scans read it without decoding


def phase_of(fields: dict[bytes, bytes]) -> str | None:
    """The phase a lane or output-stream entry belongs to (None when it names none)."""
    phase = fields.get(PHASE_FIELD)
    if phase is not None:
        return phase.decode()
    try:  # written before the phase had its own field
        return str(json.loads(fields[FIELD])["p"])
    except (KeyError, ValueError, TypeError):
        return None


@dataclass(frozen=True, slots=True)
class Envelope:
    ticket_id: str
    phase_id: str
    attempt: int
    tenant_id: str
    bot: str
    input: Any
    sig: str = ""  # control-plane HMAC over the routing fields; results must carry it back unchanged
    # The control-plane process where someone waits for this ticket (its token), carried back in the result so the
    # collector can hand that process the finished row. Not signed: it only chooses which control-plane channel
    # the row goes to, and the receiver uses a row only for a ticket of its waiter's own tenant (a node that drops
    # or changes it costs its waiter a read, nothing more).
    waiter: str = ""

    def routing(self) -> bytes:
        return f"{self.ticket_id}|{self.phase_id}|{self.attempt}|{self.tenant_id}|{self.bot}".encode()

    def signed(self, sig: str) -> Envelope:
        return Envelope(self.ticket_id, self.phase_id, self.attempt, self.tenant_id, self.bot, self.input, sig,
                        self.waiter)

    def waited_in(self, waiter: str) -> Envelope:
        return Envelope(self.ticket_id, self.phase_id, self.attempt, self.tenant_id, self.bot, self.input, self.sig,
                        waiter)

    def encode(self) -> dict[bytes, bytes]:
        body = {"t": self.ticket_id, "p": self.phase_id, "a": self.attempt, "n": self.tenant_id,
                "b": self.bot, "i": self.input, "g": self.sig}
        if self.waiter:
            body["w"] = self.waiter
        return {FIELD: jsontext.compact(body).encode(), PHASE_FIELD: self.phase_id.encode()}

    @classmethod
    def decode(cls, fields: dict[bytes, bytes]) -> Envelope:
        body = json.loads(fields[FIELD])
        return cls(body["t"], body["p"], int(body["a"]), body["n"], body["b"], body["i"], body.get("g", ""),
                   _text(body.get("w")))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class CallUsage:
    """One model call as the bot saw it; only the collector turns it into money."""

    call_id: str
    provider: str
    model: str
    input_tokens: int  # uncached input: excludes cached reads and cache writes
    output_tokens: int  # every output token, reasoning included
    cached_read_tokens: int = 0
    cache_write_tokens: int = 0
    reported_cost_micros: int | None = None
    reasoning_tokens: int = 0  # the part of output_tokens spent reasoning (priced apart where a price says so)
    reservation: str | None = None  # the budget reservation this call was made under, settled with its cost
    replayed: bool = False  # answered from a recording: no provider was called, so it costs nothing
    cache_write_1h_tokens: int = 0  # the part of cache_write_tokens written with a one-hour lifetime

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.call_id, "pr": self.provider, "m": self.model, "in": self.input_tokens,
                                "out": self.output_tokens, "cr": self.cached_read_tokens,
                                "cw": self.cache_write_tokens, "rc": self.reported_cost_micros}
        if self.reasoning_tokens:
            body["rs"] = self.reasoning_tokens
        if self.reservation:
            body["rv"] = self.reservation
        if self.replayed:
            body["rp"] = True
        if self.cache_write_1h_tokens:
            body["c1"] = self.cache_write_1h_tokens
        return body

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> CallUsage:
        return cls(str(body["id"]), str(body["pr"]), str(body["m"]), int(body["in"]), int(body["out"]),
                   int(body.get("cr") or 0), int(body.get("cw") or 0),
                   None if body.get("rc") is None else int(body["rc"]), int(body.get("rs") or 0),
                   None if body.get("rv") is None else str(body["rv"]), bool(body.get("rp")),
                   int(body.get("c1") or 0))


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one delivery of an envelope: done, failed, or dead_letter (never ran to the end)."""

    envelope: Envelope
    outcome: str
    output: Any = None
    error: str | None = None
    calls: tuple[CallUsage, ...] = field(default_factory=tuple)
    started_at: float | None = None
    finished_at: float | None = None
    consumer: str = ""
    deliveries: int = 1

    def encode(self) -> dict[bytes, bytes]:
        env = self.envelope
        body = {"t": env.ticket_id, "p": env.phase_id, "a": env.attempt, "n": env.tenant_id, "b": env.bot,
                "g": env.sig, "o": self.outcome, "out": self.output, "err": self.error,
                "c": [c.to_wire() for c in self.calls], "s": self.started_at, "f": self.finished_at,
                "by": self.consumer, "d": self.deliveries}
        if env.waiter:
            body["w"] = env.waiter
        return {FIELD: jsontext.compact(body).encode(), PHASE_FIELD: env.phase_id.encode()}

    @classmethod
    def decode(cls, fields: dict[bytes, bytes]) -> Result:
        body = json.loads(fields[FIELD])
        get = body.get
        calls = get("c")
        env = Envelope(body["t"], body["p"], int(body["a"]), body["n"], body["b"], None, get("g", ""), _text(get("w")))
        return cls(env, body["o"], get("out"), get("err"),
                   tuple([CallUsage.from_wire(c) for c in calls]) if calls else (),
                   get("s"), get("f"), get("by", ""), int(get("d") or 1))
