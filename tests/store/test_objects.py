"""Object stores: the local folder on a real filesystem, and S3 against a local server that checks SigV4 itself.

None of these tests needs the platform (no Postgres or Redis): each builds its store on ``tmp_path`` or on a
fresh :class:`FakeS3` bound to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import socket
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from external.fake_s3 import FakeS3
from oshal.errors import ConfigError, Conflict, Forbidden, Invalid, NotFound, OshalError, Unavailable
from oshal.settings import Settings
from oshal.store.objects import (
    MAX_KEY_LENGTH,
    LocalObjectStore,
    S3ObjectStore,
    StoredObject,
    check_key,
    open_object_store,
)

MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00frame" * 100

BAD_KEYS = ["../x", "/abs", "a//b", "a/./b", "a/../b", "..", ".", "", "a/", "a b", "a\\b", "a\nb", "tickets/ü.png",
            "x~meta.json", "k" * (MAX_KEY_LENGTH + 1)]
GOOD_KEYS = ["a", "tickets/T-42/render.mp4", ".hidden", "a..b", "A_b-c.d/e", "k" * MAX_KEY_LENGTH]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _text(error: OshalError) -> str:
    return f"{error!r} {error} {error.hint or ''} {error.to_dict()}"


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def local(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


@pytest.fixture
def fake_s3() -> Iterator[FakeS3]:
    with FakeS3() as server:
        yield server


def _s3_store(fake: FakeS3, **overrides: Any) -> S3ObjectStore:
    args: dict[str, Any] = {"endpoint": fake.url, "bucket": fake.bucket, "region": fake.region,
                            "access_key": fake.access_key, "secret_key": SecretStr(fake.secret_key)}
    args.update(overrides)
    return S3ObjectStore(**args)


@pytest.fixture
async def s3(fake_s3: FakeS3) -> AsyncIterator[S3ObjectStore]:
    store = _s3_store(fake_s3)
    try:
        yield store
    finally:
        await store.aclose()


# -- keys ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_invalid_with_a_message_saying_what_is_allowed(key: str) -> None:
    with pytest.raises(Invalid) as info:
        check_key(key)
    assert "A-Z a-z 0-9 . _ -" in info.value.message
    assert "'..'" in (info.value.hint or "")


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_good_keys_are_accepted_unchanged(key: str) -> None:
    assert check_key(key) == key


# -- local folder -------------------------------------------------------------------------------------------------


async def test_local_round_trip_returns_the_bytes_and_their_metadata(local: LocalObjectStore) -> None:
    stored = await local.put("tickets/T-42/render.mp4", MP4, "video/mp4")
    assert stored == StoredObject("tickets/T-42/render.mp4", len(MP4), _sha(MP4), "video/mp4")
    assert await local.get("tickets/T-42/render.mp4") == MP4
    assert await local.head("tickets/T-42/render.mp4") == stored


async def test_local_metadata_survives_a_new_store_on_the_same_folder(local: LocalObjectStore) -> None:
    await local.put("frames/0001.png", PNG, "image/png")
    reopened = LocalObjectStore(local.root)
    assert await reopened.head("frames/0001.png") == StoredObject("frames/0001.png", len(PNG), _sha(PNG), "image/png")


async def test_local_overwrite_replaces_bytes_and_metadata(local: LocalObjectStore) -> None:
    await local.put("artifact", MP4, "video/mp4")
    second = await local.put("artifact", PNG, "image/png")
    assert await local.get("artifact") == PNG
    assert await local.head("artifact") == second
    assert _files(local.root) == ["artifact", "artifact~meta.json"]


async def test_local_delete_is_idempotent_and_removes_the_sidecar(local: LocalObjectStore) -> None:
    await local.put("a/b.png", PNG, "image/png")
    await local.delete("a/b.png")
    await local.delete("a/b.png")
    await local.delete("never/existed")
    assert _files(local.root) == []
    with pytest.raises(NotFound, match=re.escape("no object 'a/b.png'")):
        await local.get("a/b.png")
    with pytest.raises(NotFound):
        await local.head("a/b.png")


async def test_local_folder_keys_are_not_objects(local: LocalObjectStore) -> None:
    await local.put("a/b", PNG, "image/png")
    with pytest.raises(NotFound):
        await local.get("a")
    with pytest.raises(NotFound):
        await local.head("a")


@pytest.mark.parametrize("key", ["../x", "/abs", "a//b", "a/./b", "../../etc/passwd"])
async def test_local_traversal_keys_are_refused_before_touching_disk(local: LocalObjectStore, key: str) -> None:
    with pytest.raises(Invalid):
        await local.put(key, b"x", "text/plain")
    for operation in (local.get, local.head, local.delete):
        with pytest.raises(Invalid):
            await operation(key)
    assert not local.root.exists()
    assert not (local.root.parent / "x").exists()


async def test_local_symlink_out_of_the_folder_is_not_followed(local: LocalObjectStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    local.root.mkdir()
    (local.root / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(Invalid, match="leads outside"):
        await local.put("escape/x", b"x", "text/plain")
    with pytest.raises(Invalid, match="leads outside"):
        await local.get("escape/x")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("content_type", ["", "video", "text/plain\r\nX-Injected: 1", "a/b" + "c" * 300])
async def test_local_bad_content_type_is_invalid(local: LocalObjectStore, content_type: str) -> None:
    with pytest.raises(Invalid, match="content type"):
        await local.put("k", b"x", content_type)


async def test_local_files_are_0600_and_folders_0700_whatever_the_umask(local: LocalObjectStore) -> None:
    previous = os.umask(0)
    try:
        await local.put("t/T-1/frames/0001.png", PNG, "image/png")
    finally:
        os.umask(previous)
    for folder in (local.root, local.root / "t", local.root / "t/T-1", local.root / "t/T-1/frames"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for file in ("0001.png", "0001.png~meta.json"):
        assert stat.S_IMODE((local.root / "t/T-1/frames" / file).stat().st_mode) == 0o600, file


async def test_local_failed_write_keeps_the_old_object_and_leaves_no_temp_file(
        local: LocalObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    await local.put("clip.mp4", MP4, "video/mp4")
    temp_names: list[str] = []

    def disk_full(source: str, target: Any) -> None:
        temp_names.append(Path(source).name)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(Unavailable, match="No space left on device"):
        await local.put("clip.mp4", PNG, "image/png")
    monkeypatch.undo()

    assert await local.get("clip.mp4") == MP4
    assert (await local.head("clip.mp4")).content_type == "video/mp4"
    assert _files(local.root) == ["clip.mp4", "clip.mp4~meta.json"]
    assert temp_names, "the write never reached the rename"
    for name in temp_names:  # a temporary file can never be mistaken for (or addressed as) an object
        with pytest.raises(Invalid):
            check_key(name)


async def test_local_concurrent_overwrites_never_expose_a_partial_object(local: LocalObjectStore) -> None:
    versions = [bytes([n]) * (256 * 1024) for n in range(8)]
    await local.put("hot", versions[0], "application/octet-stream")
    reads: list[bytes] = []

    async def read_repeatedly() -> None:
        for _ in range(20):
            reads.append(await local.get("hot"))

    writes = [local.put("hot", data, "application/octet-stream") for data in versions]
    await asyncio.gather(*writes, read_repeatedly(), read_repeatedly())
    assert reads and all(data in versions for data in reads)
    final = await local.get("hot")
    assert (await local.head("hot")).sha256 == _sha(final)
    assert _files(local.root) == ["hot", "hot~meta.json"]


async def test_local_head_trusts_the_bytes_when_the_sidecar_is_stale(local: LocalObjectStore) -> None:
    await local.put("clip", MP4, "video/mp4")
    replacement = local.root / "replacement"
    replacement.write_bytes(PNG)
    os.replace(replacement, local.root / "clip")  # as if the process died before rewriting the sidecar
    assert await local.head("clip") == StoredObject("clip", len(PNG), _sha(PNG), "application/octet-stream")


async def test_local_object_and_folder_of_the_same_name_conflict(local: LocalObjectStore) -> None:
    await local.put("a", b"file", "text/plain")
    with pytest.raises(Conflict, match="'a/b'"):
        await local.put("a/b", b"x", "text/plain")
    await local.put("c/d", b"x", "text/plain")
    with pytest.raises(Conflict, match="'c'"):
        await local.put("c", b"x", "text/plain")
    assert await local.get("a") == b"file"


# -- S3 -----------------------------------------------------------------------------------------------------------


def test_signer_reproduces_the_aws_documented_example() -> None:
    """AWS's published SigV4 example for S3 (GET /test.txt with a Range header, 2013-05-24)."""
    from oshal.store.objects import _authorization  # private on purpose; this pins it to the specification

    empty = _sha(b"")
    headers = {"host": "examplebucket.s3.amazonaws.com", "range": "bytes=0-9", "x-amz-content-sha256": empty,
               "x-amz-date": "20130524T000000Z"}
    authorization = _authorization("GET", "/test.txt", headers, empty, access_key="AKIAIOSFODNN7EXAMPLE",
                                   secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", region="us-east-1")
    assert authorization == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")


async def test_s3_round_trip_and_head(s3: S3ObjectStore, fake_s3: FakeS3) -> None:
    stored = await s3.put("tickets/T-42/render.mp4", MP4, "video/mp4")
    assert stored == StoredObject("tickets/T-42/render.mp4", len(MP4), _sha(MP4), "video/mp4")
    assert await s3.get("tickets/T-42/render.mp4") == MP4
    assert await s3.head("tickets/T-42/render.mp4") == stored
    held = fake_s3.stored("tickets/T-42/render.mp4")
    assert held is not None and held.data == MP4 and held.content_type == "video/mp4"
    assert held.metadata == {"x-amz-meta-sha256": _sha(MP4)}


async def test_s3_requests_are_path_style_and_signed_without_the_secret(s3: S3ObjectStore, fake_s3: FakeS3) -> None:
    await s3.put("frames/0001.png", PNG, "image/png")
    await s3.get("frames/0001.png")
    put, get = fake_s3.requests
    assert (put.method, put.path, get.method, get.path) == ("PUT", f"/{fake_s3.bucket}/frames/0001.png",
                                                            "GET", f"/{fake_s3.bucket}/frames/0001.png")
    assert put.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={fake_s3.access_key}/")
    assert "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-sha256," in (
        put.headers["authorization"])
    assert put.headers["x-amz-content-sha256"] == _sha(PNG)
    assert get.headers["x-amz-content-sha256"] == _sha(b"")
    assert all(fake_s3.secret_key not in value for r in fake_s3.requests for value in r.headers.values())


async def test_s3_empty_and_binary_objects_round_trip(s3: S3ObjectStore) -> None:
    await s3.put("empty", b"", "application/octet-stream")
    assert await s3.get("empty") == b""
    assert (await s3.head("empty")).size == 0
    binary = bytes(range(256)) * 3
    await s3.put("binary", binary, "application/octet-stream")
    assert await s3.get("binary") == binary


async def test_s3_overwrite_replaces_the_object(s3: S3ObjectStore) -> None:
    await s3.put("artifact", MP4, "video/mp4")
    second = await s3.put("artifact", PNG, "image/png")
    assert await s3.get("artifact") == PNG
    assert await s3.head("artifact") == second


async def test_s3_missing_object_is_not_found(s3: S3ObjectStore) -> None:
    with pytest.raises(NotFound, match=re.escape("no object 'nope.png'")):
        await s3.get("nope.png")
    with pytest.raises(NotFound):
        await s3.head("nope.png")


async def test_s3_delete_is_idempotent(s3: S3ObjectStore, fake_s3: FakeS3) -> None:
    await s3.put("gone.png", PNG, "image/png")
    await s3.delete("gone.png")
    await s3.delete("gone.png")
    assert fake_s3.keys() == []
    with pytest.raises(NotFound):
        await s3.head("gone.png")


async def test_s3_wrong_secret_is_forbidden_and_never_echoed(fake_s3: FakeS3) -> None:
    canary = "wrong-secret-canary-7f3a9c"
    store = _s3_store(fake_s3, secret_key=canary)
    try:
        with pytest.raises(Forbidden) as put_error:
            await store.put("clip.mp4", MP4, "video/mp4")
        with pytest.raises(Forbidden) as get_error:
            await store.get("clip.mp4")
        with pytest.raises(Forbidden) as head_error:
            await store.head("clip.mp4")
    finally:
        await store.aclose()
    assert "refused the credentials" in put_error.value.message
    assert "SignatureDoesNotMatch" in put_error.value.message
    assert "OSHAL_S3_SECRET_KEY" in (put_error.value.hint or "")
    for error in (put_error.value, get_error.value, head_error.value):
        assert canary not in _text(error)
    assert canary not in repr(store)
    assert fake_s3.keys() == []


async def test_s3_unknown_access_key_is_forbidden(fake_s3: FakeS3) -> None:
    store = _s3_store(fake_s3, access_key="AKIAUNKNOWN000000000")
    try:
        with pytest.raises(Forbidden, match="InvalidAccessKeyId"):
            await store.get("clip.mp4")
    finally:
        await store.aclose()


async def test_fake_s3_rejects_a_request_altered_after_signing(fake_s3: FakeS3) -> None:
    async def tamper(request: httpx.Request) -> None:
        request.headers["content-type"] = "text/html"

    client = httpx.AsyncClient(event_hooks={"request": [tamper]})
    store = _s3_store(fake_s3, client=client)
    try:
        with pytest.raises(Forbidden, match="SignatureDoesNotMatch"):
            await store.put("page", b"<p>hi</p>", "text/plain")
    finally:
        await client.aclose()
    assert fake_s3.keys() == []


async def test_s3_unreachable_endpoint_is_unavailable() -> None:
    store = S3ObjectStore(f"http://127.0.0.1:{_closed_port()}", "oshal-artifacts", "us-east-1", "AKIA", "secret")
    try:
        with pytest.raises(Unavailable, match=re.escape("cannot reach S3 at http://127.0.0.1:")) as info:
            await store.put("clip.mp4", MP4, "video/mp4")
    finally:
        await store.aclose()
    assert "OSHAL_S3_ENDPOINT" in (info.value.hint or "")


@pytest.mark.parametrize("status", [500, 503])
async def test_s3_server_errors_are_unavailable(s3: S3ObjectStore, fake_s3: FakeS3, status: int) -> None:
    fake_s3.outage = status
    with pytest.raises(Unavailable, match=f"failed reading 'clip.mp4': {status}"):
        await s3.get("clip.mp4")
    with pytest.raises(Unavailable):
        await s3.head("clip.mp4")


async def test_s3_slow_endpoint_times_out_as_unavailable(fake_s3: FakeS3) -> None:
    fake_s3.delay_s = 5
    store = _s3_store(fake_s3, timeout_s=0.2)
    try:
        with pytest.raises(Unavailable, match="Timeout"):
            await store.get("clip.mp4")
    finally:
        await store.aclose()


async def test_s3_missing_bucket_is_a_config_error(fake_s3: FakeS3) -> None:
    store = _s3_store(fake_s3, bucket="no-such-bucket")
    try:
        with pytest.raises(ConfigError, match="no bucket 'no-such-bucket'") as info:
            await store.get("clip.mp4")
    finally:
        await store.aclose()
    assert "OSHAL_S3_BUCKET" in (info.value.hint or "")


async def test_s3_invalid_keys_are_refused_without_a_request(s3: S3ObjectStore, fake_s3: FakeS3) -> None:
    for key in ("../x", "/abs", "a//b", "a/./b"):
        with pytest.raises(Invalid):
            await s3.put(key, b"x", "text/plain")
        with pytest.raises(Invalid):
            await s3.get(key)
    assert fake_s3.requests == []


@pytest.mark.parametrize(("endpoint", "bucket", "region", "setting"), [
    ("ftp://127.0.0.1", "oshal-artifacts", "us-east-1", "OSHAL_S3_ENDPOINT"),
    ("http://user:hunter2@127.0.0.1", "oshal-artifacts", "us-east-1", "OSHAL_S3_ENDPOINT"),
    ("http://127.0.0.1/prefix", "oshal-artifacts", "us-east-1", "OSHAL_S3_ENDPOINT"),
    ("http://127.0.0.1", "Bad/Bucket", "us-east-1", "OSHAL_S3_BUCKET"),
    ("http://127.0.0.1", "oshal-artifacts", "us/east", "OSHAL_S3_REGION"),
])
def test_s3_malformed_settings_name_the_setting(endpoint: str, bucket: str, region: str, setting: str) -> None:
    with pytest.raises(ConfigError, match=setting) as info:
        S3ObjectStore(endpoint, bucket, region, "AKIA", "secret")
    assert "hunter2" not in _text(info.value)


async def test_s3_repr_omits_the_keys_and_an_injected_client_stays_open(fake_s3: FakeS3) -> None:
    async with httpx.AsyncClient() as client:
        store = _s3_store(fake_s3, client=client)
        assert fake_s3.secret_key not in repr(store) and fake_s3.access_key not in repr(store)
        await store.aclose()
        assert not client.is_closed


# -- factory ------------------------------------------------------------------------------------------------------


def _settings(tmp_path: Path, **values: Any) -> Settings:
    base: dict[str, Any] = {"home": tmp_path, "object_store": "local", "objects_dir": None, "s3_endpoint": None,
                            "s3_bucket": None, "s3_access_key": None, "s3_secret_key": None}
    return Settings(**{**base, **values})


def test_factory_defaults_to_a_local_folder_under_home(tmp_path: Path) -> None:
    store = open_object_store(_settings(tmp_path))
    assert isinstance(store, LocalObjectStore) and store.root == tmp_path.resolve() / "objects"
    chosen = open_object_store(_settings(tmp_path, objects_dir=tmp_path / "artifacts"))
    assert isinstance(chosen, LocalObjectStore) and chosen.root == tmp_path.resolve() / "artifacts"


def test_factory_s3_without_settings_names_every_missing_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        open_object_store(_settings(tmp_path, object_store="s3"))
    for name in ("OSHAL_S3_ENDPOINT", "OSHAL_S3_BUCKET", "OSHAL_S3_ACCESS_KEY", "OSHAL_S3_SECRET_KEY"):
        assert name in info.value.message


def test_factory_s3_names_only_what_is_missing(tmp_path: Path) -> None:
    settings = _settings(tmp_path, object_store="s3", s3_endpoint="http://127.0.0.1:9", s3_bucket="oshal-artifacts",
                         s3_access_key=SecretStr("AKIA"), s3_secret_key=SecretStr(""))
    with pytest.raises(ConfigError) as info:
        open_object_store(settings)
    assert "OSHAL_S3_SECRET_KEY" in info.value.message
    assert "OSHAL_S3_ENDPOINT" not in info.value.message and "OSHAL_S3_ACCESS_KEY" not in info.value.message


async def test_factory_s3_store_works_against_the_server(tmp_path: Path, fake_s3: FakeS3) -> None:
    settings = _settings(tmp_path, object_store="s3", s3_endpoint=fake_s3.url, s3_bucket=fake_s3.bucket,
                         s3_region=fake_s3.region, s3_access_key=SecretStr(fake_s3.access_key),
                         s3_secret_key=SecretStr(fake_s3.secret_key))
    store = open_object_store(settings)
    try:
        assert isinstance(store, S3ObjectStore)
        await store.put("from-settings.txt", b"hello", "text/plain; charset=utf-8")
        assert await store.get("from-settings.txt") == b"hello"
    finally:
        await store.aclose()
