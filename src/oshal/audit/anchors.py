"""Audit anchors kept outside the database, where its owner cannot reach them.

Every few seconds the platform MACs the chain head (its sequence number and hash) with a key derived from the
dispatch key, which the database never sees, and appends it as one JSON line to ``$OSHAL_HOME/audit/anchors.jsonl``
(and, when artifacts go to S3, writes it to the bucket as well: one object per anchor plus ``latest.json``).
Before retention prunes entries, a MACed prune line records how far it may prune. A verifier then knows, from
outside the database, entries that must still be in the chain with exactly these hashes; a rewritten entry, a
truncated tail, a deleted prefix or deleted database anchors no longer match them.

Lines: ``{"seq", "hash", "at", "mac"}`` for an anchor, ``{"pruned_through", "at", "mac"}`` for retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oshal import jsontext
from oshal.errors import NotFound
from oshal.store.objects import ObjectStore

FOLDER = "audit"
FILE_NAME = "anchors.jsonl"
_REMOTE_PREFIX = "audit/anchors"
_REMOTE_LATEST = f"{_REMOTE_PREFIX}/latest.json"


@dataclass(frozen=True, slots=True)
class Anchor:
    seq: int
    digest: bytes
    at: str
    where: str  # "line 12" or the object key, for problem reports


@dataclass
class OutsideRecord:
    """What the anchor file (and the object store) say, read before the database is."""

    anchors: list[Anchor] = field(default_factory=list)
    pruned_through: int = 0  # the highest entry retention was allowed to remove
    remote_latest: Anchor | None = None
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def highest(self) -> int:
        return max((a.seq for a in self.anchors), default=0)


class AnchorLog:
    def __init__(self, path: Path, key: bytes, objects: ObjectStore | None = None) -> None:
        self.path = path
        self.key = key
        self.objects = objects
        self._last: tuple[int, bytes] | None = None

    @classmethod
    def in_home(cls, home: Path, key: bytes, objects: ObjectStore | None = None) -> AnchorLog:
        return cls(home / FOLDER / FILE_NAME, key, objects)

    # --- writing ----------------------------------------------------------------------------------------------

    def anchored(self, seq: int, digest: bytes) -> bool:
        """Whether this process anchored exactly this head last (nothing new to anchor)."""
        return (seq, digest) == self._last

    async def add(self, seq: int, digest: bytes) -> None:
        """Record the chain head ``seq`` (its hash ``digest``) outside the database."""
        if self.anchored(seq, digest):
            return
        line = self._signed({"seq": seq, "hash": digest.hex(), "at": _now()})
        await asyncio.to_thread(self._append, line)
        if self.objects is not None:
            data = (json.dumps(line, sort_keys=True) + "\n").encode()
            await self.objects.put(f"{_REMOTE_PREFIX}/{seq:020d}.json", data, "application/json")
            await self.objects.put(_REMOTE_LATEST, data, "application/json")
        self._last = (seq, digest)

    async def allow_prune(self, through: int) -> None:
        """Record, before retention runs, that entries up to ``through`` may be removed."""
        await asyncio.to_thread(self._append, self._signed({"pruned_through": through, "at": _now()}))

    def _append(self, line: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # several processes on one host append to the same file
            data = (jsontext.canonical(line) + "\n").encode()
            while data:  # a short write (a full disk) must not leave half a line for the next one to join
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)

    def _signed(self, fields: dict[str, Any]) -> dict[str, Any]:
        return {**fields, "mac": self._mac(fields)}

    def _mac(self, fields: dict[str, Any]) -> str:
        body = jsontext.canonical({k: v for k, v in fields.items() if k != "mac"})
        return hmac.new(self.key, b"oshal-audit-anchor\x00" + body.encode(), hashlib.sha256).hexdigest()

    # --- reading ----------------------------------------------------------------------------------------------

    async def read(self) -> OutsideRecord:
        """Read in the reverse order of writing (object store, file; the database is the caller's to read last),
        so an anchor written meanwhile is never in an earlier read and missing from a later one."""
        remote = None
        if self.objects is not None:
            with contextlib.suppress(NotFound):
                remote = (await self.objects.get(_REMOTE_LATEST)).decode(errors="replace")
        record = await asyncio.to_thread(self._read_file)
        if remote is not None:
            record.remote_latest = self._parse(remote, _REMOTE_LATEST, record)
        return record

    def _read_file(self) -> OutsideRecord:
        record = OutsideRecord()
        try:
            text = self.path.read_text(errors="replace")
        except FileNotFoundError:
            return record
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            fields = self._fields(line, f"anchor file line {number}", record)
            if fields is None:
                continue
            if "pruned_through" in fields:
                record.pruned_through = max(record.pruned_through, int(fields["pruned_through"]))
            else:
                record.anchors.append(_anchor(fields, f"anchor file line {number}"))
        return record

    def _parse(self, text: str, where: str, record: OutsideRecord) -> Anchor | None:
        fields = self._fields(text, where, record)
        return _anchor(fields, where) if fields is not None and "seq" in fields else None

    def _fields(self, text: str, where: str, record: OutsideRecord) -> dict[str, Any] | None:
        try:
            fields = json.loads(text)
            valid = isinstance(fields, dict) and isinstance(fields.get("mac"), str) and (
                (isinstance(fields.get("seq"), int) and isinstance(fields.get("hash"), str)
                 and bytes.fromhex(fields["hash"]) is not None)
                or isinstance(fields.get("pruned_through"), int))
        except ValueError:
            valid = False
        if not valid:
            record.problems.append({"seq": None, "problem": f"{where} is not an anchor (edited or corrupted)"})
            return None
        if not hmac.compare_digest(str(fields["mac"]), self._mac(fields)):
            record.problems.append({"seq": fields.get("seq"), "problem": f"{where}: anchor MAC is wrong (forged, "
                                                                        "edited, or the key changed)"})
            return None
        return dict(fields)


def _anchor(fields: dict[str, Any], where: str) -> Anchor:
    return Anchor(int(fields["seq"]), bytes.fromhex(str(fields["hash"])), str(fields.get("at", "")), where)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()
