"""``oshal migrate``: bring external Postgres and Redis to what this release and this fleet need, as its own step.

What ``oshal up`` does before it starts any process, without starting one: the runtime roles, the schema (migrations
and SQL functions, the audit log sealed when the owner is a superuser), and, unless only the schema is asked for, the
fleet (its manifests registered, each bot's Redis ACL user and its lane's consumer groups), the built-in workflows,
the bootstrap key and the curated connectors. Every step is idempotent, so a deployment runs it before each rollout
(the Compose one-shot service, the Kubernetes Job) and the control plane and the bots start only after it succeeded.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from oshal.audit.seal import is_superuser, migrate_sealed
from oshal.bots.manifest import load_fleet
from oshal.bots.model_provider import apply_provider, resolve_provider
from oshal.control.bot_registry import register_fleet
from oshal.control.reservation_ttl import check_reservation_ttl
from oshal.errors import ConfigError
from oshal.launcher.prepare import (
    Engines,
    bootstrap_admin_key,
    dispatch_key,
    install_curated_connectors,
    provision_bot_users,
)
from oshal.secretfiles import read_or_create, secrets_dir
from oshal.security.startup import require_secrets
from oshal.settings import Settings
from oshal.store.migrate import API_ROLE, ensure_api_role, with_credentials
from oshal.workflows.registry import load_builtin, register_builtin


@dataclass
class MigrationReport:
    applied: list[str]
    sealed: bool
    bots: list[str] = field(default_factory=list)
    workflows: list[str] = field(default_factory=list)
    connectors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"applied": self.applied, "audit_sealed": self.sealed, "bots": self.bots,
                "workflows": self.workflows, "connectors_installed": self.connectors}


def _api_role_url(settings: Settings, owner_url: str) -> tuple[str, str]:
    """The API role's URL and password: OSHAL_API_DATABASE_URL when given (its password is what the role gets), else
    the owner's server with a password kept under $OSHAL_HOME/secrets."""
    if settings.api_database_url:
        parts = urlsplit(settings.api_database_url)
        if unquote(parts.username or "") != API_ROLE or not parts.password:
            raise ConfigError(f"OSHAL_API_DATABASE_URL must log in as {API_ROLE} with a password",
                              hint=f"e.g. postgresql://{API_ROLE}:PASSWORD@HOST:5432/oshal (`oshal deploy secrets` "
                                   "writes one)")
        return settings.api_database_url, unquote(parts.password)
    password = read_or_create(secrets_dir(settings.home) / "pg-api")
    return with_credentials(owner_url, API_ROLE, password), password


def migrate(settings: Settings, *, schema_only: bool = False) -> MigrationReport:
    """Roles and schema; then, unless ``schema_only``, the fleet, workflows, bootstrap key and connectors."""
    owner_url = settings.database_url
    if not owner_url:
        raise ConfigError("`oshal migrate` needs OSHAL_DATABASE_URL: the URL of the role that owns the schema",
                          hint="on one machine `oshal up` migrates its embedded server itself")
    if not schema_only:
        if not settings.redis_url:
            raise ConfigError("`oshal migrate` needs OSHAL_REDIS_URL (an admin login) to create the bots' ACL users",
                              hint="or pass --schema-only to migrate only the database")
        require_secrets(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    api_url, api_password = _api_role_url(settings, owner_url)
    ensure_api_role(owner_url, api_password, read_or_create(secrets_dir(settings.home) / "pg-report"))
    superuser = is_superuser(owner_url)
    report = MigrationReport(migrate_sealed(owner_url, owner_url if superuser else None), sealed=superuser)
    if schema_only:
        return report
    assert settings.redis_url is not None
    fleet = apply_provider(load_fleet(settings.fleet_dir), resolve_provider(settings))
    check_reservation_ttl(settings.reservation_ttl_s, fleet.values())
    engines = Engines(owner_url, api_url, settings.redis_url, dispatch_key(settings))
    register_fleet(owner_url, fleet)
    asyncio.run(provision_bot_users(engines.redis_url, engines.dispatch_key, fleet))
    report.workflows = register_builtin(owner_url, load_builtin(settings.workflows_dir))
    provided = settings.bootstrap_key.get_secret_value() if settings.bootstrap_key else None
    asyncio.run(bootstrap_admin_key(engines, settings.admin_key_file, provided))
    report.bots = sorted(fleet)
    report.connectors = asyncio.run(install_curated_connectors(engines, settings))
    return report
