"""What the node host is given: its bots' own credentials and manifests, and nothing of the platform's.

The node host runs bot code. ``oshal up`` writes it a folder of its own under ``$OSHAL_HOME/node`` (its bots' Redis
ACL URLs and gateway tokens in one file, and the manifests it runs) and starts it with that file's path, not with
``OSHAL_HOME``. When the platform runs as root, the node host runs as the unprivileged system user ``oshal_node``,
which may read that folder (through its group) but not change it: the platform writes there at every start, and a
folder the bots' user could write would let bot code plant a link that the platform then writes through. The node's
own writable folder is ``node/work`` (its home and working directory), where the platform never writes. The rest of
``$OSHAL_HOME`` (secrets, the Postgres data, the Redis configuration, logs, keys) is private to the platform's user.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from oshal.bots.manifest import BotManifest
from oshal.logs import get_logger
from oshal.secretfiles import write_private
from oshal.settings import Settings
from oshal.sysusers import NODE_USER, SystemUser, ensure_system_user, make_traversable, running_as_root

log = get_logger(__name__)

# Settings the node host reads; everything else of the platform's OSHAL_* configuration stays out of its environment.
_NODE_SETTINGS = ("mode", "log_level", "log_json", "max_deliveries", "claim_idle_ms", "heartbeat_ttl_s",
                  "drain_timeout_s")


@dataclass(frozen=True, slots=True)
class NodeFiles:
    dir: Path
    credentials: Path
    fleet_dir: Path
    work_dir: Path  # the node's home and working directory: the one folder its user may write


def node_user() -> SystemUser | None:
    """The user the node host runs as: ``oshal_node`` when the platform runs as root, else the platform's own."""
    return ensure_system_user(NODE_USER) if running_as_root() else None


def node_dir(home: Path) -> Path:
    return home / "node"


def write_node_files(home: Path, fleet: dict[str, BotManifest], redis_urls: dict[str, str],
                     gateway_tokens: dict[str, str]) -> NodeFiles:
    """The node's folder: its credentials and the manifests it runs, the platform's, readable by the node's user."""
    user = node_user()
    folder = node_dir(home)
    if folder.exists() and folder.stat().st_uid != os.geteuid():
        shutil.rmtree(folder)  # left by an earlier layout in which the node's user owned it: trust nothing in it
    fleet_dir = folder / "fleet"
    if fleet_dir.exists():
        shutil.rmtree(fleet_dir)  # exactly the fleet just provisioned, no manifest left from an earlier one
    fleet_dir.mkdir(parents=True, mode=0o700)
    for name, manifest in fleet.items():
        write_private(fleet_dir / f"{name}.yaml", yaml.safe_dump(manifest.model_dump(mode="json"), sort_keys=False))
    credentials = folder / "credentials.json"
    write_private(credentials, json.dumps({"redis": {n: redis_urls[n] for n in fleet},
                                           "gateway_tokens": {n: gateway_tokens[n] for n in fleet}}))
    work = folder / "work"
    work.mkdir(mode=0o700, exist_ok=True)
    for path in (folder, fleet_dir, credentials, *fleet_dir.iterdir()):
        if user:  # owned by the platform, readable by the node's group, writable by nobody else
            os.chown(path, os.geteuid(), user.gid)
            os.chmod(path, 0o750 if path.is_dir() else 0o640)
        else:
            os.chmod(path, 0o700 if path.is_dir() else 0o600)
    if user:
        os.chown(work, user.uid, user.gid)
        make_traversable(folder)
    return NodeFiles(folder, credentials, fleet_dir, work)


# What the node host inherits of the platform's environment besides its bots' model keys: the basics a process
# needs (search path, locale, time zone, certificates, proxies). Nothing else reaches bot code.
_INHERITED = ("PATH", "LANG", "LANGUAGE", "TZ", "PYTHONPATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
              "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


def node_env(settings: Settings, files: NodeFiles, api_url: str, user: SystemUser | None,
             fleet: dict[str, BotManifest]) -> dict[str, str]:
    """The node host's environment: no OSHAL_HOME, no database or admin Redis URL, no platform key, and of the rest
    only the basics and the model keys its bots name (``api_key_env``)."""
    wanted = {*_INHERITED, *(m.api_key_env for m in fleet.values() if m.api_key_env)}
    env = {k: v for k, v in os.environ.items() if k in wanted or k.startswith("LC_")}
    for name in _NODE_SETTINGS:
        value = getattr(settings, name)
        env[f"OSHAL_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    env.update({"OSHAL_FLEET_DIR": str(files.fleet_dir), "OSHAL_NODE_CREDENTIALS": str(files.credentials),
                "OSHAL_API_URL": api_url, "HOME": str(files.work_dir)})
    if user:
        env.update({"USER": user.name, "LOGNAME": user.name})
    return env


def seal_home(home: Path, *, shared: tuple[Path, ...]) -> None:
    """``$OSHAL_HOME`` for the platform's user only, except the ``shared`` folders (the node's, the Redis socket's).

    As root, the home stays enterable (the Postgres and node users must reach their folders below it) but not
    listable, and everything else in it is closed to other users, including what an earlier run left open.
    """
    os.chmod(home, 0o711 if running_as_root() else 0o700)
    for entry in home.iterdir():
        if entry in shared or entry.is_symlink():
            continue
        mode = entry.stat().st_mode & 0o7777
        if mode & 0o077:
            os.chmod(entry, mode & ~0o077)


def open_runtime_to(user: SystemUser) -> None:
    """The node's user must run this Python and import oshal: make their folders enterable, saying which changed."""
    for path in {Path(sys.executable).resolve(), Path(sys.prefix), Path(sys.base_prefix),
                 Path(__file__).resolve().parents[1]}:
        changed = make_traversable(path)
        if changed:
            log.warning("made folders enterable (search only) for the node user, to run Python", user=user.name,
                        folders=[str(p) for p in changed])
