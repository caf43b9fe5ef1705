"""Host-side tasks: what the CLI runs on the platform's own machine rather than through the API.

Serving the control plane, running a node host, the least-privilege proof against the database itself, sealing the
audit log, refreshing the offline vulnerability database and minting a bootstrap key. The CLI reaches the platform's
internals only through this module and the launcher (see the import contracts in ``pyproject.toml``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oshal import logs
from oshal.errors import ConfigError, Invalid
from oshal.settings_fields import SettingsFields, read_settings

if TYPE_CHECKING:
    from oshal.bots.host import Liveness, NodeAlive
    from oshal.launcher.migrate import MigrationReport
    from oshal.settings import Settings


def serve(host: str, port: int, *, collector: bool, sweeper: bool) -> None:
    """Run the control plane (API, and the collector and sweeper unless turned off) until it is stopped."""
    import uvicorn

    from oshal import console
    from oshal.api.app import create_app
    from oshal.control.plane import Components, ControlPlane
    from oshal.launcher.prepare import dispatch_key
    from oshal.security.startup import require_secrets
    from oshal.settings import Settings

    settings = Settings()
    logs.configure(settings.log_level, json=settings.log_json)
    require_secrets(settings, bootstrap=False)
    if not settings.api_database_url or not settings.redis_url:
        raise ConfigError("`oshal serve` needs OSHAL_API_DATABASE_URL and OSHAL_REDIS_URL",
                          hint="use `oshal up` to start everything with embedded engines")
    if bool(settings.tls_cert_file) != bool(settings.tls_key_file):
        raise ConfigError("TLS needs both OSHAL_TLS_CERT_FILE and OSHAL_TLS_KEY_FILE", hint="set both, or neither")
    plane = ControlPlane(settings, settings.api_database_url, settings.redis_url, dispatch_key(settings),
                         Components(collector=collector, sweeper=sweeper))
    app = create_app(plane, surfaces=[console.surface()])
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=int(settings.drain_timeout_s),
                ssl_certfile=settings.tls_cert_file, ssl_keyfile=settings.tls_key_file)


def _liveness(settings: SettingsFields) -> Liveness | None:
    from oshal.bots.host import Liveness

    if settings.node_liveness_file is None:
        return None
    return Liveness(settings.node_liveness_file, interval_s=min(settings.heartbeat_ttl_s / 3, 5.0))


def check_node() -> NodeAlive:
    """The liveness probe of a node host started with OSHAL_NODE_LIVENESS_FILE: what it last wrote, if recently."""
    from oshal.bots.host import Liveness

    settings = read_settings()  # the node host's reader, without pydantic-settings (see oshal.settings_fields)
    if settings.node_liveness_file is None:
        raise ConfigError("OSHAL_NODE_LIVENESS_FILE is not set, so no node host writes a liveness file to check",
                          hint="set it for both the node and its probe (the image sets /tmp/oshal-node.alive)")
    return Liveness.check(settings.node_liveness_file, max_age_s=max(3 * settings.heartbeat_ttl_s, 15.0))


def run_node(fleet: Path | None, bots: list[str] | None, credentials: Path | None, tokens: Path | None,
             replicas: int | None = None) -> None:
    """Run a node host for the selected bots (all of the fleet by default) until it is stopped. ``replicas``
    replaces the manifests' worker count in this process (a container per replica runs one)."""
    from oshal.bots.host import read_bot_tokens, read_credentials, read_node_credentials, run_host
    from oshal.bots.manifest import load_fleet, select
    from oshal.bots.model_provider import apply_provider, resolve_provider
    from oshal.bots.worker import WorkerOptions

    settings = read_settings(**({"fleet_dir": fleet} if fleet else {}))  # without pydantic-settings: it stays up
    logs.configure(settings.log_level, json=settings.log_json)
    # Under `oshal up` the manifests arrive switched already (and no provider is configured here); a node started on
    # its own switches its model-capable bots to the provider configured in its environment.
    fleet_manifests = load_fleet(settings.fleet_dir, check_schemas=False)  # a model harness checks its schema
    manifests = apply_provider(select(fleet_manifests, bots), resolve_provider(settings))
    if replicas is not None:
        manifests = {name: m.model_copy(update={"replicas": replicas}) for name, m in manifests.items()}
    manifests = with_replicas(manifests, settings.node_replicas)
    options = WorkerOptions(claim_idle_ms=settings.claim_idle_ms, max_deliveries=settings.max_deliveries,
                            heartbeat_ttl_s=settings.heartbeat_ttl_s, drain_timeout_s=settings.drain_timeout_s)
    liveness = _liveness(settings)
    if settings.node_credentials and not credentials:
        urls, own_tokens = read_node_credentials(settings.node_credentials)
        run_host(manifests, urls, options, settings.api_url if own_tokens else None, own_tokens, liveness)
        return
    if credentials:
        urls = read_credentials(credentials)
    elif settings.redis_url and len(manifests) == 1:
        urls = {next(iter(manifests)): settings.redis_url}
    else:
        raise ConfigError("no Redis credentials for the bots",
                          hint="pass --credentials (written by `oshal up`), or --bot NAME with OSHAL_REDIS_URL")
    token_file = tokens or (credentials.parent / "bot-tokens.json" if credentials else None)
    bot_tokens = read_bot_tokens(token_file) if token_file and token_file.exists() else {}
    run_host(manifests, urls, options, settings.api_url if bot_tokens else None, bot_tokens, liveness)


def with_replicas(manifests: dict[str, Any], ordered: dict[str, int]) -> dict[str, Any]:
    """The manifests with the replicas fleet control ordered (a bot ordered to 0 is left out)."""
    unknown = sorted(set(ordered) - set(manifests))
    if unknown:  # a bot dropped from the fleet since the order: nothing to apply it to
        logs.get_logger(__name__).warning("replicas ordered for bots this node does not run", bots=unknown)
    return {name: manifest.model_copy(update={"replicas": ordered[name]}) if name in ordered else manifest
            for name, manifest in manifests.items() if ordered.get(name, 1) > 0}


def verify_security(settings: Settings) -> dict[str, Any]:
    """The least-privilege proof run against the database itself. Embedded: the connection details under
    $OSHAL_HOME. External: OSHAL_DATABASE_URL (the owner) and the runtime roles' passwords that `oshal up` keeps
    under $OSHAL_HOME/secrets (or OSHAL_API_DATABASE_URL)."""
    from oshal.api.inventory import route_declaration_problems
    from oshal.launcher.prepare import attach
    from oshal.secretfiles import secrets_dir
    from oshal.security.rls import verify
    from oshal.store.migrate import API_ROLE, REPORT_ROLE, with_credentials

    if settings.database_url is None:
        engines = attach(settings)
        owner, urls = engines.owner_url, {API_ROLE: engines.api_url, REPORT_ROLE: str(engines.report_url)}
    else:
        owner, folder = settings.database_url, secrets_dir(settings.home)
        urls = {role: with_credentials(owner, role, (folder / name).read_text().strip())
                for role, name in ((API_ROLE, "pg-api"), (REPORT_ROLE, "pg-report")) if (folder / name).exists()}
        if settings.api_database_url:
            urls[API_ROLE] = settings.api_database_url
    report = asyncio.run(verify(owner, urls))
    report.problems += route_declaration_problems()
    return report.as_dict()


def import_vulndb(source: Path, settings: Settings, *, force: bool) -> tuple[int, str]:
    """Refresh the offline vulnerability database; returns (advisories, as-of date)."""
    from oshal.security.vulndb import import_db

    db = import_db(source, settings.home, force=force)
    return len(db.advisories), f"{db.updated:%Y-%m-%d}"


def seal_audit_log(settings: Settings, superuser_url: str | None) -> None:
    """Hand the audit log to its keeper role. Embedded: the superuser URL comes from $OSHAL_HOME."""
    from oshal.audit.seal import seal
    from oshal.embedded import EmbeddedPostgres
    from oshal.launcher.prepare import attach
    from oshal.store.migrate import DATABASE

    if superuser_url is None:
        if settings.database_url is not None:
            raise Invalid("an external database needs --superuser-url (or OSHAL_SUPERUSER_DATABASE_URL)",
                          hint="only a superuser can hand the audit tables to another role")
        attach(settings)  # fails clearly when no embedded platform lives under $OSHAL_HOME
        superuser_url = EmbeddedPostgres(settings.home).url(database=DATABASE)
    seal(superuser_url)


def migrate(*, schema_only: bool) -> MigrationReport:
    """`oshal migrate`: roles, schema and (unless ``schema_only``) the fleet, on the configured external servers."""
    from oshal.launcher.migrate import migrate as migrate_servers
    from oshal.settings import Settings

    settings = Settings()
    logs.configure(settings.log_level, json=settings.log_json)
    return migrate_servers(settings, schema_only=schema_only)


def mint_key() -> str:
    """A new API key's plaintext, for OSHAL_BOOTSTRAP_KEY (registered on the platform's first start)."""
    from oshal.control.api_keys import issue

    return issue().plaintext
