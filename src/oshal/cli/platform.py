"""``oshal up``, ``oshal serve`` and ``oshal node``: start the platform or one of its processes."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from oshal.settings import Settings

if TYPE_CHECKING:
    from oshal.launcher.prepare import Engines

console = Console(stderr=True)


def up(
    port: Annotated[int | None, typer.Option(help="API port (default 8800 or OSHAL_API_PORT).")] = None,
    fleet: Annotated[Path | None, typer.Option(help="Folder of bot manifests (default ./fleet).")] = None,
    home: Annotated[Path | None, typer.Option(help="Data folder (default ./.oshal or OSHAL_HOME).")] = None,
    provider: Annotated[str | None, typer.Option(
        help="Run the model-capable bots on this model provider: openai (any OpenAI-compatible endpoint) or "
             "anthropic (default: OSHAL_MODEL_PROVIDER; unset = the deterministic harness).")] = None,
    model: Annotated[str | None, typer.Option(help="Their model, e.g. gpt-4o-mini (OSHAL_MODEL).")] = None,
    base_url: Annotated[str | None, typer.Option(
        help="The provider's endpoint, e.g. http://127.0.0.1:11434/v1 for Ollama (OSHAL_MODEL_BASE_URL).")] = None,
    api_key_env: Annotated[str | None, typer.Option(
        help="NAME of the environment variable holding the model key (default OPENAI_API_KEY / ANTHROPIC_API_KEY; "
             "OSHAL_MODEL_API_KEY_ENV).")] = None,
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
    if provider is not None:
        if provider not in ("openai", "anthropic"):
            raise typer.BadParameter(f"{provider!r} is not a model provider: use openai (also for Ollama, vLLM, "
                                     "llama.cpp) or anthropic", param_hint="--provider")
        overrides["model_provider"] = provider
    for name, value in (("model", model), ("model_base_url", base_url), ("model_api_key_env", api_key_env)):
        if value is not None:
            overrides[name] = value
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
    _print_banner(settings, supervisor.url, engines)
    supervisor.supervise()


def _print_banner(settings: Settings, url: str, engines: Engines) -> None:
    provided = settings.bootstrap_key is not None
    key = "$OSHAL_BOOTSTRAP_KEY" if provided else settings.admin_key_file.read_text().strip()
    out = Console()
    out.print(f"\n[bold green]oshal is up[/] at [bold]{url}[/]  (console: {url}/ with the admin key below; "
              f"docs: {url}/docs, metrics: {url}/metrics)")
    table = Table("bot", "harness", "model", "replicas", title="fleet")
    for m in engines.fleet.values():
        table.add_row(m.name, m.harness, m.model, str(m.replicas))
    out.print(table)
    out.print(f"admin key ({'OSHAL_BOOTSTRAP_KEY' if provided else settings.admin_key_file}):\n  [bold]{key}[/]")
    out.print(f"try:  export OSHAL_API_KEY={key}\n      oshal ticket submit echo '{{\"hello\": \"world\"}}' --wait 5")
    out.print("Ctrl-C drains in-flight work and stops everything.\n")


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8800,
    no_collector: Annotated[bool, typer.Option("--no-collector", help="Do not run the result collector here.")
                            ] = False,
    no_sweeper: Annotated[bool, typer.Option("--no-sweeper", help="Do not run the sweeper here.")] = False,
) -> None:
    """Run the control plane (API, collector, sweeper). Needs OSHAL_API_DATABASE_URL and OSHAL_REDIS_URL."""
    from oshal.launcher.host import serve as serve_control_plane

    serve_control_plane(host, port, collector=not no_collector, sweeper=not no_sweeper)

def node(
    ctx: typer.Context,
    fleet: Annotated[Path | None, typer.Option(help="Folder of bot manifests (default ./fleet).")] = None,
    bot: Annotated[list[str] | None, typer.Option(help="Run only these bots (repeatable).")] = None,
    credentials: Annotated[Path | None, typer.Option(help="JSON {bot: redis_url} from `oshal up`.")] = None,
    tokens: Annotated[Path | None, typer.Option(help="JSON {bot: gateway token}; default: next to --credentials."
                                                )] = None,
    replicas: Annotated[int | None, typer.Option(min=1, max=64, help="Workers per bot in this process (default: the "
                                                 "manifest's replicas; a container per replica runs 1).")] = None,
    check: Annotated[bool, typer.Option("--check", help="Run nothing: exit 0 if the node host on this machine is "
                                        "alive (its OSHAL_NODE_LIVENESS_FILE is fresh), else 7. The liveness probe."
                                        )] = False,
) -> None:
    """Run a node host: one bot (--bot NAME, one process per bot) or the whole fleet in one process.

    `oshal up` passes OSHAL_NODE_CREDENTIALS (the node's own file). Without it or --credentials, a single bot may
    use OSHAL_REDIS_URL (its own ACL user's URL). A node on another machine joins with a code instead: see
    `oshal node enroll` and `oshal node join`.
    """
    if ctx.invoked_subcommand is not None:
        return  # enroll, join, list, revoke, resume: not the node host itself
    from oshal.launcher.host import check_node, run_node

    if check:
        alive = check_node()
        typer.echo(f"alive: pid {alive.pid}, bots {', '.join(alive.bots)}, {alive.workers} workers, last written "
                   f"{alive.age_s:.1f}s ago")
        return
    run_node(fleet, bot, credentials, tokens, replicas)
