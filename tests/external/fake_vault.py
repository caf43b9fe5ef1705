"""A local stand-in for HashiCorp Vault's KV version 2 HTTP API, speaking its real wire format to hvac.

Served on 127.0.0.1 by a stdlib ``ThreadingHTTPServer``. Routes (``{mount}`` is ``secret`` unless told):

* ``GET /v1/{mount}/data/{path}[?version=N]``: ``{"data": {"data": {...}, "metadata": {...}}}``,
  or 404 ``{"errors": []}``;
* ``POST``/``PUT /v1/{mount}/data/{path}`` with ``{"data": {...}, "options": {"cas": N}}``: a new version;
* ``GET /v1/{mount}/metadata/{path}``: the key's metadata and versions;
* ``DELETE /v1/{mount}/metadata/{path}``: the key and all its versions; 204 whether or not it existed;
* ``LIST /v1/{mount}/metadata/{folder}`` (hvac sends the ``LIST`` verb), or ``GET ...?list=true`` (curl's way):
  the folder's direct children, sub-folders with a trailing ``/``; 404 ``{"errors": []}`` when empty.

Every request needs ``X-Vault-Token`` equal to ``token``; otherwise 403 ``{"errors": ["permission denied"]}``
as Vault answers. An unmounted path gets Vault's 404 "no handler for route". Requests are recorded in
``requests`` (method, path, query, lower-cased headers); ``stored(path)`` shows the latest raw secret data.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass(frozen=True)
class VaultRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class _Key:
    versions: dict[int, dict[str, Any]] = field(default_factory=dict)
    created_time: str = ""
    updated_time: str = ""

    @property
    def current(self) -> int:
        return max(self.versions, default=0)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeVault:
    def __init__(self, *, token: str = "hvs.test-root-token-0123456789", mount: str = "secret") -> None:
        self.token = token
        self.mount = mount
        self.requests: list[VaultRequest] = []
        self._keys: dict[str, _Key] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> FakeVault:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                owner._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_LIST = _any

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="FakeVault", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeVault:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inspection ---------------------------------------------------------------------------------
    def stored(self, path: str) -> dict[str, Any] | None:
        """The latest data written at ``path`` (under the mount), as Vault holds it."""
        with self._lock:
            key = self._keys.get(path.strip("/"))
            return None if key is None else dict(key.versions[key.current]["data"])

    def paths(self) -> list[str]:
        with self._lock:
            return sorted(self._keys)

    # -- routing ------------------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            self.requests.append(VaultRequest(handler.command, parts.path, query, headers))
        status, body = self._route(handler.command, unquote(parts.path), query, headers, raw)
        payload = b"" if status == 204 else json.dumps(body).encode()
        try:
            handler.send_response(status)
            if status != 204:
                handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.send_header("Cache-Control", "no-store")
            handler.end_headers()
            handler.wfile.write(payload)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _route(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
               raw: bytes) -> tuple[int, Any]:
        if headers.get("x-vault-token") != self.token:
            return 403, {"errors": ["permission denied"]}
        route = path.removeprefix("/v1/").strip("/")
        mount, _, rest = route.partition("/")
        kind, _, key = rest.partition("/")
        if mount != self.mount or kind not in ("data", "metadata"):
            return 404, {"errors": [f'no handler for route "{route}". route entry not found.']}
        listing = method == "LIST" or (method == "GET" and query.get("list") == ["true"])
        if kind == "metadata" and listing:
            return self._list(key.strip("/"))
        key = key.strip("/")
        if not key:
            return 405, {"errors": ["1 error occurred:\n\t* unsupported operation\n\n"]}
        if kind == "data" and method == "GET":
            version = query.get("version", ["0"])[0]
            return self._read(key, int(version) if version.isdigit() else 0)
        if kind == "data" and method in ("POST", "PUT"):
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                return 400, {"errors": ["failed to parse JSON input: invalid character"]}
            return self._write(key, body)
        if kind == "metadata" and method == "GET":
            return self._metadata(key)
        if kind == "metadata" and method == "DELETE":
            with self._lock:
                self._keys.pop(key, None)
            return 204, None
        return 405, {"errors": ["1 error occurred:\n\t* unsupported operation\n\n"]}

    @staticmethod
    def _envelope(data: Any) -> dict[str, Any]:
        return {"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False, "lease_duration": 0,
                "data": data, "wrap_info": None, "warnings": None, "auth": None, "mount_type": "kv"}

    @staticmethod
    def _version_meta(entry: dict[str, Any], version: int) -> dict[str, Any]:
        return {"created_time": entry["created_time"], "custom_metadata": None, "deletion_time": "",
                "destroyed": False, "version": version}

    def _read(self, key: str, version: int) -> tuple[int, Any]:
        with self._lock:
            found = self._keys.get(key)
            number = version or (found.current if found else 0)
            entry = found.versions.get(number) if found else None
            if entry is None:
                return 404, {"errors": []}
            return 200, self._envelope({"data": dict(entry["data"]), "metadata": self._version_meta(entry, number)})

    def _write(self, key: str, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            return 400, {"errors": ["no data provided"]}
        cas = (body.get("options") or {}).get("cas")
        with self._lock:
            found = self._keys.setdefault(key, _Key(created_time=_now()))
            if cas is not None and int(cas) != found.current:
                if not found.versions:
                    del self._keys[key]
                return 400, {"errors": ["check-and-set parameter did not match the current version"]}
            number = found.current + 1
            entry = {"data": dict(body["data"]), "created_time": _now()}
            found.versions[number] = entry
            found.updated_time = entry["created_time"]
            return 200, self._envelope(self._version_meta(entry, number))

    def _metadata(self, key: str) -> tuple[int, Any]:
        with self._lock:
            found = self._keys.get(key)
            if found is None:
                return 404, {"errors": []}
            versions = {str(n): self._version_meta(e, n) for n, e in found.versions.items()}
            return 200, self._envelope({
                "cas_required": False, "created_time": found.created_time, "current_version": found.current,
                "custom_metadata": None, "delete_version_after": "0s", "max_versions": 0,
                "oldest_version": min(found.versions), "updated_time": found.updated_time, "versions": versions})

    def _list(self, folder: str) -> tuple[int, Any]:
        prefix = f"{folder}/" if folder else ""
        with self._lock:
            children = {k[len(prefix):].split("/", 1)[0] + ("/" if "/" in k[len(prefix):] else "")
                        for k in self._keys if k.startswith(prefix)}
        if not children:
            return 404, {"errors": []}
        return 200, self._envelope({"keys": sorted(children)})
