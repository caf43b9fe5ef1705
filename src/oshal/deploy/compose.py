"""``oshal deploy compose``: a Compose file for the whole platform, generated from the fleet.

Services: Postgres and Redis (append-only file, an ACL file on its volume) with volumes; ``migrate``, a one-shot that
every oshal service waits for (``service_completed_successfully``); the control plane; one service per bot
(``oshal node --bot NAME --replicas 1``, as many containers as its manifest's ``replicas``); optionally Vault, an
S3 object store (MinIO, with a one-shot that creates the bucket) and a ``cloudflared`` tunnel under the ``tunnel``
profile. Secrets are Compose secrets read from files (``oshal deploy secrets`` writes them); no service gets a secret
in its environment. Networks keep the layers apart: Postgres is reachable from the migration and the control plane
only, bots reach only Redis and the control plane (and the internet when a model harness needs it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from oshal.bots.manifest import BotManifest
from oshal.deploy import secrets as names
from oshal.deploy.spec import (
    API_PORT,
    BUCKET,
    CLOUDFLARED_IMAGE,
    DATABASE,
    FLEET,
    HOME,
    MINIO_CLIENT_IMAGE,
    MINIO_IMAGE,
    NODE_CREDENTIALS,
    OWNER_ROLE,
    POSTGRES_IMAGE,
    REDIS_IMAGE,
    TMP,
    VAULT_IMAGE,
    calls_out,
    node_secret,
)

# Networks: `data` (Postgres, Vault, the object store) and `mesh` (Redis, the bots) reach nothing outside;
# `egress` is the only one with a route out, for the control plane (connectors, published port), model bots and
# the tunnel.
DATA, MESH, EGRESS = "data", "mesh", "egress"
_HARDENED: dict[str, Any] = {"read_only": True, "tmpfs": [TMP], "cap_drop": ["ALL"],
                             "security_opt": ["no-new-privileges:true"]}
# Redis starts from an ACL file on its volume (ACL SAVE keeps the bots' users there); the first start writes the
# admin login into it from the secret. `$$` is Compose's escape for a literal `$`.
_REDIS_START = ("umask 077; [ -s /data/users.acl ] || printf 'user default on >%s ~* &* +@all\\n' "
                "\"$$(cat /run/secrets/redis_password)\" > /data/users.acl; "
                "exec docker-entrypoint.sh redis-server --appendonly yes --aclfile /data/users.acl")
_READYZ = ("import os, urllib.request; "
           "urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('OSHAL_API_PORT', '8800'), timeout=4)")


@dataclass(frozen=True, slots=True)
class ComposeOptions:
    image: str
    fleet_source: str  # the fleet folder as the Compose file sees it (relative to the file, or absolute)
    secrets_source: str = "./secrets"
    with_vault: bool = False
    with_object_store: bool = False
    tunnel: bool = False
    publish: str = f"127.0.0.1:{API_PORT}"  # where the host reaches the API (interface:port)
    drain_timeout_s: float = 20.0
    provider_configured: bool = False


def _secret(name: str, target: str | None = None) -> str | dict[str, str]:
    return {"source": name, "target": target} if target else name


def _platform_env(options: ComposeOptions) -> dict[str, str]:
    env = {"OSHAL_MODE": "prod"}
    if options.with_vault:
        env.update({"OSHAL_SECRETS_BACKEND": "vault", "OSHAL_VAULT_URL": "http://vault:8200"})
    return env


def _platform_secrets(options: ComposeOptions) -> list[str]:
    """What both the migration and the control plane need besides their database logins."""
    return [names.REDIS_URL, names.DISPATCH_KEY, names.VAULT_TOKEN if options.with_vault else names.SECRETS_KEK]


def _oshal_service(options: ComposeOptions, command: list[str], networks: list[str]) -> dict[str, Any]:
    return {"image": options.image, "command": command, "networks": networks, **_HARDENED,
            "volumes": [f"{options.fleet_source}:{FLEET}:ro"]}


def _migrate(options: ComposeOptions) -> dict[str, Any]:
    service = _oshal_service(options, ["migrate"], [DATA, MESH])
    service["volumes"].append(f"oshal-home:{HOME}")
    depends: dict[str, Any] = {"postgres": {"condition": "service_healthy"},
                               "redis": {"condition": "service_healthy"}}
    if options.with_vault:
        depends["vault"] = {"condition": "service_started"}
    service.update({
        "environment": _platform_env(options),
        "secrets": [names.DATABASE_URL, names.API_DATABASE_URL, names.BOOTSTRAP_KEY, *_platform_secrets(options)],
        "depends_on": depends, "restart": "no", "healthcheck": {"disable": True},
    })
    return service


def _control_plane(options: ComposeOptions) -> dict[str, Any]:
    service = _oshal_service(options, ["serve", "--host", "0.0.0.0", "--port", str(API_PORT)],  # noqa: S104
                             [DATA, MESH, EGRESS])
    service["volumes"].append(f"oshal-home:{HOME}")
    env = _platform_env(options)
    secrets: list[str | dict[str, str]] = [names.API_DATABASE_URL, *_platform_secrets(options)]
    depends: dict[str, Any] = {"migrate": {"condition": "service_completed_successfully"}}
    if options.with_object_store:
        env.update({"OSHAL_OBJECT_STORE": "s3", "OSHAL_S3_ENDPOINT": "http://minio:9000", "OSHAL_S3_BUCKET": BUCKET})
        secrets += [names.S3_ACCESS_KEY, names.S3_SECRET_KEY]
        depends["minio-init"] = {"condition": "service_completed_successfully"}
    service.update({
        "environment": env, "secrets": secrets, "ports": [f"{options.publish}:{API_PORT}"], "depends_on": depends,
        "restart": "unless-stopped", "stop_grace_period": f"{int(options.drain_timeout_s) + 10}s",
        "healthcheck": {"test": ["CMD", "python", "-c", _READYZ], "interval": "10s", "timeout": "5s",
                        "retries": 3, "start_period": "30s"},
    })
    return service


def _bot(options: ComposeOptions, manifest: BotManifest) -> dict[str, Any]:
    networks = [MESH, EGRESS] if calls_out(manifest, provider_configured=options.provider_configured) else [MESH]
    service = _oshal_service(options, ["node", "--bot", manifest.name, "--replicas", "1"], networks)
    service.update({
        "environment": {"OSHAL_MODE": "prod", "OSHAL_NODE_CREDENTIALS": NODE_CREDENTIALS,
                        "OSHAL_API_URL": f"http://control-plane:{API_PORT}"},
        "secrets": [_secret(node_secret(manifest.name), NODE_CREDENTIALS.rsplit("/", 1)[-1])],
        "depends_on": {"migrate": {"condition": "service_completed_successfully"},
                       "redis": {"condition": "service_healthy"}},
        "deploy": {"replicas": manifest.replicas},
        "restart": "unless-stopped",
        # SIGTERM: the node stops reading, finishes and flushes what it holds, then exits (OSHAL_DRAIN_TIMEOUT_S).
        "stop_grace_period": f"{int(options.drain_timeout_s) + 10}s",
        "healthcheck": {"test": ["CMD", "oshal", "node", "--check"], "interval": "15s", "timeout": "10s",
                        "retries": 3, "start_period": "30s"},
    })
    return service


def _postgres() -> dict[str, Any]:
    return {
        "image": POSTGRES_IMAGE, "networks": [DATA], "restart": "unless-stopped",
        "environment": {"POSTGRES_USER": OWNER_ROLE, "POSTGRES_DB": DATABASE,
                        "POSTGRES_PASSWORD_FILE": f"/run/secrets/{names.POSTGRES_PASSWORD}"},
        "secrets": [names.POSTGRES_PASSWORD], "volumes": ["postgres-data:/var/lib/postgresql/data"],
        "healthcheck": {"test": ["CMD", "pg_isready", "-U", OWNER_ROLE, "-d", DATABASE], "interval": "5s",
                        "timeout": "5s", "retries": 30},
    }


def _redis() -> dict[str, Any]:
    return {
        "image": REDIS_IMAGE, "networks": [MESH], "restart": "unless-stopped",
        "command": ["sh", "-c", _REDIS_START], "secrets": [names.REDIS_PASSWORD], "volumes": ["redis-data:/data"],
        "healthcheck": {"test": ["CMD-SHELL", "REDISCLI_AUTH=\"$$(cat /run/secrets/redis_password)\" redis-cli ping "
                                 "| grep -q PONG"], "interval": "5s", "timeout": "5s", "retries": 30},
    }


def _vault() -> dict[str, Any]:
    config = {"storage": {"file": {"path": "/vault/file"}}, "disable_mlock": True, "ui": False,
              "listener": [{"tcp": {"address": "0.0.0.0:8200", "tls_disable": True}}]}  # the data network only
    return {"image": VAULT_IMAGE, "command": ["server"], "networks": [DATA], "restart": "unless-stopped",
            "environment": {"VAULT_LOCAL_CONFIG": json.dumps(config, sort_keys=True)},
            "volumes": ["vault-data:/vault/file"]}


def _minio() -> dict[str, Any]:
    # MinIO reads *_FILE as a file name; from /run/secrets, a bare name and a path agree.
    return {"image": MINIO_IMAGE, "command": ["server", "/data"], "networks": [DATA], "restart": "unless-stopped",
            "working_dir": "/run/secrets",
            "environment": {"MINIO_ROOT_USER_FILE": names.S3_ACCESS_KEY,
                            "MINIO_ROOT_PASSWORD_FILE": names.S3_SECRET_KEY},
            "secrets": [names.S3_ACCESS_KEY, names.S3_SECRET_KEY], "volumes": ["minio-data:/data"],
            "healthcheck": {"test": ["CMD", "mc", "ready", "local"], "interval": "5s", "timeout": "5s",
                            "retries": 30}}


def _minio_init() -> dict[str, Any]:
    script = ("mc alias set oshal http://minio:9000 \"$$(cat /run/secrets/oshal_s3_access_key)\" "
              "\"$$(cat /run/secrets/oshal_s3_secret_key)\" >/dev/null && "
              f"mc mb --ignore-existing oshal/{BUCKET}")
    return {"image": MINIO_CLIENT_IMAGE, "entrypoint": ["sh", "-c", script], "networks": [DATA], "restart": "no",
            "secrets": [names.S3_ACCESS_KEY, names.S3_SECRET_KEY],
            "depends_on": {"minio": {"condition": "service_healthy"}}}


def _cloudflared() -> dict[str, Any]:
    # Route the tunnel's public hostname to http://control-plane:8800 in Cloudflare's dashboard.
    return {"image": CLOUDFLARED_IMAGE, "profiles": ["tunnel"], "networks": [EGRESS], "restart": "unless-stopped",
            "command": ["tunnel", "--no-autoupdate", "run", "--token-file", f"/run/secrets/{names.TUNNEL_TOKEN}"],
            "secrets": [names.TUNNEL_TOKEN],
            "depends_on": {"control-plane": {"condition": "service_healthy"}}}


def service_name(bot: str) -> str:
    return f"bot-{bot}"


def compose(fleet: dict[str, BotManifest], options: ComposeOptions) -> dict[str, Any]:
    """The Compose document (a dict in the Compose specification's shape)."""
    services: dict[str, Any] = {"postgres": _postgres(), "redis": _redis()}
    volumes: dict[str, Any] = {"postgres-data": {}, "redis-data": {}, "oshal-home": {}}
    if options.with_vault:
        services["vault"] = _vault()
        volumes["vault-data"] = {}
    if options.with_object_store:
        services["minio"] = _minio()
        services["minio-init"] = _minio_init()
        volumes["minio-data"] = {}
    services["migrate"] = _migrate(options)
    services["control-plane"] = _control_plane(options)
    for name in sorted(fleet):
        services[service_name(name)] = _bot(options, fleet[name])
    if options.tunnel:
        services["cloudflared"] = _cloudflared()
    used = sorted({s if isinstance(s, str) else s["source"] for svc in services.values()
                   for s in svc.get("secrets", [])})
    return {
        "name": "oshal",
        "services": services,
        "networks": {DATA: {"internal": True}, MESH: {"internal": True}, EGRESS: {}},
        "volumes": volumes,
        "secrets": {name: {"file": f"{options.secrets_source.rstrip('/')}/{name}"} for name in used},
    }
