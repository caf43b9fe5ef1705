"""What every deployment artifact agrees on: the image's paths, the ports, the third-party images and the measured
resource figures."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from oshal.bots.manifest import BotManifest, load_fleet

# Inside the image (deploy/Dockerfile sets these as its environment).
HOME = "/var/lib/oshal"  # the control plane's and the migration's writable state: trust store, anchors, objects
FLEET = "/opt/oshal/fleet"
SECRETS = "/run/secrets"  # OSHAL_SECRETS_DIR: a file per setting, named like its variable
TMP = "/tmp"  # noqa: S108 - a container's own tmpfs, the one writable path of a read-only root
LIVENESS_FILE = f"{TMP}/oshal-node.alive"  # OSHAL_NODE_LIVENESS_FILE
NODE_CREDENTIALS = f"{SECRETS}/node-credentials.json"  # a bot's own Redis login and gateway token
API_PORT = 8800
USER_ID = 10001  # the image's non-root user and group

# Third-party images, pinned to a release line. Redis 6.2 or newer and PostgreSQL 15 or newer are what the platform
# needs; cloudflared reads its token from a file (--token-file) from 2025.4.0 on.
POSTGRES_IMAGE = "postgres:17-alpine"
REDIS_IMAGE = "redis:7.4-alpine"
VAULT_IMAGE = "hashicorp/vault:1.17"
MINIO_IMAGE = "minio/minio:RELEASE.2025-04-22T22-12-26Z"
MINIO_CLIENT_IMAGE = "minio/mc:RELEASE.2025-04-16T18-13-26Z"
CLOUDFLARED_IMAGE = "cloudflare/cloudflared:2025.4.0"

OWNER_ROLE = "oshal_owner"
DATABASE = "oshal"
BUCKET = "oshal"


Fleet = dict[str, BotManifest]


def fleet(folder: Path) -> Fleet:
    """The manifests a deployment is generated from (the same loader, and errors, as the node's)."""
    return load_fleet(folder)


def default_image() -> str:
    try:
        return f"oshal:{version('oshal')}"
    except PackageNotFoundError:  # a source tree that was never installed
        return "oshal:latest"


@dataclass(frozen=True, slots=True)
class Resources:
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str

    def as_k8s(self) -> dict[str, dict[str, str]]:
        return {"requests": {"cpu": self.cpu_request, "memory": self.memory_request},
                "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit}}


# Measured on the 2-core development machine (bench/node_memory.py): one `oshal node --bot echo` process idles at
# 47-52 MB RSS, and a node host of 10-16 demo bots at 48-50 MB. The request leaves room for work in flight; the exec
# probe (`oshal node --check`, a second interpreter for half a second) runs in the same container, hence the
# limit's headroom.
BOT_RESOURCES = Resources(cpu_request="50m", cpu_limit="1", memory_request="96Mi", memory_limit="256Mi")
# A model harness holds its SDK client and up to `concurrency` responses in memory.
MODEL_BOT_RESOURCES = Resources(cpu_request="100m", cpu_limit="1", memory_request="128Mi", memory_limit="512Mi")
# `oshal serve`: API, collector, sweeper, scheduler and the Security Center's scans in one process.
CONTROL_PLANE_RESOURCES = Resources(cpu_request="250m", cpu_limit="2", memory_request="256Mi", memory_limit="1Gi")
MIGRATE_RESOURCES = Resources(cpu_request="100m", cpu_limit="1", memory_request="128Mi", memory_limit="512Mi")


def calls_out(manifest: BotManifest, *, provider_configured: bool) -> bool:
    """Whether the bot's own process reaches the internet: a model harness calls its provider directly, and so does a
    model-capable bot once a model provider is configured (OSHAL_MODEL_PROVIDER switches it at start)."""
    return manifest.harness != "deterministic" or (manifest.model_capable and provider_configured)


def node_secret(bot: str) -> str:
    """The secret holding one bot's node credentials (its Redis ACL login and gateway token), by that bot's name."""
    return f"node-{bot}"


def redis_password_secret(bot: str) -> str:
    """The bot's Redis password alone: what KEDA's Redis Streams scaler logs in with (XPENDING on the bot's lane)."""
    return f"redis-password-{bot}"
