"""A local S3-compatible server speaking the real REST wire format for path-style object requests.

Served on 127.0.0.1 (random port) by a stdlib ``ThreadingHTTPServer``; objects live in memory. Routes:

* ``PUT /{bucket}/{key}``: stores the body, its ``Content-Type`` and ``x-amz-meta-*`` headers; 200 with an ETag;
* ``GET``/``HEAD /{bucket}/{key}``: the object with Content-Type, Content-Length, ETag, Last-Modified and its
  ``x-amz-meta-*`` headers, or 404 ``NoSuchKey`` (HEAD answers errors without a body, as S3 does);
* ``DELETE /{bucket}/{key}``: 204 whether or not the key existed.

Every request must carry an AWS Signature Version 4 ``Authorization`` header for ``access_key``/``secret_key``
in ``region``. The signature is recomputed here from the request as it arrived (method, path, query, the
signed headers' values and the body's sha256), written independently of the client's signer; a mismatch gets
403 ``SignatureDoesNotMatch`` with S3's XML error body, an unknown key id 403 ``InvalidAccessKeyId``.
Another bucket gets 404 ``NoSuchBucket``. ``outage`` (a 5xx status) and ``delay_s`` make it fail or stall.
``requests`` records method, path and lower-cased headers of everything that arrived.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape

_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/s3/"
                   r"aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})")
_MAX_SKEW = timedelta(minutes=15)
_OUTAGE_CODES = {500: "InternalError", 501: "NotImplemented", 503: "SlowDown"}


@dataclass(frozen=True)
class S3Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names


@dataclass(frozen=True)
class StoredS3Object:
    data: bytes
    content_type: str
    metadata: dict[str, str]  # x-amz-meta-* headers, lower-cased
    last_modified: datetime

    @property
    def etag(self) -> str:
        return f'"{hashlib.md5(self.data, usedforsecurity=False).hexdigest()}"'


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class _S3Error(Exception):
    def __init__(self, status: int, code: str, message: str, **details: str) -> None:
        super().__init__(code)
        self.status, self.code, self.message, self.details = status, code, message, details

    def reply(self) -> _Reply:
        extra = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in self.details.items())
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{self.code}</Code>'
                f"<Message>{escape(self.message)}</Message>{extra}<RequestId>{uuid.uuid4().hex[:16].upper()}"
                "</RequestId></Error>")
        return _Reply(self.status, body.encode(), {"Content-Type": "application/xml"})


def _uri_encode(text: str) -> str:
    return quote(text, safe="-_.~")


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


class FakeS3:
    def __init__(self, *, bucket: str = "oshal-artifacts", access_key: str = "AKIAOSHALFAKE0000001",
                 secret_key: str = "fake-s3-secret-key-0123456789abcdefghijkl", region: str = "us-east-1") -> None:
        self.bucket = bucket
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.outage: int | None = None  # answer every request with this 5xx status
        self.delay_s = 0.0  # wait this long before answering
        self.requests: list[S3Request] = []
        self._objects: dict[str, StoredS3Object] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> FakeS3:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                owner._handle(self)

            do_GET = do_HEAD = do_PUT = do_DELETE = do_POST = _any

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="FakeS3", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inspection ---------------------------------------------------------------------------------
    def stored(self, key: str) -> StoredS3Object | None:
        with self._lock:
            return self._objects.get(key)

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._objects)

    # -- plumbing -----------------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = handler.headers.get("Content-Length")
        body = handler.rfile.read(int(length)) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            self.requests.append(S3Request(handler.command, handler.path, headers))
        try:
            reply = self._answer(handler.command, handler.path, headers, body, length is not None)
        except _S3Error as e:
            reply = e.reply()
        if self.delay_s and self._closing.wait(self.delay_s):
            return  # shutting down: drop the connection unanswered
        self._send(handler, reply)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, reply: _Reply) -> None:
        head_only = handler.command == "HEAD"
        try:
            handler.send_response(reply.status)
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            if "Content-Length" not in reply.headers:
                handler.send_header("Content-Length", "0" if head_only else str(len(reply.body)))
            handler.send_header("x-amz-request-id", uuid.uuid4().hex[:16].upper())
            handler.end_headers()
            if not head_only:
                handler.wfile.write(reply.body)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _answer(self, method: str, raw_path: str, headers: dict[str, str], body: bytes,
                has_length: bool) -> _Reply:
        if self.outage is not None:
            raise _S3Error(self.outage, _OUTAGE_CODES.get(self.outage, "ServiceUnavailable"),
                           "We encountered an internal error. Please try again.")
        parts = urlsplit(raw_path)
        self._verify_signature(method, parts.path, parts.query, headers, body)
        bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
        if bucket != self.bucket:
            raise _S3Error(404, "NoSuchBucket", "The specified bucket does not exist", BucketName=bucket)
        if not key:
            raise _S3Error(501, "NotImplemented", "Bucket operations are not implemented by this fake")
        if method == "PUT":
            if not has_length:
                raise _S3Error(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
            return self._put(key, headers, body)
        if method in ("GET", "HEAD"):
            return self._get(key)
        if method == "DELETE":
            with self._lock:
                self._objects.pop(key, None)
            return _Reply(204)
        raise _S3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.",
                       Method=method, ResourceType="OBJECT")

    def _put(self, key: str, headers: dict[str, str], body: bytes) -> _Reply:
        metadata = {name: value for name, value in headers.items() if name.startswith("x-amz-meta-")}
        stored = StoredS3Object(body, headers.get("content-type", "binary/octet-stream"), metadata,
                                datetime.now(UTC).replace(microsecond=0))
        with self._lock:
            self._objects[key] = stored
        return _Reply(200, headers={"ETag": stored.etag})

    def _get(self, key: str) -> _Reply:
        stored = self.stored(key)
        if stored is None:
            raise _S3Error(404, "NoSuchKey", "The specified key does not exist.", Key=key)
        headers = {"Content-Type": stored.content_type, "Content-Length": str(len(stored.data)),
                   "ETag": stored.etag, "Last-Modified": format_datetime(stored.last_modified, usegmt=True),
                   "Accept-Ranges": "bytes", **stored.metadata}
        return _Reply(200, stored.data, headers)

    # -- Signature Version 4 ------------------------------------------------------------------------
    def _verify_signature(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> None:
        authorization = headers.get("authorization")
        if authorization is None:
            raise _S3Error(403, "AccessDenied", "Access Denied")
        auth = _AUTH.fullmatch(authorization.strip())
        if auth is None:
            raise _S3Error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed.")
        if auth["key"] != self.access_key:
            raise _S3Error(403, "InvalidAccessKeyId",
                           "The AWS Access Key Id you provided does not exist in our records.",
                           AWSAccessKeyId=auth["key"])
        if auth["region"] != self.region:
            raise _S3Error(400, "AuthorizationHeaderMalformed",
                           f"The authorization header is malformed; the region '{auth['region']}' is wrong; "
                           f"expecting '{self.region}'", Region=self.region)
        amz_date = self._check_date(headers, auth["date"])
        payload_sha256 = self._check_payload(headers, body)
        signed = auth["signed"].split(";")
        unsigned = [n for n in headers if n.startswith("x-amz-") and n not in signed]
        if "host" not in signed or unsigned:
            raise _S3Error(403, "AccessDenied", "There were headers present in the request which were not signed",
                           HeadersNotSigned=", ".join(unsigned or ["host"]))
        canonical_request = self._canonical_request(method, path, query, headers, signed, payload_sha256)
        scope = f"{auth['date']}/{self.region}/s3/aws4_request"
        string_to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                                    hashlib.sha256(canonical_request.encode()).hexdigest()])
        expected = hmac.new(self._signing_key(auth["date"]), string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, auth["signature"]):
            raise _S3Error(403, "SignatureDoesNotMatch",
                           "The request signature we calculated does not match the signature you provided. "
                           "Check your key and signing method.", AWSAccessKeyId=auth["key"],
                           StringToSign=string_to_sign, SignatureProvided=auth["signature"],
                           CanonicalRequest=canonical_request)

    @staticmethod
    def _check_date(headers: dict[str, str], scope_date: str) -> str:
        amz_date = headers.get("x-amz-date", "")
        try:
            when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise _S3Error(403, "AccessDenied",
                           "AWS authentication requires a valid Date or x-amz-date header") from None
        if amz_date[:8] != scope_date:
            raise _S3Error(400, "AuthorizationHeaderMalformed",
                           f"The authorization header is malformed; Invalid credential date. Date is not the "
                           f"same as X-Amz-Date: {scope_date}.")
        if abs(datetime.now(UTC) - when) > _MAX_SKEW:
            raise _S3Error(403, "RequestTimeTooSkewed",
                           "The difference between the request time and the current time is too large.",
                           RequestTime=amz_date)
        return amz_date

    @staticmethod
    def _check_payload(headers: dict[str, str], body: bytes) -> str:
        claimed = headers.get("x-amz-content-sha256")
        if claimed is None:
            raise _S3Error(400, "InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
        actual = hashlib.sha256(body).hexdigest()
        if claimed not in ("UNSIGNED-PAYLOAD", actual):
            raise _S3Error(400, "XAmzContentSHA256Mismatch",
                           "The provided 'x-amz-content-sha256' header does not match what was computed.",
                           ClientComputedContentSHA256=claimed, S3ComputedContentSHA256=actual)
        return claimed

    @staticmethod
    def _canonical_request(method: str, path: str, query: str, headers: dict[str, str], signed: list[str],
                           payload_sha256: str) -> str:
        canonical_uri = "/".join(_uri_encode(unquote(segment)) for segment in path.split("/")) or "/"
        pairs = sorted((_uri_encode(k), _uri_encode(v)) for k, v in parse_qsl(query, keep_blank_values=True))
        canonical_query = "&".join(f"{k}={v}" for k, v in pairs)
        canonical_headers = "".join(f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed)
        return "\n".join([method, canonical_uri, canonical_query, canonical_headers, ";".join(signed),
                          payload_sha256])

    def _signing_key(self, date: str) -> bytes:
        key = _hmac(f"AWS4{self.secret_key}".encode(), date)
        for part in (self.region, "s3", "aws4_request"):
            key = _hmac(key, part)
        return key
