"""Fail closed at start-up (missing, default or weak secrets outside dev mode) and per-key rate limits."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import Platform, make_tenant
from oshal.control.api_keys import issue
from oshal.control.ratelimit import KeyRateLimiter
from oshal.errors import ConfigError, RateLimited
from oshal.security.startup import require_secrets, secret_problems
from oshal.settings import Settings

STRONG = "k3y-" + "".join(chr(ord("a") + i % 26) + str(i % 10) for i in range(20))
KEK = base64.b64encode(bytes(range(32))).decode()


def prod(**values: object) -> Settings:
    return Settings(mode="prod", **values)  # type: ignore[arg-type]


def test_prod_mode_names_every_missing_secret_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        require_secrets(prod())
    message = caught.value.message
    for setting in ("OSHAL_DISPATCH_KEY", "OSHAL_SECRETS_KEK", "OSHAL_BOOTSTRAP_KEY"):
        assert f"{setting} is not set" in message
    assert "generate one with" in message and caught.value.hint and "OSHAL_MODE=dev" in caught.value.hint


@pytest.mark.parametrize(("value", "why"), [
    ("changeme", "well-known default"), ("short-but-random-9", "at least 32"),
    ("a" * 40, "fewer than 10 distinct characters"),
])
def test_default_and_weak_secrets_are_refused(value: str, why: str) -> None:
    problems = secret_problems(prod(dispatch_key=value, secrets_kek=KEK, bootstrap_key=issue().plaintext))
    assert len(problems) == 1 and problems[0].startswith("OSHAL_DISPATCH_KEY") and why in problems[0]


def test_a_kek_must_be_32_bytes_and_vault_needs_its_address_and_token() -> None:
    problems = secret_problems(prod(dispatch_key=STRONG, secrets_kek="bm90IDMyIGJ5dGVz",
                                    bootstrap_key=issue().plaintext))
    assert problems == [problems[0]] and "not base64 of 32 bytes" in problems[0]
    vault = secret_problems(prod(dispatch_key=STRONG, secrets_backend="vault", bootstrap_key=issue().plaintext))
    assert [p.split(" ")[0] for p in vault] == ["OSHAL_VAULT_URL", "OSHAL_VAULT_TOKEN"]


def test_strong_secrets_pass_and_dev_mode_needs_none() -> None:
    require_secrets(prod(dispatch_key=STRONG, secrets_kek=KEK, bootstrap_key=issue().plaintext))
    require_secrets(Settings(mode="dev"))


def test_oshal_up_refuses_to_start_in_prod_without_secrets(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
    env.update(OSHAL_MODE="prod", OSHAL_HOME=str(tmp_path / "home"), OSHAL_DISPATCH_KEY="changeme", COLUMNS="400")
    done = subprocess.run([sys.executable, "-m", "oshal.cli.main", "up"], env=env, capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 9, done.stderr  # the config exit code
    assert "refusing to start in prod mode" in done.stderr
    assert "OSHAL_DISPATCH_KEY is a well-known default" in done.stderr
    assert not (tmp_path / "home" / "pg").exists()  # refused before anything started


def test_the_rate_limiter_refuses_beyond_the_burst_and_refills() -> None:
    # A slow refill (one request per 1,000 s), so no token comes back however slowly this test runs.
    limiter = KeyRateLimiter(rate=0.001, burst=3)
    key = issue().prefix
    for _ in range(3):
        limiter.check(key)  # type: ignore[arg-type]
    with pytest.raises(RateLimited) as caught:
        limiter.check(key)  # type: ignore[arg-type]
    assert 0 < caught.value.retry_after_s <= 1000 and "burst 3" in caught.value.message
    limiter.check("another key")  # type: ignore[arg-type]  # each key has its own bucket
    refilling = KeyRateLimiter(rate=1_000_000.0, burst=1)  # a token every microsecond: back before the next call
    refilling.check(key)  # type: ignore[arg-type]
    time.sleep(0.001)
    refilling.check(key)  # type: ignore[arg-type]


def test_the_api_answers_429_with_retry_after_per_key(platform: Platform) -> None:
    tenant = make_tenant(platform, "chatty")
    saved = platform.plane.rate_limits
    platform.plane.rate_limits = KeyRateLimiter(rate=0.001, burst=2)
    try:
        codes = [tenant.http.get("/v1/tickets").status_code for _ in range(3)]
        limited = tenant.http.get("/v1/tickets")
        with platform.client() as admin:
            assert admin.get("/v1/whoami").status_code == 200  # another key is not affected
    finally:
        platform.plane.rate_limits = saved
    assert codes == [200, 200, 429] and limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1 and limited.json()["error"] == "rate_limited"


def test_an_oversized_body_is_refused_before_it_is_read(platform: Platform) -> None:
    tenant = make_tenant(platform, "big")
    response = tenant.http.post("/v1/tickets", content=b"{" + b" " * (64 * 1024 * 1024) + b"}",
                                headers={"content-type": "application/json"})
    assert response.status_code == 413 and "exceeds the limit" in response.json()["message"]
    assert httpx.get(f"{platform.url}/healthz").status_code == 200
