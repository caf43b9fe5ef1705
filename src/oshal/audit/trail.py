"""The audit log: append-only and hash-chained in Postgres, with MACed anchors kept beside it and outside it.

Writers call :func:`record` inside the transaction of the action they audit, so an action whose audit entry
cannot be written does not happen (fail closed). Authentication failures, which have no transaction of their
own and can arrive in bursts, go through :class:`AuditBuffer` and are written in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg

from oshal import jsontext
from oshal.audit.anchors import Anchor, AnchorLog
from oshal.audit.seal import seal_problems
from oshal.errors import Unavailable
from oshal.logs import get_logger
from oshal.store import audit as repo
from oshal.store.db import Conn, Database

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Entry:
    tenant_id: UUID | None
    actor: str
    action: str
    target: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


async def record(conn: Conn, entry: Entry) -> None:
    """Append one entry in the caller's transaction."""
    await record_many(conn, [entry])


async def record_many(conn: Conn, entries: Sequence[Entry]) -> None:
    if not entries:
        return
    try:
        await repo.append(conn, [e.tenant_id for e in entries], [e.actor for e in entries],
                          [e.action for e in entries], [e.target for e in entries],
                          [json.dumps(e.detail, default=str) for e in entries])
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedFunction,
            psycopg.errors.ReadOnlySqlTransaction, psycopg.errors.DiskFull) as e:
        raise Unavailable(f"the audit log cannot be written ({type(e).__name__}), so the action was refused",
                          hint="check the database (disk, grants on oshal_audit) and retry") from e


async def record_now(db: Database, entry: Entry) -> None:
    """Append one entry in a transaction of its own (for actions that have no database transaction)."""
    async with db.system() as conn:
        await record(conn, entry)


class AuditBuffer:
    """Batches entries whose action is already decided (a refused login), flushing every ``interval_s``."""

    def __init__(self, db: Database, *, interval_s: float = 0.5, max_pending: int = 10_000) -> None:
        self._db = db
        self._interval_s = interval_s
        self._max_pending = max_pending
        self._pending: list[Entry] = []
        self._wake = asyncio.Event()
        self.dropped = 0

    def add(self, entry: Entry) -> None:
        if len(self._pending) >= self._max_pending:
            self.dropped += 1  # a flood beyond this is itself visible: the runtime scan sees the burst
            return
        self._pending.append(entry)
        self._wake.set()

    async def flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            async with self._db.system() as conn:
                await record_many(conn, batch)
        except Exception as e:
            self._pending[:0] = batch
            log.warning("audit buffer flush failed; will retry", entries=len(batch), error=str(e))
            raise

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval_s * 10)
            self._wake.clear()
            with contextlib.suppress(Exception):
                await self.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval_s)
        with contextlib.suppress(Exception):
            await self.flush()


# --- anchoring and verification ----------------------------------------------------------------------------


def anchor_mac(key: bytes, seq: int, digest: bytes) -> bytes:
    return hmac.new(key, seq.to_bytes(8, "big") + digest, hashlib.sha256).digest()


async def anchor(db: Database, anchors: AnchorLog) -> int | None:
    """MAC the chain's current head and store it in the database, then outside it (in that order, so every
    anchor outside has its twin inside); returns the anchored seq (None for an empty chain)."""
    async with db.system() as conn:
        head = await repo.head(conn)
        if head is None or head["seq"] == 0:
            return None
        seq, digest = int(head["seq"]), bytes(head["hash"])
        if anchors.anchored(seq, digest):  # the head has not moved: an anchor of it is stored (and a deleted one
            return seq                     # must stay missing, for verify to see it)
        await repo.insert_anchor(conn, seq, digest, anchor_mac(anchors.key, seq, digest))
    await anchors.add(seq, digest)
    return seq


@dataclass(frozen=True, slots=True)
class Verification:
    entries: int
    head_seq: int
    pruned_through: int
    anchors_checked: int
    problems: list[dict[str, Any]]  # {"seq": the entry concerned, or None for the log's set-up, "problem": why}

    @property
    def intact(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"intact": self.intact, "entries": self.entries, "head_seq": self.head_seq,
                "pruned_through": self.pruned_through, "anchors_checked": self.anchors_checked,
                "problems": self.problems}


async def verify(db: Database, anchors: AnchorLog) -> Verification:
    """Check the audit log without changing anything: every link of the chain, every anchor (in the database and
    outside it), and that the log is still sealed against the database owner.

    The links find edited and deleted entries. The anchors find a chain rewritten from some entry on, a truncated
    tail, a deleted prefix and deleted anchors: they carry a MAC with a key the database never holds, and the
    ones outside the database are out of its owner's reach. The outside record is read first, so an anchor
    written meanwhile (database first, then outside) is always found in the database too.
    """
    outside = await anchors.read()
    async with db.system() as conn:
        sealing = [{"seq": None, "kind": "seal", "problem": p} for p in await seal_problems(conn)]
    try:
        async with db.system() as conn:
            problems = [{"seq": r["seq"], "problem": r["problem"]} for r in await repo.chain_problems(conn)]
            head = await repo.head(conn)
            inside = await repo.anchors(conn)
            wanted = {int(a["seq"]) for a in inside} | {a.seq for a in outside.anchors}
            if outside.remote_latest is not None:
                wanted.add(outside.remote_latest.seq)
            stored = await repo.hashes(conn, sorted(wanted))
    except psycopg.Error as e:
        problems = [{"seq": None, "problem": f"the audit log cannot be read ({type(e).__name__}: "
                                             f"{str(e).strip()[:200]}): dropped or its rights changed"}]
        return Verification(0, 0, 0, 0, [*problems, *outside.problems, *sealing])
    assert head is not None
    chain = _Chain(int(head["seq"]), int(head["pruned_seq"]), stored)
    for a in inside:
        seq, digest = int(a["seq"]), bytes(a["hash"])
        if not hmac.compare_digest(bytes(a["mac"]), anchor_mac(anchors.key, seq, digest)):
            problems.append({"seq": seq, "problem": "anchor MAC is wrong (anchor forged or key changed)"})
        elif stored.get(seq) != digest:
            problems.append({"seq": seq, "problem": "chain no longer passes through this anchor (rewritten)"})
    in_database = {(int(a["seq"]), bytes(a["hash"])) for a in inside}
    for outer in _unique(outside.anchors):
        problem = chain.check(outer, outside.pruned_through)
        if problem:
            problems.append({"seq": outer.seq, "problem": f"{problem} ({outer.where})"})
        if outer.seq > chain.pruned_seq and (outer.seq, outer.digest) not in in_database:
            problems.append({"seq": outer.seq, "problem": f"anchor missing from the database (anchors deleted; "
                                                          f"{outer.where})"})
    latest = outside.remote_latest
    if latest is not None:
        problem = chain.check(latest, outside.pruned_through)
        if problem:
            problems.append({"seq": latest.seq, "problem": f"{problem} (object store {latest.where})"})
        if latest.seq > outside.highest:
            problems.append({"seq": latest.seq, "problem": "the anchor file lacks the object store's latest anchor "
                                                           "(anchor file truncated or replaced)"})
    problems += outside.problems
    problems += sealing
    problems.sort(key=lambda p: (p["seq"] is not None, p["seq"] or 0))
    checked = len(inside) + len(outside.anchors) + (latest is not None)
    return Verification(int(head["entries"]), chain.head_seq, chain.pruned_seq, checked, problems)


@dataclass(frozen=True, slots=True)
class _Chain:
    head_seq: int
    pruned_seq: int
    hashes: dict[int, bytes]  # seq -> hash of the entries anchors name

    def check(self, outer: Anchor, pruned_through: int) -> str | None:
        """Why the chain no longer matches an anchor kept outside the database (None if it does)."""
        if outer.seq <= self.pruned_seq:
            if outer.seq > pruned_through:
                return "anchored entry was removed without a retention record (entries deleted from the start)"
            return None
        if outer.seq > self.head_seq:
            return f"anchored entry is past the chain head #{self.head_seq} (entries deleted at the end)"
        stored = self.hashes.get(outer.seq)
        if stored is None:
            return "anchored entry no longer exists (deleted)"
        if stored != outer.digest:
            return "chain no longer passes through this anchor (rewritten)"
        return None


def _unique(anchors: list[Anchor]) -> list[Anchor]:
    seen: set[tuple[int, bytes]] = set()
    out = []
    for a in anchors:
        if (a.seq, a.digest) not in seen:
            seen.add((a.seq, a.digest))
            out.append(a)
    return out


async def entries(db: Database, *, after: int = 0, limit: int = 1000, tenant: UUID | None = None,
                  since: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Entries after ``after`` in order: every tenant's (platform view) or, with ``tenant``, that tenant's only;
    with ``since``, only those written at or after it (read from the last entry before it on, so a long log is not
    read from its start)."""
    if since is not None:
        # Sequence numbers follow the chain's order, and entries are stamped as they are chained: one minute of
        # slack covers clocks of concurrent writers; the exact cut is made on the timestamps below.
        async with db.platform() if tenant is None else db.tenant(tenant) as conn:
            after = max(after, await repo.last_seq_before(conn, since - dt.timedelta(minutes=1)))
    rows: list[dict[str, Any]] = []
    while len(rows) < limit:
        if tenant is None:
            async with db.platform() as conn:
                page = await repo.entries_of_all(conn, after, limit)
        else:
            async with db.tenant(tenant) as conn:
                page = await repo.entries(conn, after, limit)
        rows += [r for r in page if since is None or r["at"] >= since]
        if len(page) < limit or since is None:
            break
        after = int(page[-1]["seq"])
    return rows[:limit]


async def stream(db: Database, *, tenant: UUID | None = None, page: int = 1000) -> AsyncIterator[dict[str, Any]]:
    after = 0
    while True:
        rows = await entries(db, after=after, limit=page, tenant=tenant)
        for row in rows:
            yield row
        if len(rows) < page:
            return
        after = int(rows[-1]["seq"])


def to_json_line(row: dict[str, Any]) -> str:
    """One entry as a JSON line, hashes in hex, so an export can be re-verified outside the platform."""
    out = {
        "seq": row["seq"], "at": row["at"].isoformat(), "tenant_id": str(row["tenant_id"] or "") or None,
        "actor": row["actor"], "action": row["action"], "target": row["target"], "detail": row["detail"],
        "prev_hash": bytes(row["prev_hash"]).hex(), "hash": bytes(row["hash"]).hex(),
    }
    return jsontext.canonical(out)


async def prune(db: Database, before: Any, anchors: AnchorLog) -> int:
    """Retention: remove entries older than ``before``. How far it may go is recorded outside the database
    first, so a verifier can tell retention from a deleted prefix."""
    async with db.system() as conn:
        point = await repo.prune_point(conn, before)
    if point is None:
        return 0
    await anchors.allow_prune(point)
    async with db.system() as conn:
        return await repo.prune(conn, before)
