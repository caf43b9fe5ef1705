"""The last line of the error mapping: whatever a route raises, the client gets a JSON body.

* A value the database refuses as data (SQLSTATE class 22: out of range, untranslatable character, ...) that got
  past validation is the caller's input, so it is a 422 naming the database's reason.
* Anything else unexpected is a 500 with an error id; the traceback goes to the log under that id, never to the
  client.
"""

from __future__ import annotations

import traceback
import uuid

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from oshal.logs import get_logger

log = get_logger(__name__)


def install_fallback_handlers(app: FastAPI) -> None:
    @app.exception_handler(psycopg.DataError)
    async def refused_by_database(request: Request, error: psycopg.DataError) -> JSONResponse:
        reason = (error.diag.message_primary if error.diag else None) or str(error).splitlines()[0]
        log.warning("request.data_refused", method=request.method, path=request.url.path, reason=reason)
        return JSONResponse({"error": "invalid", "message": f"a value cannot be stored: {reason}",
                             "hint": "check the ranges and characters of the values sent (see /docs)"},
                            status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        error_id = uuid.uuid4().hex
        log.error("request.unexpected_error", error_id=error_id, method=request.method, path=request.url.path,
                  error=type(error).__name__, traceback="".join(traceback.format_exception(error)))
        return JSONResponse({"error": "internal", "message": f"an unexpected error occurred (error id {error_id})",
                             "hint": "retry; if it persists, report the error id to the platform operator",
                             "error_id": error_id}, status_code=500)
