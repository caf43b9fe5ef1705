"""Budget overhead: a model call's reservation (the bot's POST /v1/models/begin under budgets at every level) and
its settlement (inside the collector's ledger statement), against the same statement without any budget.

Needs a running platform whose fleet has the ``hold`` bot (bench/run.py adds it), so reservations are made for an
open ticket exactly as a bot would make them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from oshal.launcher.prepare import attach
from oshal.mesh.envelopes import Envelope
from oshal.mesh.signing import DispatchSigner
from oshal.settings import Settings
from tools import _pct, _phase_of  # bench/tools.py


def set_budgets(http: httpx.Client, bots: list[str], *, limit_micros: int = 10**12) -> None:
    """A tenant budget, a budget per bot and one per ticket type, each per day, month and lifetime."""
    for period in ("day", "month", "lifetime"):
        http.put("/v1/budgets", json={"scope": "tenant", "period": period, "limit_micros": limit_micros,
                                      "soft_micros": limit_micros // 2}).raise_for_status()
        for bot in bots:
            http.put("/v1/budgets", json={"scope": "bot", "subject": bot, "period": period,
                                          "limit_micros": limit_micros}).raise_for_status()
        http.put("/v1/budgets", json={"scope": "type", "subject": "ticket", "period": period,
                                      "limit_micros": limit_micros}).raise_for_status()


def measure(url: str, home: Path, admin_key: str, calls: int) -> dict[str, float]:
    admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30)
    try:
        set_budgets(admin, ["hold"])
        ticket = admin.post("/v1/tickets", json={"bot": "hold", "input": {}}).json()["id"]
        admin.put("/v1/budgets", json={"scope": "ticket", "subject": ticket, "period": "lifetime",
                                       "limit_micros": 10**12}).raise_for_status()
        engines = attach(Settings(home=home))
        phase, tenant = _phase_of(url, admin_key, ticket, engines.api_url)
        env = Envelope(ticket, phase, 1, tenant, "hold", None)
        sig = DispatchSigner(engines.dispatch_key).sign(env)
        token = json.loads((home / "run" / "bot-tokens.json").read_text())["hold"]
        body = {"envelope": {"t": ticket, "p": phase, "a": 1, "n": tenant, "b": "hold", "g": sig}, "seq": 0,
                "provider": "openai", "model": "gpt-4o-mini", "input_bytes": 2000, "max_output_tokens": 256,
                "request_sha256": hashlib.sha256(b"bench").hexdigest()}
        reserve_ms: list[float] = []
        reservations: list[str] = []
        with httpx.Client(base_url=url, headers={"X-Oshal-Bot-Token": token}, timeout=30) as bot:
            for i in range(calls + 20):
                t0 = time.perf_counter()
                response = bot.post("/v1/models/begin", json=body)
                elapsed = (time.perf_counter() - t0) * 1000
                assert response.status_code == 200, response.text
                reservations.append(response.json()["reservation"])
                if i >= 20:
                    reserve_ms.append(elapsed)
        settle_ms, plain_ms = asyncio.run(_settlements(engines.api_url, uuid.UUID(tenant), uuid.UUID(ticket),
                                                       uuid.UUID(phase), reservations[20:]))
        admin.post(f"/v1/tickets/{ticket}/cancel")
    finally:
        admin.close()
    return {"reserve_p50_ms": statistics.median(reserve_ms), "reserve_p99_ms": _pct(reserve_ms, 0.99),
            "settle_p50_ms": statistics.median(settle_ms), "settle_p99_ms": _pct(settle_ms, 0.99),
            "record_unbudgeted_p50_ms": statistics.median(plain_ms),
            "settle_overhead_p50_ms": statistics.median(settle_ms) - statistics.median(plain_ms)}


async def _settlements(api_url: str, tenant: uuid.UUID, ticket: uuid.UUID, phase: uuid.UUID,
                       reservations: list[str]) -> tuple[list[float], list[float]]:
    """Each call's result recorded alone (the collector's statement, one ledger row): settling a reservation
    against budgets at every level, then the same with no reservation and no cost (nothing to settle)."""
    from oshal.store.db import Database
    from oshal.store.results import AttemptRow, LedgerRow, record_results

    db = Database(api_url, min_size=1, max_size=2, name="bench-budgets")
    await db.open()
    try:
        settle, plain = [], []
        for n, reservation in enumerate(reservations):
            for costed, samples in ((True, settle), (False, plain)):
                attempt_phase = uuid.uuid4()
                row = LedgerRow(f"bench:{attempt_phase}", ticket, phase, 1, "hold", "openai", "gpt-4o-mini", 900,
                                40, 0, 0, 1000 + n if costed else 0, "estimated",
                                reservation_id=uuid.UUID(reservation) if costed else None)
                statement = record_results(tenant, [AttemptRow(attempt_phase, 1, ticket, "done", None, None, "", 1,
                                                               None, None)], [row])
                t0 = time.perf_counter()
                await db.call(statement)
                samples.append((time.perf_counter() - t0) * 1000)
        return settle, plain
    finally:
        await db.close()


def price_every_call(http: httpx.Client) -> dict[str, Any]:
    """Make the demo echo bot's calls cost something, so every ledger row counts against the budgets."""
    body = {"provider": "deterministic", "model": "deterministic-echo", "input": 1_000_000, "output": 1_000_000,
            "effective_from": (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1)))}
    response = http.post("/v1/prices", json=body)
    response.raise_for_status()
    return dict(response.json())
