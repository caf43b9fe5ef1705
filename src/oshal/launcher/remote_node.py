"""The joining side of a remote node: where it may send its code, how it reaches Redis, what it keeps, how it runs.

``oshal node join CODE --api URL`` exchanges the code (through the CLI's HTTP client) for the node's identity, which
is kept under ``$OSHAL_HOME/remote-node/`` (``identity.json`` with mode 0600, and the bot's manifest) and run by the
node host exactly as ``oshal node --bot X`` runs one bot. ``oshal node resume`` runs it again after a restart. The
node never sees the platform's files: only what the join answered.

Fail closed: the code goes only over HTTPS (plain HTTP to loopback only), and the node logs in to Redis over TLS
(``rediss://``) unless Redis is on loopback or the operator says the network is encrypted already (a WireGuard mesh).
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import yaml

from oshal import logs
from oshal.errors import ConfigError, Invalid
from oshal.secretfiles import write_private
from oshal.settings import Settings

IDENTITY_DIR = "remote-node"
_REDIS_SCHEMES = ("redis", "rediss", "unix")


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_api_url(url: str) -> str:
    """The control plane's address, if a code may be sent there: HTTPS, or plain HTTP to loopback only."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"--api {url!r} is not an http(s) URL", hint="e.g. --api https://100.64.0.1:8800")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise Invalid(f"refusing to send an enrollment code to {parts.hostname} over plain HTTP: the code, and the "
                      "credentials it is exchanged for, would cross the network readable by anyone on the way",
                      hint="use https:// (`oshal serve` serves TLS with OSHAL_TLS_CERT_FILE and OSHAL_TLS_KEY_FILE; "
                           "a private CA goes in SSL_CERT_FILE); plain http:// is accepted for loopback only")
    return urlunsplit(parts._replace(path=parts.path.rstrip("/"), query="", fragment=""))


@dataclass(frozen=True, slots=True)
class RedisTransport:
    """How this node reaches Redis, when that differs from what the control plane advertised."""

    address: str | None = None  # scheme://host:port (no credentials), e.g. rediss://100.64.0.1:6380
    ca_file: str | None = None  # the CA that signed Redis' TLS certificate (rediss:// only)
    allow_plain: bool = False  # plain redis:// to another host: only inside an already encrypted network

    def checked(self) -> RedisTransport:
        """The options on their own, before anything is sent anywhere."""
        if self.address is not None:
            parts = urlsplit(self.address)
            if parts.scheme not in _REDIS_SCHEMES:
                raise Invalid(f"--redis-url {self.address!r} is not a Redis URL",
                              hint="e.g. --redis-url rediss://100.64.0.1:6380 (TLS) or redis://HOST:6379")
            if parts.username or parts.password:
                raise Invalid("--redis-url takes no credentials: the node logs in as the user its join created",
                              hint="give only scheme://host:port")
        if self.ca_file is not None:
            ca = Path(self.ca_file).expanduser().resolve()
            if not ca.is_file():
                raise ConfigError(f"--redis-ca {ca} is not a readable file",
                                  hint="the PEM file of the CA that signed Redis' TLS certificate")
            return RedisTransport(self.address, str(ca), self.allow_plain)
        return self


def node_redis_url(given: str, transport: RedisTransport) -> str:
    """The URL the node logs in to Redis with: ``given`` (the join's answer, with the node's own credentials),
    moved to ``transport.address`` if set, with the CA file for TLS. Refuses plain TCP to another host unless
    ``transport.allow_plain``."""
    transport = transport.checked()
    parts = urlsplit(given)
    if transport.address is not None:
        over = urlsplit(transport.address)
        userinfo = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else ""
        parts = over._replace(netloc=f"{userinfo}@{over.netloc}" if userinfo else over.netloc)
    if parts.scheme not in _REDIS_SCHEMES:
        raise ConfigError(f"the control plane gave a Redis URL with scheme {parts.scheme!r}",
                          hint="set OSHAL_NODE_REDIS_URL on the control plane to redis:// or rediss://, or pass "
                               "--redis-url")
    if transport.ca_file is not None:
        if parts.scheme != "rediss":
            raise Invalid(f"--redis-ca applies to TLS (rediss://) only, and Redis is at {parts.scheme}://",
                          hint="pass --redis-url rediss://HOST:PORT too, or leave --redis-ca out")
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "ssl_ca_certs"]
        parts = parts._replace(query=urlencode([*query, ("ssl_ca_certs", transport.ca_file)]))
    if parts.scheme == "redis" and not is_loopback(parts.hostname) and not transport.allow_plain:
        raise ConfigError(f"the node would log in to Redis at {parts.hostname} over plain TCP: its password and "
                          "every ticket it works would cross the network unencrypted",
                          hint="use TLS: --redis-url rediss://HOST:PORT --redis-ca CA.pem (or OSHAL_NODE_REDIS_URL="
                               "rediss://... on the control plane); inside an encrypted WireGuard mesh "
                               "(Headscale/Tailscale) pass --allow-plain-redis")
    return urlunsplit(parts)


def identity_dir(home: Path) -> Path:
    return home / IDENTITY_DIR


def joined_before(home: Path) -> dict[str, Any] | None:
    path = identity_dir(home) / "identity.json"
    return load_identity(home) if path.exists() else None


def save_identity(home: Path, api_url: str, joined: dict[str, Any], transport: RedisTransport) -> Path:
    """Keep what the join answered (mode 0600 in a 0700 folder) with the transport options it was joined with."""
    folder = identity_dir(home)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    fleet = folder / "fleet"
    fleet.mkdir(exist_ok=True, mode=0o700)
    bot = str(joined["bot"])
    for old in fleet.glob("*.yaml"):
        old.unlink()  # exactly the bot this identity serves
    write_private(fleet / f"{bot}.yaml", yaml.safe_dump(joined["manifest"], sort_keys=False))
    identity = {"api_url": api_url, "node_id": str(joined["node_id"]), "bot": bot,
                "redis_url": joined["redis_url"], "gateway_token": joined["gateway_token"],
                "consumer_prefix": joined["consumer_prefix"], "worker": joined["worker"],
                "transport": asdict(transport)}
    path = folder / "identity.json"
    write_private(path, json.dumps(identity, indent=2))
    return path


def load_identity(home: Path) -> dict[str, Any]:
    path = identity_dir(home) / "identity.json"
    try:
        data = json.loads(path.read_text())
        for name in ("api_url", "node_id", "bot", "redis_url", "gateway_token", "consumer_prefix", "worker"):
            data[name]
    except FileNotFoundError as e:
        raise ConfigError(f"this home ({home}) has not joined a platform: {path} does not exist",
                          hint="join first: `oshal node join CODE --api URL` (OSHAL_HOME picks the home)") from e
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"cannot read the node's identity {path}: {e}",
                          hint="join again with a new code (`oshal node enroll` on the control plane)") from e
    if not isinstance(data, dict):
        raise ConfigError(f"the node's identity {path} is not a JSON object", hint="join again with a new code")
    return data


def run_joined(home: Path, transport: RedisTransport | None = None) -> None:
    """Run the bot this home joined as, until stopped (SIGTERM/SIGINT drain in-flight work first)."""
    from oshal.bots.host import run_host
    from oshal.bots.manifest import load_manifest
    from oshal.bots.worker import WorkerOptions

    settings = Settings()
    logs.configure(settings.log_level, json=settings.log_json)
    identity = load_identity(home)
    chosen = (transport or RedisTransport(**identity.get("transport", {}))).checked()
    redis_url = node_redis_url(identity["redis_url"], chosen)
    if transport is not None:  # options given to `resume` hold for later resumes too
        write_private(identity_dir(home) / "identity.json", json.dumps({**identity, "transport": asdict(chosen)},
                                                                       indent=2))
    bot = str(identity["bot"])
    manifest = load_manifest(identity_dir(home) / "fleet" / f"{bot}.yaml")
    worker = identity["worker"]
    options = WorkerOptions(claim_idle_ms=int(worker["claim_idle_ms"]), max_deliveries=int(worker["max_deliveries"]),
                            heartbeat_ttl_s=float(worker["heartbeat_ttl_s"]),
                            drain_timeout_s=float(worker["drain_timeout_s"]),
                            consumer_prefix=str(identity["consumer_prefix"]))
    token = str(identity["gateway_token"])
    run_host({bot: manifest}, {bot: redis_url}, options, str(identity["api_url"]), {bot: token})


__all__ = ["RedisTransport", "check_api_url", "identity_dir", "is_loopback", "joined_before", "load_identity",
           "node_redis_url", "run_joined", "save_identity"]
