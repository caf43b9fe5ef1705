"""Parsed manifests by digest: a digest names exactly one manifest, so a cached parse can never be stale."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from oshal.connectors.manifest import ConnectorManifest


class ManifestCache:
    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._items: OrderedDict[str, ConnectorManifest] = OrderedDict()
        self._latest: dict[str, str] = {}  # connector id -> digest last seen enabled (a hint, checked by the DB)

    def latest(self, connector_id: str) -> tuple[str, ConnectorManifest] | None:
        """The digest and manifest last seen for a connector; the caller confirms the digest is still current."""
        digest = self._latest.get(connector_id)
        manifest = self.get(digest) if digest is not None else None
        return None if digest is None or manifest is None else (digest, manifest)

    def seen(self, connector_id: str, digest: str) -> None:
        self._latest[connector_id] = digest

    def get(self, digest: str) -> ConnectorManifest | None:
        manifest = self._items.get(digest)
        if manifest is not None:
            self._items.move_to_end(digest)
        return manifest

    def put(self, digest: str, document: Any) -> ConnectorManifest:
        manifest = ConnectorManifest.model_validate(document)
        self._items[digest] = manifest
        self._items.move_to_end(digest)
        while len(self._items) > self._size:
            self._items.popitem(last=False)
        return manifest
