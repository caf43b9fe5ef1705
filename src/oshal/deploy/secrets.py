"""``oshal deploy secrets``: the folder of secret files a deployment mounts, one file per secret.

Random secrets are generated once and kept: running it again never changes one (the dispatch key signs every envelope
and derives every bot's login; the KEK wraps stored credentials). What derives from them is written again each time:
each bot's node credentials (its Redis ACL URL and gateway token, exactly what ``oshal migrate`` provisions for it)
and its Redis password alone (for KEDA), so a bot added to the fleet gets its files and a removed one loses them.

The files are named like the settings they hold (``oshal_dispatch_key``), so a container reading ``/run/secrets`` as
``OSHAL_SECRETS_DIR`` finds them. The folder is 0700: on the host it is the boundary. The files in it are 0644,
because Compose mounts them as they are and the containers' non-root user is not the user who generated them; each
container is given only the files it needs.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from oshal.bots.manifest import BotManifest
from oshal.control.api_keys import issue
from oshal.control.bot_tokens import BotTokens
from oshal.deploy.spec import BUCKET, DATABASE, OWNER_ROLE, node_secret, redis_password_secret
from oshal.errors import Invalid
from oshal.mesh.acl import bot_password
from oshal.mesh.redis_keys import acl_user
from oshal.mesh.signing import derive_key

API_ROLE = "oshal_api"
POSTGRES_PASSWORD = "postgres_password"  # noqa: S105 - a file name
REDIS_PASSWORD = "redis_password"  # noqa: S105 - a file name
DATABASE_URL = "oshal_database_url"
API_DATABASE_URL = "oshal_api_database_url"
REDIS_URL = "oshal_redis_url"
DISPATCH_KEY = "oshal_dispatch_key"
SECRETS_KEK = "oshal_secrets_kek"
BOOTSTRAP_KEY = "oshal_bootstrap_key"
S3_ACCESS_KEY = "oshal_s3_access_key"
S3_SECRET_KEY = "oshal_s3_secret_key"  # noqa: S105 - a file name
# Given by the operator, never generated: Vault's token exists once Vault is initialised, the tunnel's in Cloudflare.
VAULT_TOKEN = "oshal_vault_token"  # noqa: S105 - a file name
TUNNEL_TOKEN = "cloudflared_token"  # noqa: S105 - a file name
_DERIVED = re.compile(r"^(node-[a-z][a-z0-9-]*|redis-password-[a-z][a-z0-9-]*)$")


@dataclass
class SecretsReport:
    folder: Path
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    derived: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"folder": str(self.folder), "created": self.created, "kept": self.kept, "derived": self.derived,
                "removed": self.removed}


class _Folder:
    def __init__(self, path: Path, report: SecretsReport) -> None:
        self.path = path
        self.report = report

    def read(self, name: str) -> str | None:
        file = self.path / name
        return file.read_text().strip() if file.exists() else None

    def write(self, name: str, value: str) -> None:
        scratch = self.path / f".{name}.tmp"
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "w") as handle:
            handle.write(value + "\n")
        os.chmod(scratch, 0o644)  # whatever the umask: see the module's docstring
        os.replace(scratch, self.path / name)

    def keep_or_create(self, name: str, make: str | None = None) -> str:
        existing = self.read(name)
        if existing:
            self.report.kept.append(name)
            return existing
        value = make if make is not None else secrets.token_urlsafe(32)
        self.write(name, value)
        self.report.created.append(name)
        return value

    def given(self, name: str, value: str) -> str:
        (self.report.kept if self.read(name) == value else self.report.created).append(name)
        self.write(name, value)
        return value


def _login(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"))


def _check_url(name: str, url: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(url)
    # A unix socket has no host: Redis names its path, Postgres passes it as ?host=.
    if parts.scheme not in schemes or not (parts.hostname or parts.scheme == "unix" or "host=" in parts.query):
        raise Invalid(f"{name} {url.split('@')[-1]!r} is not a {' or '.join(schemes)} URL with a host",
                      hint=f"e.g. {schemes[0]}://USER:PASSWORD@HOST:PORT/...")
    if not parts.password:
        raise Invalid(f"{name} has no password", hint="give the login in the URL: SCHEME://USER:PASSWORD@HOST")
    return url


def write_secrets(folder: Path, fleet: dict[str, BotManifest], *, database_url: str | None = None,
                  redis_url: str | None = None) -> SecretsReport:
    """Fill ``folder`` (see the module's docstring). ``database_url`` (the schema owner's) and ``redis_url`` (an admin
    login) point at servers you run; without them the Compose file's own Postgres and Redis are meant, with generated
    passwords."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    report = SecretsReport(folder)
    files = _Folder(folder, report)
    if database_url:
        owner_url = files.given(DATABASE_URL, _check_url("--database-url", database_url, ("postgresql", "postgres")))
    else:
        password = files.keep_or_create(POSTGRES_PASSWORD)
        owner_url = files.given(DATABASE_URL, f"postgresql://{OWNER_ROLE}:{password}@postgres:5432/{DATABASE}")
    if redis_url:
        admin_url = files.given(REDIS_URL, _check_url("--redis-url", redis_url, ("redis", "rediss", "unix")))
    else:
        password = files.keep_or_create(REDIS_PASSWORD)
        admin_url = files.given(REDIS_URL, f"redis://default:{password}@redis:6379/0")
    # The API role's password is kept; its host follows the owner's.
    previous = files.read(API_DATABASE_URL)
    api_password = unquote(urlsplit(previous).password or "") if previous else secrets.token_urlsafe(32)
    files.given(API_DATABASE_URL, _login(owner_url, API_ROLE, api_password))
    key = files.keep_or_create(DISPATCH_KEY).encode()
    files.keep_or_create(SECRETS_KEK, base64.b64encode(os.urandom(32)).decode())
    files.keep_or_create(BOOTSTRAP_KEY, issue().plaintext)
    files.keep_or_create(S3_ACCESS_KEY, f"{BUCKET}-{secrets.token_hex(8)}")
    files.keep_or_create(S3_SECRET_KEY)
    tokens = BotTokens(derive_key(key, "bot-tokens"))
    wanted: set[str] = set()
    for bot in sorted(fleet):
        password = bot_password(key, admin_url, bot)
        credentials = {"redis": {bot: _login(admin_url, acl_user(bot), password)},
                       "gateway_tokens": {bot: tokens.issue(bot)}}
        files.write(node_secret(bot), json.dumps(credentials))
        files.write(redis_password_secret(bot), password)
        wanted |= {node_secret(bot), redis_password_secret(bot)}
        report.derived += [node_secret(bot), redis_password_secret(bot)]
    for stale in sorted(p for p in folder.iterdir() if _DERIVED.match(p.name) and p.name not in wanted):
        stale.unlink()
        report.removed.append(stale.name)
    return report
