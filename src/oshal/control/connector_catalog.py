"""The connector catalog as operators use it: import drafts, review and enable operations, sign, quarantine.

An imported connector starts as a ``draft`` with every operation disabled. Enabling a non-read operation needs
an explicit ``allow_risky``. A connector becomes ``enabled`` only with a signature over its exact current
manifest by a trusted publisher key; any later change to the manifest, or a key leaving the trust store,
moves it to ``quarantined`` with the reason until it is re-signed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from oshal.audit import trail
from oshal.connectors.importer import import_openapi
from oshal.connectors.manifest import ConnectorManifest
from oshal.connectors.signing import Signature, verify_manifest
from oshal.connectors.trust import TrustStore
from oshal.errors import Conflict, Forbidden, Invalid, NotFound
from oshal.logs import get_logger
from oshal.store import connectors as repo
from oshal.store.db import Database

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CuratedBundle:
    """The connectors shipped in a folder: ``<publisher>.pub`` plus ``<id>.json`` and ``<id>.json.sig.json``."""

    publisher: str
    public_key: str | None
    connectors: tuple[tuple[ConnectorManifest, dict[str, Any]], ...]

    @classmethod
    def read(cls, folder: Path, publisher: str = "oshal") -> CuratedBundle:
        public = folder / f"{publisher}.pub"
        if not public.is_file():
            return cls(publisher, None, ())
        connectors = tuple(
            (ConnectorManifest.model_validate_json(path.read_text()),
             json.loads((path.parent / f"{path.name}.sig.json").read_text()))
            for path in sorted(folder.glob("*.json")) if not path.name.endswith(".sig.json"))
        return cls(publisher, public.read_text().strip(), connectors)


def _manifest_of(row: Mapping[str, Any]) -> ConnectorManifest:
    return ConnectorManifest.model_validate(row["manifest"])


class Catalog:
    def __init__(self, db: Database, trust: TrustStore) -> None:
        self.db = db
        self.trust = trust

    async def _save(self, manifest: ConnectorManifest, state: str, signature: dict[str, Any] | None,
                    reason: str | None = None) -> dict[str, Any]:
        async with self.db.system() as conn:
            return await repo.upsert_connector(
                conn, connector_id=manifest.id, version=manifest.version, publisher=manifest.publisher,
                category=manifest.category, title=manifest.title,
                manifest=manifest.model_dump(mode="json", by_alias=True), digest=manifest.digest(), state=state,
                signature=signature, quarantine_reason=reason)

    async def get(self, connector_id: str) -> dict[str, Any]:
        async with self.db.system() as conn:
            row = await repo.connector(conn, connector_id)
        if row is None:
            raise NotFound(f"connector {connector_id!r} is not in the catalog",
                           hint="list them with GET /v1/connectors")
        return row

    async def entries(self) -> list[dict[str, Any]]:
        async with self.db.system() as conn:
            return await repo.connectors(conn)

    async def import_document(self, document: Mapping[str, Any], *, connector_id: str | None, publisher: str,
                              category: str, origin: str, replace: bool) -> dict[str, Any]:
        manifest = import_openapi(document, connector_id=connector_id, publisher=publisher, category=category,
                                  source=origin)
        async with self.db.system() as conn:
            existing = await repo.connector(conn, manifest.id)
        if existing is not None and not replace:
            raise Conflict(f"connector {manifest.id!r} is already in the catalog ({existing['state']})",
                           hint="pick another id, or re-import with replace to turn it back into a draft")
        return await self._save(manifest, "draft", None)

    async def add_draft(self, manifest: ConnectorManifest, *, replace: bool) -> dict[str, Any]:
        """A manifest built elsewhere (e.g. an MCP import run by the CLI) enters as a draft, all disabled."""
        async with self.db.system() as conn:
            existing = await repo.connector(conn, manifest.id)
        if existing is not None and not replace:
            raise Conflict(f"connector {manifest.id!r} is already in the catalog ({existing['state']})",
                           hint="pick another id, or add it with replace to turn it back into a draft")
        disabled = tuple(op.model_copy(update={"enabled": False}) for op in manifest.operations)
        return await self._save(manifest.model_copy(update={"operations": disabled}), "draft", None)

    async def set_operations(self, connector_id: str, *, enable: Iterable[str], disable: Iterable[str],
                             allow_risky: bool) -> dict[str, Any]:
        """Change which operations are enabled; the connector goes back to draft until it is signed again."""
        manifest = _manifest_of(await self.get(connector_id))
        on, off = set(enable), set(disable)
        unknown = (on | off) - {op.name for op in manifest.operations}
        if unknown:
            raise Invalid(f"connector {connector_id!r} has no operation(s) {', '.join(sorted(unknown))}")
        risky = sorted(op.name for op in manifest.operations if op.name in on and op.risk != "read")
        if risky and not allow_risky:
            raise Forbidden(f"enabling {', '.join(risky)} lets bots change things (risk: not read-only)",
                            hint="confirm with allow_risky, after reviewing each operation")
        operations = tuple(
            op.model_copy(update={"enabled": (op.enabled or op.name in on) and op.name not in off})
            for op in manifest.operations)
        changed = manifest.model_copy(update={"operations": operations})
        return await self._save(changed, "draft", None)

    async def configure(self, connector_id: str, *, base_url: str | None,
                        allow_private_network: bool | None) -> dict[str, Any]:
        """Point a connector at its real server (e.g. fill in a store hash); back to draft until re-signed."""
        manifest = _manifest_of(await self.get(connector_id))
        update: dict[str, Any] = {}
        if base_url is not None:
            if not base_url.startswith(("https://", "http://")):
                raise Invalid(f"base_url {base_url!r} must be an http(s) URL")
            update["base_url"] = base_url
        if allow_private_network is not None:
            update["allow_private_network"] = allow_private_network
        return await self._save(manifest.model_copy(update=update), "draft", None)

    async def attach_signature(self, connector_id: str, signature: Mapping[str, Any]) -> dict[str, Any]:
        """Enable a connector with a signature over its current manifest; refuses anything less."""
        manifest = _manifest_of(await self.get(connector_id))
        try:
            parsed = Signature.from_dict(dict(signature))
        except (ValueError, TypeError, KeyError) as e:
            raise Invalid(f"not a connector signature: {e}", hint="use the .sig.json from oshal connector sign") from e
        verdict = verify_manifest(manifest, parsed, self.trust)
        if not verdict.ok:
            raise Forbidden(f"{verdict.reason}: {verdict.message}", hint=verdict.hint)
        return await self._save(manifest, "enabled", parsed.to_dict())

    async def install_curated(self, bundle: CuratedBundle) -> list[str]:
        """Trust the shipped publisher key and add each shipped, signed connector not yet in the catalog."""
        if bundle.public_key is None:
            return []
        self.trust.trust(bundle.publisher, bundle.public_key)
        installed = []
        for manifest, signature in bundle.connectors:
            async with self.db.system() as conn:
                if await repo.connector(conn, manifest.id) is not None:
                    continue  # never overwrite what an operator changed
            await self._save(manifest, "draft", None)
            await self.attach_signature(manifest.id, signature)
            installed.append(manifest.id)
        return installed

    async def disable(self, connector_id: str, *, reason: str, actor: str, tenant: UUID) -> dict[str, Any]:
        """Take an enabled connector out of service: every call through it is refused until it is enabled again.
        Its manifest and signature are kept, so enabling it needs no new signature."""
        why = reason.strip()[:500]
        if not why:
            raise Invalid("disabling a connector needs a reason", hint="say why, e.g. 'its credential fails'")
        row = await self.get(connector_id)
        async with self.db.system() as conn:
            if not await repo.set_disabled(conn, connector_id, why):
                raise Conflict(f"connector {connector_id} is {row['state']}, not enabled; only an enabled connector "
                               "can be disabled")
            await trail.record(conn, trail.Entry(tenant, actor, "connector.disable", connector_id, {"reason": why}))
        log.warning("connector disabled", connector=connector_id, by=actor, reason=why)
        return await self.get(connector_id)

    async def enable(self, connector_id: str, *, actor: str, tenant: UUID) -> dict[str, Any]:
        """Put a disabled connector back in service, if its signature still checks out (else it is quarantined)."""
        row = await self.get(connector_id)
        if row["state"] != "disabled":
            raise Conflict(f"connector {connector_id} is {row['state']}, not disabled",
                           hint="a draft or quarantined connector is enabled by signing it")
        try:
            manifest = _manifest_of(row)
            verdict = verify_manifest(manifest, Signature.from_dict(row["signature"] or {}), self.trust)
            problem = None if verdict.ok and row["digest"] == manifest.digest() else (
                f"{verdict.reason}: {verdict.message}" if not verdict.ok else "stored digest is stale")
        except (ValidationError, ValueError, TypeError, KeyError) as e:
            problem = f"manifest or signature unreadable: {e}"
        async with self.db.system() as conn:
            changed = await repo.set_enabled(conn, connector_id, quarantine_reason=problem)
            await trail.record(conn, trail.Entry(tenant, actor, "connector.enable", connector_id,
                                                 {"quarantined": problem} if problem else {}))
        if not changed:
            raise Conflict(f"connector {connector_id} changed meanwhile; look at it again")
        if problem:
            raise Conflict(f"connector {connector_id} no longer checks out ({problem}); it is quarantined",
                           hint="sign its current manifest again (POST /v1/connectors/<id>/signature)")
        log.info("connector enabled again", connector=connector_id, by=actor)
        return await self.get(connector_id)

    async def broken(self) -> list[tuple[dict[str, Any], str]]:
        """Enabled connectors whose manifest or signer no longer checks out, with the reason (no side effects)."""
        found = []
        for row in await self.entries():
            if row["state"] != "enabled":
                continue
            try:
                manifest = _manifest_of(row)
                verdict = verify_manifest(manifest, Signature.from_dict(row["signature"] or {}), self.trust)
                reason = None if verdict.ok and row["digest"] == manifest.digest() else (
                    f"{verdict.reason}: {verdict.message}" if not verdict.ok else "stored digest is stale")
            except (ValidationError, ValueError, TypeError, KeyError) as e:
                reason = f"manifest or signature unreadable: {e}"
            if reason is not None:
                found.append((row, reason))
        return found

    async def reverify(self) -> list[str]:
        """Quarantine enabled connectors whose manifest or signer no longer checks out; returns their ids."""
        quarantined = []
        for row, reason in await self.broken():
            async with self.db.system() as conn:  # unless it was re-imported or re-signed since it was checked
                if not await repo.quarantine_enabled(conn, str(row["id"]), str(row["digest"]), reason[:500]):
                    continue
            log.warning("connector quarantined", connector=row["id"], reason=reason)
            quarantined.append(str(row["id"]))
        return quarantined
