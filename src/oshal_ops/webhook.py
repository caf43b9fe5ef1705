"""The alert intake: Alertmanager's webhook receiver, ``POST /v1/ops/alerts``, as its own small HTTP app.

Point an Alertmanager ``webhook_config`` at it with the same bearer token the ops service holds::

    receivers:
      - name: oshal-ops
        webhook_configs:
          - url: http://127.0.0.1:8810/v1/ops/alerts
            send_resolved: true            # the default; without it no incident ever resolves
            http_config:
              authorization: {credentials_file: /etc/alertmanager/oshal-ops.token}

It fails closed: with no token configured every request is refused (503), and a missing or wrong token is a 401.
The token is checked before the body is read, and the body is capped. What the alerts change is up to the injected
``on_alerts`` callback (the service feeds its incident book and opens tickets); a failure there is a 500, so
Alertmanager retries the notification. A payload that is not Alertmanager's v4 is a 422 saying what is wrong, which
Alertmanager does not retry.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from oshal_ops.alerts import AlertmanagerPayload, PayloadError, parse_payload
from oshal_ops.incidents import IncidentChange

ALERTS_PATH = "/v1/ops/alerts"
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024  # a group of a few thousand alerts; Alertmanager's max_alerts caps it
MIN_TOKEN_LENGTH = 16
TOKEN_ENV = "OSHAL_OPS_ALERT_TOKEN"  # noqa: S105 - the name of the variable, not a token

OnAlerts = Callable[[AlertmanagerPayload], Awaitable[list[IncidentChange]]]

log = logging.getLogger("oshal_ops.webhook")


def _error(status: int, code: str, message: str, hint: str = "", headers: dict[str, str] | None = None,
           **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message, **extra}
    if hint:
        body["hint"] = hint
    return JSONResponse(body, status_code=status, headers=headers)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _bearer(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None once it is longer than ``limit`` (the rest is not read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def summarize(changes: list[IncidentChange]) -> list[dict[str, Any]]:
    """Per incident touched, in the order first touched: its key and how many changes of each kind."""
    by_key: dict[str, Counter[str]] = {}
    for change in changes:
        by_key.setdefault(change.incident_key, Counter())[change.kind] += 1
    return [{"key": key, "changes": dict(kinds)} for key, kinds in by_key.items()]


def create_app(on_alerts: OnAlerts, *, token: str | None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               token_setting: str = TOKEN_ENV) -> FastAPI:
    """The intake app. ``token`` None or blank: refuse everything. ``token_setting`` names where the operator sets
    the token (an environment variable), for the messages."""
    token = (token or "").strip() or None
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"the alert intake token ({token_setting}) is {len(token)} characters; use at least "
                         f"{MIN_TOKEN_LENGTH}, e.g. the output of `openssl rand -hex 32`")
    if max_body_bytes < 1024:
        raise ValueError(f"max_body_bytes must be at least 1024, not {max_body_bytes}")
    expected = _digest(token) if token is not None else None

    app = FastAPI(title="oshal ops: alert intake", docs_url=None, redoc_url=None, openapi_url=None)
    challenge = {"WWW-Authenticate": 'Bearer realm="oshal-ops"'}

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "alerts": "accepting" if expected is not None else "refusing: no token is set"}

    @app.post(ALERTS_PATH)
    async def receive_alerts(request: Request) -> JSONResponse:
        if expected is None:
            return _error(503, "not_configured", "the alert intake token is not set, so every alert is refused",
                          f"set {token_setting} for the ops service and give Alertmanager the same token "
                          "(webhook_config → http_config → authorization → credentials)")
        given = _bearer(request)
        if given is None:
            return _error(401, "unauthorized", "an Authorization: Bearer <token> header is required",
                          "give Alertmanager the token in webhook_config → http_config → authorization",
                          headers=challenge)
        # Digests of equal length, compared in constant time: neither the token nor its length leaks.
        if not hmac.compare_digest(_digest(given), expected):
            return _error(401, "unauthorized", "the bearer token is not the alert intake token",
                          f"use the token set in {token_setting}", headers=challenge)
        body = await _read_capped(request, max_body_bytes)
        if body is None:
            return _error(413, "too_large", f"the body is larger than {max_body_bytes} bytes",
                          "set max_alerts on the webhook_config, or group alerts more finely")
        try:
            payload = parse_payload(body)
        except PayloadError as e:
            return _error(422, "invalid", str(e), "send Alertmanager's webhook payload, version 4 "
                          "(see Alertmanager's docs, <webhook_config>)", problems=e.problems)
        try:
            changes = await on_alerts(payload)
        except Exception:
            log.exception("alert intake: recording the alerts of group %r failed", payload.group_key)
            return _error(500, "internal", "the alerts were received but could not be recorded; Alertmanager "
                          "will send them again", "see the ops service's log")
        return JSONResponse({"received": len(payload.alerts), "truncated": payload.truncated_alerts,
                             "incidents": summarize(changes)})

    return app
