"""``oshal up``, ``oshal serve`` and ``oshal node``: start the platform or one of its processes."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from oshal.bots.manifest import BotManifest
from oshal.errors import ConfigError
from oshal.settings import Settings

console = Console(stderr=True)


def up(
    port: Annotated[int | None, typer.Option(help="API port (default 8800 or OSHAL_API_PORT).")] = None,
    fleet: Annotated[Path | None, typer.Option(help="Folder of bot manifests (default ./fleet).")] = None,
    home: Annotated[Path | None, typer.Option(help="Data folder (default ./.oshal or OSHAL_HOME).")] = None,
) -> None:
    """Start the whole platform: engines, migrations, control plane and the demo fleet. Ctrl-C stops it."""
    from oshal.launcher.prepare import prepare
    from oshal.launcher.supervisor import Supervisor

    overrides: dict[str, object] = {}
    if port is not None:
        overrides["api_port"] = port
    if fleet is not None:
        overrides["fleet_dir"] = fleet
    if home is not None:
        overrides["home"] = home
    settings = Settings(**overrides)  # type: ignore[arg-type]
    mode = "embedded Postgres + Redis" if settings.embedded else "external Postgres + Redis"
    with console.status(f"starting {mode} under {settings.home} ..."):
        engines = prepare(settings)
    supervisor = Supervisor(settings, engines)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    try:
        with console.status("starting the control plane and the node host ..."):
            supervisor.start()
    except Exception:
        supervisor.shutdown()
        raise
    _print_banner(settings, supervisor.url, engines.fleet)
    supervisor.supervise()


def _print_banner(settings: Settings, url: str, fleet: dict[str, BotManifest]) -> None:
    provided = settings.bootstrap_key is not None
    key = "$OSHAL_BOOTSTRAP_KEY" if provided else settings.admin_key_file.read_text().strip()
    out = Console()
    out.print(f"\n[bold green]oshal is up[/] at [bold]{url}[/]  (docs: {url}/docs, metrics: {url}/metrics)")
    table = Table("bot", "harness", "model", "replicas", title="fleet")
    for m in fleet.values():
        table.add_row(m.name, m.harness, m.model, str(m.replicas))
    out.print(table)
    out.print(f"admin key ({'OSHAL_BOOTSTRAP_KEY' if provided else settings.admin_key_file}):\n  [bold]{key}[/]")
    out.print(f"try:  export OSHAL_API_KEY={key}\n      oshal ticket submit echo '{{\"hello\": \"world\"}}' --wait 5")
    out.print("Ctrl-C drains in-flight work and stops everything.\n")


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8800,
    no_collector: Annotated[bool, typer.Option(help="Do not run the result collector here.")] = False,
    no_sweeper: Annotated[bool, typer.Option(help="Do not run the sweeper here.")] = False,
) -> None:
    """Run the control plane (API, collector, sweeper). Needs OSHAL_API_DATABASE_URL and OSHAL_REDIS_URL."""
    import uvicorn

    from oshal import logs
    from oshal.api.app import create_app
    from oshal.control.plane import Components, ControlPlane
    from oshal.launcher.prepare import dispatch_key
    from oshal.security.startup import require_secrets

    settings = Settings()
    logs.configure(settings.log_level, json=settings.log_json)
    require_secrets(settings, bootstrap=False)
    if not settings.api_database_url or not settings.redis_url:
        raise ConfigError("`oshal serve` needs OSHAL_API_DATABASE_URL and OSHAL_REDIS_URL",
                          hint="use `oshal up` to start everything with embedded engines")
    if bool(settings.tls_cert_file) != bool(settings.tls_key_file):
        raise ConfigError("TLS needs both OSHAL_TLS_CERT_FILE and OSHAL_TLS_KEY_FILE", hint="set both, or neither")
    plane = ControlPlane(settings, settings.api_database_url, settings.redis_url, dispatch_key(settings),
                         Components(collector=not no_collector, sweeper=not no_sweeper))
    uvicorn.run(create_app(plane), host=host, port=port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=int(settings.drain_timeout_s),
                ssl_certfile=settings.tls_cert_file, ssl_keyfile=settings.tls_key_file)


def node(
    fleet: Annotated[Path | None, typer.Option(help="Folder of bot manifests (default ./fleet).")] = None,
    bot: Annotated[list[str] | None, typer.Option(help="Run only these bots (repeatable).")] = None,
    credentials: Annotated[Path | None, typer.Option(help="JSON {bot: redis_url} from `oshal up`.")] = None,
    tokens: Annotated[Path | None, typer.Option(help="JSON {bot: gateway token}; default: next to --credentials."
                                                )] = None,
) -> None:
    """Run a node host: one bot (--bot NAME, one process per bot) or the whole fleet in one process.

    `oshal up` passes OSHAL_NODE_CREDENTIALS (the node's own file). Without it or --credentials, a single bot may
    use OSHAL_REDIS_URL (its own ACL user's URL).
    """
    from oshal import logs
    from oshal.bots.host import read_bot_tokens, read_credentials, read_node_credentials, run_host
    from oshal.bots.manifest import load_fleet, select
    from oshal.bots.worker import WorkerOptions

    settings = Settings(**({"fleet_dir": fleet} if fleet else {}))  # type: ignore[arg-type]
    logs.configure(settings.log_level, json=settings.log_json)
    manifests = select(load_fleet(settings.fleet_dir), bot)
    options = WorkerOptions(claim_idle_ms=settings.claim_idle_ms, max_deliveries=settings.max_deliveries,
                            heartbeat_ttl_s=settings.heartbeat_ttl_s, drain_timeout_s=settings.drain_timeout_s)
    if settings.node_credentials and not credentials:
        urls, own_tokens = read_node_credentials(settings.node_credentials)
        run_host(manifests, urls, options, settings.api_url if own_tokens else None, own_tokens)
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
    run_host(manifests, urls, options, settings.api_url if bot_tokens else None, bot_tokens)
