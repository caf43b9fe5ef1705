"""Artifact storage (rendered videos, frames, files linked from tickets): a local folder or an S3 bucket.

Both backends take the same keys (:func:`check_key`), so artifacts move between them unchanged.

* :class:`LocalObjectStore` keeps ``<root>/<key>`` plus a sidecar ``<root>/<key>~meta.json`` holding the
  content type and sha256. Every file is written to a temporary sibling, fsynced and renamed into place, so a
  reader sees the old bytes or the new ones, never a mix. ``~`` is outside the key alphabet, so no key can
  name a sidecar or a temporary file.
* :class:`S3ObjectStore` speaks the S3 REST API (path-style URLs, AWS Signature Version 4 signed here with
  hmac/hashlib) to AWS or any compatible service; the sha256 travels as ``x-amz-meta-sha256``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from oshal.errors import ConfigError, Conflict, Forbidden, Invalid, NotFound, OshalError, Unavailable
from oshal.settings import Settings

__all__ = [
    "MAX_KEY_LENGTH",
    "LocalObjectStore",
    "ObjectStore",
    "S3ObjectStore",
    "StoredObject",
    "check_content_type",
    "check_key",
    "open_object_store",
]

MAX_KEY_LENGTH = 512
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(?: *;[ -~]*)?")
_FALLBACK_TYPE = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    sha256: str  # hex; empty when an S3 object was written by something other than oshal
    content_type: str


class ObjectStore(Protocol):
    """Where artifacts live. Keys follow :func:`check_key`; a missing object raises :class:`NotFound`."""

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject: ...

    async def get(self, key: str) -> bytes: ...

    async def head(self, key: str) -> StoredObject: ...

    async def delete(self, key: str) -> None:
        """Remove the object; removing one that does not exist is not an error."""

    async def aclose(self) -> None: ...


def check_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid object key, else raise :class:`Invalid` saying what is allowed."""
    segments = key.split("/")
    if 0 < len(key) <= MAX_KEY_LENGTH and all(_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments):
        return key
    shown = key if len(key) <= 80 else f"{key[:80]}..."
    raise Invalid(f"object key {shown!r} is not allowed: a key is a relative path of 1 to {MAX_KEY_LENGTH} "
                  "characters whose segments use only A-Z a-z 0-9 . _ - and are joined by single '/'",
                  hint="no leading '/', no empty, '.' or '..' segments; e.g. tickets/T-42/render.mp4")


def check_content_type(content_type: str) -> str:
    """Return ``content_type`` if it is a plain ``type/subtype[; params]`` header value, else raise Invalid."""
    if len(content_type) <= 255 and _CONTENT_TYPE.fullmatch(content_type):
        return content_type
    raise Invalid(f"content type {content_type[:80]!r} is not a valid media type",
                  hint="use a value like video/mp4, image/png or text/plain; charset=utf-8")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- local folder ---------------------------------------------------------------------------------------------


def _sidecar(path: Path) -> Path:
    return path.with_name(f"{path.name}~meta.json")


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)  # makes the rename itself durable, not only the file's bytes
    finally:
        os.close(fd)


def _write_atomically(path: Path, data: bytes) -> int:
    """Replace ``path`` with ``data`` (mode 0600) in one rename; returns the new file's inode."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}~", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
            inode = os.fstat(file.fileno()).st_ino
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _fsync_folder(path.parent)
    return inode


def _make_folders(root: Path, folder: Path) -> None:
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    current = root
    for part in folder.relative_to(root).parts:
        current = current / part
        with contextlib.suppress(FileExistsError):  # a file in the way surfaces as NotADirectoryError later
            current.mkdir(mode=0o700)


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads(_sidecar(path).read_bytes())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


class LocalObjectStore:
    """Objects as files under ``root`` (folders 0700, files 0600). File work runs in worker threads."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root).expanduser().resolve()

    @property
    def root(self) -> Path:
        return self._root

    def __repr__(self) -> str:
        return f"LocalObjectStore(root={str(self._root)!r})"

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        check_key(key)
        check_content_type(content_type)
        return await asyncio.to_thread(self._put, key, data, content_type)

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._get, check_key(key))

    async def head(self, key: str) -> StoredObject:
        return await asyncio.to_thread(self._head, check_key(key))

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, check_key(key))

    async def aclose(self) -> None:
        return None

    def _path(self, key: str) -> Path:
        path = (self._root / key).resolve()
        if not path.is_relative_to(self._root):  # a symlink inside the root that points out of it
            raise Invalid(f"object key {key!r} leads outside the object store folder {str(self._root)!r}",
                          hint="remove the symbolic link from the object store folder")
        return path

    def _put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        path = self._path(key)
        stored = StoredObject(key, len(data), _sha256(data), content_type)
        try:
            _make_folders(self._root, path.parent)
            inode = _write_atomically(path, data)
            meta = {"content_type": content_type, "sha256": stored.sha256, "size": stored.size, "inode": inode}
            _write_atomically(_sidecar(path), json.dumps(meta).encode())
        except (IsADirectoryError, NotADirectoryError) as e:
            raise Conflict(f"object key {key!r} clashes with another object's path in {str(self._root)!r}",
                           hint="a local store cannot hold both 'a' and 'a/b'; pick another key") from e
        except OSError as e:
            raise Unavailable(f"cannot write object {key!r} under {str(self._root)!r} ({e.strerror or e})",
                              hint="check that OSHAL_OBJECTS_DIR is writable and the disk has space") from e
        return stored

    def _get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
            raise self._missing(key) from e

    def _head(self, key: str) -> StoredObject:
        path = self._path(key)
        try:
            info = path.stat()
        except (FileNotFoundError, NotADirectoryError) as e:
            raise self._missing(key) from e
        if not stat.S_ISREG(info.st_mode):
            raise self._missing(key)
        meta = _read_sidecar(path)
        # The sidecar names the inode it describes: a crash or a concurrent put between writing the data and
        # its sidecar leaves them disagreeing, and then the bytes on disk are the truth.
        if meta is None or meta.get("inode") != info.st_ino or meta.get("size") != info.st_size:
            return StoredObject(key, info.st_size, _sha256(path.read_bytes()), _FALLBACK_TYPE)
        return StoredObject(key, info.st_size, str(meta["sha256"]), str(meta["content_type"]))

    def _delete(self, key: str) -> None:
        path = self._path(key)
        for file in (path, _sidecar(path)):
            with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
                file.unlink()

    def _missing(self, key: str) -> NotFound:
        return NotFound(f"no object {key!r} in the local object store {str(self._root)!r}")


# -- S3 -------------------------------------------------------------------------------------------------------


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _authorization(method: str, path: str, headers: dict[str, str], payload_sha256: str, *, access_key: str,
                   secret_key: str, region: str) -> str:
    """The SigV4 ``Authorization`` value; ``headers`` (lower-case names) are all signed and include x-amz-date."""
    names = sorted(headers)
    canonical_headers = "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in names)
    signed_headers = ";".join(names)
    canonical_request = "\n".join([method, path, "", canonical_headers, signed_headers, payload_sha256])
    amz_date = headers["x-amz-date"]
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, _sha256(canonical_request.encode())])
    signing_key = b"AWS4" + secret_key.encode()
    for part in (amz_date[:8], region, "s3", "aws4_request"):
        signing_key = _hmac(signing_key, part)
    signature = hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed_headers}, "
            f"Signature={signature}")


def _check_endpoint(endpoint: str) -> str:
    parts = urlsplit(endpoint.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.path or parts.query:
        # The value is not echoed: a malformed one may carry user:password@.
        raise ConfigError("OSHAL_S3_ENDPOINT is not an http(s) URL of the form scheme://host[:port]",
                          hint="no credentials, path or query in it, e.g. https://s3.eu-west-1.amazonaws.com; "
                               "the bucket goes in OSHAL_S3_BUCKET")
    return f"{parts.scheme}://{parts.netloc}"


def _check_bucket(bucket: str) -> str:
    if re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        return bucket
    raise ConfigError(f"OSHAL_S3_BUCKET {bucket!r} is not a valid bucket name",
                      hint="3 to 63 characters: lower-case letters, digits, '.' and '-'")


def _check_region(region: str) -> str:
    if re.fullmatch(r"[a-z0-9-]{1,32}", region):
        return region
    raise ConfigError(f"OSHAL_S3_REGION {region!r} is not a valid region name", hint="e.g. us-east-1")


def _error_code(body: bytes) -> str:
    found = re.search(rb"<Code>([A-Za-z0-9.]{1,64})</Code>", body[:4096])
    return found.group(1).decode() if found else ""


def _reveal(value: str | SecretStr) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


class S3ObjectStore:
    """Objects in an S3 bucket at ``{endpoint}/{bucket}/{key}``. The secret key never leaves the signer."""

    def __init__(self, endpoint: str, bucket: str, region: str, access_key: str | SecretStr,
                 secret_key: str | SecretStr, *, client: httpx.AsyncClient | None = None,
                 timeout_s: float = 10.0) -> None:
        self._endpoint = _check_endpoint(endpoint)
        self._host = urlsplit(self._endpoint).netloc
        self._bucket = _check_bucket(bucket)
        self._region = _check_region(region)
        self._access_key = SecretStr(_reveal(access_key))
        self._secret_key = SecretStr(_reveal(secret_key))
        self._timeout = httpx.Timeout(timeout_s)
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=self._timeout)

    def __repr__(self) -> str:
        return f"S3ObjectStore(endpoint={self._endpoint!r}, bucket={self._bucket!r}, region={self._region!r})"

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        check_key(key)
        stored = StoredObject(key, len(data), _sha256(data), check_content_type(content_type))
        await self._send("PUT", key, f"writing {key!r}", data=data,
                         extra={"content-type": content_type, "x-amz-meta-sha256": stored.sha256})
        return stored

    async def get(self, key: str) -> bytes:
        response = await self._send("GET", check_key(key), f"reading {key!r}")
        return response.content

    async def head(self, key: str) -> StoredObject:
        response = await self._send("HEAD", check_key(key), f"looking up {key!r}")
        headers = response.headers
        return StoredObject(key, int(headers.get("content-length", "0")), headers.get("x-amz-meta-sha256", ""),
                            headers.get("content-type", _FALLBACK_TYPE))

    async def delete(self, key: str) -> None:
        await self._send("DELETE", check_key(key), f"deleting {key!r}")  # S3 answers 204 for missing keys too

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def _send(self, method: str, key: str, what: str, *, data: bytes = b"",
                    extra: dict[str, str] | None = None) -> httpx.Response:
        path = f"/{self._bucket}/{key}"  # keys and bucket names use URL-safe characters only: nothing to encode
        headers = self._signed_headers(method, path, data, extra or {})
        try:
            response = await self._client.request(method, f"{self._endpoint}{path}", headers=headers,
                                                  content=data if method == "PUT" else None, timeout=self._timeout)
        except httpx.TransportError as e:
            raise Unavailable(f"cannot reach S3 at {self._endpoint} for {what} ({type(e).__name__})",
                              hint="check OSHAL_S3_ENDPOINT and that the service is up") from e
        self._raise_for_status(response, key, what)
        return response

    def _signed_headers(self, method: str, path: str, data: bytes, extra: dict[str, str]) -> dict[str, str]:
        payload_sha256 = _sha256(data)
        headers = {"host": self._host, "x-amz-content-sha256": payload_sha256,
                   "x-amz-date": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"), **extra}
        headers["authorization"] = _authorization(
            method, path, headers, payload_sha256, access_key=self._access_key.get_secret_value(),
            secret_key=self._secret_key.get_secret_value(), region=self._region)
        return headers

    def _raise_for_status(self, response: httpx.Response, key: str, what: str) -> None:
        status = response.status_code
        if status < 300:
            return
        code = _error_code(response.content)
        where = f"S3 at {self._endpoint}"
        if code == "NoSuchBucket":
            raise ConfigError(f"{where} has no bucket {self._bucket!r}",
                              hint="create the bucket or set OSHAL_S3_BUCKET to an existing one")
        if status == 404:
            raise NotFound(f"no object {key!r} in S3 bucket {self._bucket!r}")
        if status == 403:
            raise Forbidden(f"{where} refused the credentials for {what} in bucket {self._bucket!r} "
                            f"({code or '403 Forbidden'})",
                            hint="check OSHAL_S3_ACCESS_KEY, OSHAL_S3_SECRET_KEY and OSHAL_S3_REGION, and that "
                                 "the key may read and write the bucket")
        if status >= 500:
            raise Unavailable(f"{where} failed {what}: {status} {code}".rstrip(),
                              hint="the service is failing or throttling; retry later")
        raise OshalError(f"{where} rejected {what}: {status} {code}".rstrip(),
                         hint="check OSHAL_S3_ENDPOINT (an S3-compatible service) and OSHAL_S3_REGION")


# -- factory --------------------------------------------------------------------------------------------------


def _secret_text(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def open_object_store(settings: Settings) -> ObjectStore:
    """The store ``settings.object_store`` names. S3 fails closed, naming every missing setting."""
    if settings.object_store == "local":
        return LocalObjectStore(settings.objects_dir or settings.home / "objects")
    required = {"OSHAL_S3_ENDPOINT": settings.s3_endpoint or "", "OSHAL_S3_BUCKET": settings.s3_bucket or "",
                "OSHAL_S3_ACCESS_KEY": _secret_text(settings.s3_access_key),
                "OSHAL_S3_SECRET_KEY": _secret_text(settings.s3_secret_key)}
    missing = [name for name, value in required.items() if not value]
    if missing:
        raise ConfigError(f"the s3 object store is missing settings: {', '.join(missing)}",
                          hint="set each of them, or set OSHAL_OBJECT_STORE=local to keep artifacts on disk")
    return S3ObjectStore(required["OSHAL_S3_ENDPOINT"], required["OSHAL_S3_BUCKET"], settings.s3_region,
                         SecretStr(required["OSHAL_S3_ACCESS_KEY"]), SecretStr(required["OSHAL_S3_SECRET_KEY"]))
