"""Bring the platform's engines to a ready state: embedded or external servers, roles, schema, fleet, ACLs.

Shared by ``oshal up`` and the test suite, so both exercise the same start-up path.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from oshal.audit.seal import is_superuser, migrate_sealed
from oshal.bots.manifest import BotManifest, load_fleet
from oshal.bots.model_provider import ModelProvider, apply_provider, resolve_provider
from oshal.connectors.trust import TrustStore
from oshal.control.admin import AdminService
from oshal.control.auth import Authenticator
from oshal.control.bot_registry import register_fleet
from oshal.control.bot_tokens import BotTokens
from oshal.control.connector_catalog import Catalog, CuratedBundle
from oshal.control.reservation_ttl import check_reservation_ttl
from oshal.embedded import EmbeddedPostgres, EmbeddedRedis
from oshal.embedded.keeper import Engine, EngineKeeper
from oshal.errors import ConfigError
from oshal.launcher.node_seal import NodeFiles, write_node_files
from oshal.logs import get_logger
from oshal.mesh import lanes
from oshal.mesh.acl import bot_password, provision_bot_user, save_users
from oshal.mesh.redis import connect
from oshal.mesh.redis_keys import acl_user
from oshal.mesh.signing import derive_key
from oshal.secretfiles import read_or_create, secrets_dir, write_private
from oshal.security.startup import require_secrets
from oshal.settings import Settings
from oshal.store.db import Database
from oshal.store.migrate import (
    API_ROLE,
    DATABASE,
    OWNER_ROLE,
    REPORT_ROLE,
    bootstrap_embedded,
    ensure_api_role,
    with_credentials,
)
from oshal.workflows.registry import load_builtin, register_builtin

log = get_logger(__name__)


@dataclass
class Engines:
    owner_url: str
    api_url: str
    redis_url: str
    dispatch_key: bytes
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    fleet: dict[str, BotManifest] = field(default_factory=dict)
    bot_credentials: Path | None = None
    node: NodeFiles | None = None
    report_url: str | None = None
    keeper: EngineKeeper | None = None

    def supervise(self) -> None:
        """Restart the embedded engines whenever they die (external servers are their operator's to run)."""
        embedded: dict[str, Engine] = {}
        if self.postgres:
            embedded["postgres"] = self.postgres
        if self.redis:
            embedded["redis"] = self.redis
        if embedded and self.keeper is None:
            self.keeper = EngineKeeper(embedded)
            self.keeper.start()

    def stop(self) -> None:
        if self.keeper:
            self.keeper.stop()  # first, or it would restart what is being stopped
            self.keeper = None
        if self.redis:
            self.redis.stop()
        if self.postgres:
            self.postgres.stop()


def dispatch_key(settings: Settings) -> bytes:
    if settings.dispatch_key is not None:
        return settings.dispatch_key.get_secret_value().encode()
    if settings.mode != "dev":
        raise ConfigError("OSHAL_DISPATCH_KEY is not set; outside dev mode it is required",
                          hint="set it to a random string of at least 32 characters")
    return read_or_create(secrets_dir(settings.home) / "dispatch-key", 32).encode()


@contextmanager
def stopped_on_failure(engines: Engines) -> Iterator[None]:
    """Stop the engines this start-up began when a later step fails, then let the failure through."""
    try:
        yield
    except Exception:
        engines.stop()
        raise


def start_engines(settings: Settings) -> Engines:
    """Start embedded servers (unless external URLs are configured), then roles and migrations."""
    require_secrets(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    secret_dir = secrets_dir(settings.home)
    api_password = read_or_create(secret_dir / "pg-api")
    report_password = read_or_create(secret_dir / "pg-report")
    superuser_url: str | None
    if settings.database_url is None and settings.redis_url is None:
        pg, rd = EmbeddedPostgres(settings.home), EmbeddedRedis(settings.home)
        pg.start()
        try:
            rd.start()
            owner_password = read_or_create(secret_dir / "pg-owner")
            bootstrap_embedded(pg.url(), owner_password, api_password, report_password)
        except Exception:
            pg.stop()
            rd.stop()
            raise
        owner_url, superuser_url = pg.url(OWNER_ROLE, owner_password, DATABASE), pg.url(database=DATABASE)
        engines = Engines(owner_url, pg.url(API_ROLE, api_password, DATABASE), rd.url(), dispatch_key(settings),
                          postgres=pg, redis=rd, report_url=pg.url(REPORT_ROLE, report_password, DATABASE))
    elif settings.database_url is None or settings.redis_url is None:
        raise ConfigError("set both OSHAL_DATABASE_URL and OSHAL_REDIS_URL to use external servers, or neither "
                          "to run the embedded ones")
    else:
        owner_url = settings.database_url
        superuser_url = owner_url if is_superuser(owner_url) else None
        if settings.api_database_url:
            api_url = settings.api_database_url
        else:
            ensure_api_role(owner_url, api_password, report_password)
            api_url = with_credentials(owner_url, API_ROLE, api_password)
        engines = Engines(owner_url, api_url, settings.redis_url, dispatch_key(settings),
                          report_url=with_credentials(owner_url, REPORT_ROLE, report_password))
    with stopped_on_failure(engines):
        applied = migrate_sealed(engines.owner_url, superuser_url)
        if applied:
            log.info("schema migrated", versions=applied)
    return engines


def attach(settings: Settings) -> Engines:
    """Connection details of an embedded platform that ``oshal up`` is already running under ``settings.home``."""
    if not (settings.home / "pg" / "PG_VERSION").exists():
        raise ConfigError(f"no embedded platform under {settings.home}", hint="start one with `oshal up`")
    secret_dir = secrets_dir(settings.home)
    pg, rd = EmbeddedPostgres(settings.home), EmbeddedRedis(settings.home)
    owner = pg.url(OWNER_ROLE, read_or_create(secret_dir / "pg-owner"), DATABASE)
    api = pg.url(API_ROLE, read_or_create(secret_dir / "pg-api"), DATABASE)
    report = pg.url(REPORT_ROLE, read_or_create(secret_dir / "pg-report"), DATABASE)
    return Engines(owner, api, rd.url(), dispatch_key(settings), report_url=report)


def _bot_redis_url(admin_url: str, user: str, password: str) -> str:
    parts = urlsplit(admin_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"))


async def provision_bot_users(redis_url: str, key: bytes, fleet: dict[str, BotManifest]) -> dict[str, str]:
    """Create or reset each bot's ACL user (its password derived from the dispatch ``key``), save them to the ACL
    file and create the lanes' consumer groups; returns ``{bot: its own Redis URL}``."""
    admin = connect(redis_url)
    credentials: dict[str, str] = {}
    try:
        for name in fleet:
            password = bot_password(key, redis_url, name)
            await provision_bot_user(admin, name, password)
            credentials[name] = _bot_redis_url(redis_url, acl_user(name), password)
        await save_users(admin)  # into the ACL file, so the users survive a restart of Redis
        await lanes.ensure_groups(admin, fleet)
    finally:
        await admin.aclose()
    return credentials


async def provision_fleet(engines: Engines, fleet_dir: Path, home: Path,
                          provider: ModelProvider | None = None) -> dict[str, BotManifest]:
    """Register manifests (the model-capable bots switched to ``provider``, when one is configured), create each bot's
    ACL user and lane groups, and write the node's credentials: all bots' under ``run/`` for the platform's user, and
    the node host's own folder (see :mod:`oshal.launcher.node_seal`)."""
    fleet = apply_provider(load_fleet(fleet_dir), provider)
    if provider is not None:
        log.info("model-capable bots run on the configured provider", provider=provider.describe(),
                 bots=sorted(n for n, m in fleet.items() if m.model_capable))
    register_fleet(engines.owner_url, fleet)
    credentials = await provision_bot_users(engines.redis_url, engines.dispatch_key, fleet)
    path = home / "run" / "bot-credentials.json"
    write_private(path, json.dumps(credentials))
    tokens = BotTokens(derive_key(engines.dispatch_key, "bot-tokens"))
    gateway_tokens = {name: tokens.issue(name) for name in fleet}
    write_private(home / "run" / "bot-tokens.json", json.dumps(gateway_tokens))
    engines.node = write_node_files(home, fleet, credentials, gateway_tokens)
    engines.fleet, engines.bot_credentials = fleet, path
    return fleet


async def install_curated_connectors(engines: Engines, settings: Settings) -> list[str]:
    """Trust the shipped ``oshal`` publisher key and install the curated, signed connectors (once)."""
    bundle = await asyncio.to_thread(CuratedBundle.read, settings.connectors_dir)
    db = Database(engines.api_url, min_size=1, max_size=2, name="oshal-catalog")
    await db.open()
    try:
        return await Catalog(db, TrustStore.in_home(settings.home)).install_curated(bundle)
    finally:
        await db.close()


async def bootstrap_admin_key(engines: Engines, key_file: Path, provided: str | None = None) -> str | None:
    """Make sure a working operator key exists: ``provided`` (OSHAL_BOOTSTRAP_KEY, registered once) or, in dev
    mode, one kept in ``key_file``. Returns a key that was newly generated (only ever into ``key_file``)."""
    db = Database(engines.api_url, min_size=1, max_size=2, name="oshal-bootstrap")
    await db.open()
    try:
        admin = AdminService(db, Authenticator(db))
        if provided:
            await admin.register_bootstrap_key(provided)
            return None
        existing = key_file.read_text().strip() if key_file.exists() else None  # noqa: ASYNC240 - start-up only
        new_key = await admin.bootstrap(existing)
    finally:
        await db.close()
    if new_key:
        write_private(key_file, new_key + "\n")
    return new_key


def prepare(settings: Settings) -> Engines:
    """Everything before the processes start. Synchronous entry for the CLI."""
    require_secrets(settings)  # fail closed first: a prod platform without its secrets says so before anything
    provider = resolve_provider(settings)  # and a model provider without its model or key
    check_reservation_ttl(settings.reservation_ttl_s, apply_provider(load_fleet(settings.fleet_dir), provider).values())
    engines = start_engines(settings)
    with stopped_on_failure(engines):
        asyncio.run(provision_fleet(engines, settings.fleet_dir, settings.home, provider))
        register_builtin(engines.owner_url, load_builtin(settings.workflows_dir))
        provided = settings.bootstrap_key.get_secret_value() if settings.bootstrap_key else None
        asyncio.run(bootstrap_admin_key(engines, settings.admin_key_file, provided))
        installed = asyncio.run(install_curated_connectors(engines, settings))
        if installed:
            log.info("curated connectors installed", connectors=installed)
    return engines


__all__ = ["Engines", "attach", "bootstrap_admin_key", "dispatch_key", "install_curated_connectors", "prepare",
           "provision_bot_users", "provision_fleet", "start_engines"]
