"""Tool-call overhead: gateway + broker + runtime, excluding the remote API's own time.

Needs a running platform whose fleet has a bot that holds its tickets open (``hold``; `bench/run.py` adds
one), so calls run against an open ticket as a real bot would make them. Measures BENCH_TOOL_CALLS sequential
calls through POST /v1/tools/call to a local API that answers at once, and the same request made to that API
directly; the overhead is the difference of the medians (and of the 99th percentiles).
"""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from oshal.connectors.manifest import ConnectorManifest
from oshal.connectors.publisher_keys import generate_keypair, private_key_pem, public_key_text
from oshal.connectors.signing import sign_manifest
from oshal.connectors.trust import TrustStore
from oshal.launcher.prepare import attach
from oshal.mesh.envelopes import Envelope
from oshal.mesh.signing import DispatchSigner
from oshal.settings import Settings

SPEC = {"openapi": "3.0.3", "info": {"title": "Bench API", "version": "1"},
        "servers": [{"url": "http://127.0.0.1/"}],
        "components": {"securitySchemes": {"k": {"type": "apiKey", "in": "header", "name": "X-Key"}}},
        "paths": {"/ping": {"get": {"operationId": "ping", "responses": {"200": {"description": "ok"}}}}}}
HOLD_BOT = "name: hold\nintent: echo\nlatency_ms: 600000\nconcurrency: 4\nreplicas: 1\n"


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # As real API servers do: without it, Nagle + delayed ACK add ~40 ms to every keep-alive answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        body = b'{"pong": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(url: str, home: Path, admin_key: str, calls: int) -> dict[str, float]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    remote = f"http://127.0.0.1:{server.server_address[1]}"
    admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30)
    try:
        admin.post("/v1/connectors/import", json={"document": SPEC, "id": "bench-api", "publisher": "bench",
                                                  "replace": True}).raise_for_status()
        admin.patch("/v1/connectors/bench-api", json={"base_url": remote, "allow_private_network": True})
        admin.post("/v1/connectors/bench-api/operations", json={"enable": ["ping"]}).raise_for_status()
        manifest = ConnectorManifest.model_validate(admin.get("/v1/connectors/bench-api").json()["manifest"])
        private, public = generate_keypair()
        TrustStore.in_home(home).trust("bench", public_key_text(public))
        signature = sign_manifest(manifest, private_key_pem(private), "bench")
        admin.post("/v1/connectors/bench-api/signature", json={"signature": signature.to_dict()}).raise_for_status()
        admin.post("/v1/connections", json={"connector": "bench-api", "secret": "bench-secret"}).raise_for_status()
        admin.put("/v1/bots/hold/tools", json={"connector": "bench-api", "operation": "ping", "mode": "auto"})
        ticket = admin.post("/v1/tickets", json={"bot": "hold", "input": {}}).json()["id"]
        engines = attach(Settings(home=home))
        phase, tenant = _phase_of(url, admin_key, ticket, engines.api_url)
        env = Envelope(ticket, phase, 1, tenant, "hold", None)
        env = Envelope(ticket, phase, 1, tenant, "hold", None, DispatchSigner(engines.dispatch_key).sign(env))
        token = json.loads((home / "run" / "bot-tokens.json").read_text())["hold"]
        body = {"envelope": {"t": env.ticket_id, "p": env.phase_id, "a": 1, "n": env.tenant_id, "b": "hold",
                             "g": env.sig}, "connector": "bench-api", "operation": "ping", "arguments": {}}
        with httpx.Client(base_url=url, headers={"X-Oshal-Bot-Token": token}, timeout=30) as bot, \
                httpx.Client(base_url=remote, timeout=30) as direct:
            through, straight = [], []
            for i in range(calls + 20):
                t0 = time.perf_counter()
                response = bot.post("/v1/tools/call", json=body)
                t1 = time.perf_counter()
                direct.get("/ping", headers={"X-Key": "bench-secret"})
                t2 = time.perf_counter()
                assert response.status_code == 200 and response.json()["data"] == {"pong": True}, response.text
                if i >= 20:
                    through.append((t1 - t0) * 1000)
                    straight.append((t2 - t1) * 1000)
        admin.post(f"/v1/tickets/{ticket}/cancel")
    finally:
        admin.close()
        server.shutdown()
    return {"tool_call_p50_ms": statistics.median(through), "tool_call_p99_ms": _pct(through, 0.99),
            "remote_p50_ms": statistics.median(straight),
            "tool_call_overhead_p50_ms": statistics.median(through) - statistics.median(straight),
            "tool_call_overhead_p99_ms": _pct(through, 0.99) - _pct(straight, 0.99)}


def _phase_of(url: str, admin_key: str, ticket: str, api_db_url: str) -> tuple[str, str]:
    """The ticket's phase and tenant, read as the API role within the admin's tenant."""
    import psycopg

    whoami = httpx.get(f"{url}/v1/whoami", headers={"Authorization": f"Bearer {admin_key}"}).json()
    with psycopg.connect(api_db_url) as conn, conn.transaction():
        conn.execute("SELECT set_config('oshal.tenant_id', %s, true)", (whoami["tenant_id"],))
        row = conn.execute("SELECT id FROM phases WHERE ticket_id = %s", (ticket,)).fetchone()
    assert row is not None
    return str(row[0]), str(whoami["tenant_id"])
