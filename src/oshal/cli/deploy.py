"""``oshal migrate`` and ``oshal deploy secrets|compose|k8s``: the deployment's own step and its artifacts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from oshal.cli.client import emit_json, err
from oshal.deploy.compose import ComposeOptions, compose
from oshal.deploy.k8s import K8sOptions, manifests, secret_commands
from oshal.deploy.render import to_yaml, to_yaml_stream
from oshal.deploy.secrets import write_secrets
from oshal.deploy.spec import Fleet, default_image
from oshal.deploy.spec import fleet as load_fleet
from oshal.errors import Invalid
from oshal.settings import Settings

deploy_app = typer.Typer(no_args_is_help=True, help="Generate deployment artifacts from the fleet's manifests.")

_FLEET = typer.Option("--fleet", help="Folder of bot manifests (default ./fleet or OSHAL_FLEET_DIR).")
_IMAGE = typer.Option("--image", help="The oshal image (built from deploy/Dockerfile); default oshal:VERSION.")


def migrate(
    schema_only: Annotated[bool, typer.Option("--schema-only", help="Only the roles and the schema (no Redis, no "
                                              "fleet, no bootstrap key).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print what was done as JSON.")] = False,
) -> None:
    """Migrate external servers as a step of its own: roles, schema, and the fleet's registration, Redis users and
    lanes, the built-in workflows, the bootstrap key and the curated connectors. Needs OSHAL_DATABASE_URL (the schema
    owner) and, unless --schema-only, OSHAL_REDIS_URL (an admin login). Idempotent: run it before every rollout."""
    from oshal.launcher.host import migrate as migrate_servers

    report = migrate_servers(schema_only=schema_only)
    if json_out:
        emit_json(report.as_dict())
        return
    sealed = "sealed" if report.sealed else "NOT sealed (the owner is not a superuser: run `oshal audit seal`)"
    err.print(f"schema: {len(report.applied)} migration(s) applied; audit log {sealed}")
    if not schema_only:
        err.print(f"fleet: {len(report.bots)} bot(s) provisioned; workflows added: "
                  f"{', '.join(report.workflows) or 'none'}; connectors installed: "
                  f"{', '.join(report.connectors) or 'none'}")


def _fleet(fleet: Path | None) -> tuple[Settings, Fleet]:
    settings = Settings(**({"fleet_dir": fleet} if fleet else {}))  # type: ignore[arg-type]
    return settings, load_fleet(settings.fleet_dir)


def _as_seen_from(target: Path, folder: Path) -> str:
    """``target`` relative to ``folder`` (what Compose resolves relative paths against) when it lies inside it, so
    the file and its folders move together; else its absolute path."""
    target, folder = target.resolve(), folder.resolve()
    return f"./{os.path.relpath(target, folder)}" if target.is_relative_to(folder) else str(target)


@deploy_app.command("secrets")
def secrets_command(
    out: Annotated[Path, typer.Option("--out", help="The folder to fill (made 0700).")] = Path("secrets"),
    database_url: Annotated[str | None, typer.Option(
        help="The schema owner's URL on a Postgres you run (default: the Compose file's own, generated password).")
    ] = None,
    redis_url: Annotated[str | None, typer.Option(
        help="An admin login to a Redis you run (default: the Compose file's own, generated password).")] = None,
    fleet: Annotated[Path | None, _FLEET] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
) -> None:
    """Write the secret files a deployment mounts: generated once and kept; each bot's credentials derived again."""
    _, manifests_ = _fleet(fleet)
    report = write_secrets(out, manifests_, database_url=database_url, redis_url=redis_url)
    if json_out:
        emit_json(report.as_dict())
        return
    err.print(f"secrets in {escape(str(out))}: created {', '.join(report.created) or 'none'}; kept "
              f"{len(report.kept)}; {len(manifests_)} bot(s) derived"
              + (f"; removed {', '.join(report.removed)}" if report.removed else ""))


@deploy_app.command("compose")
def compose_command(
    out: Annotated[Path | None, typer.Option("--out", help="Write the Compose file here (default: stdout).")] = None,
    with_vault: Annotated[bool, typer.Option("--with-vault", help="Add Vault; connector credentials go there "
                                             "(its token: the secret file oshal_vault_token).")] = False,
    with_object_store: Annotated[bool, typer.Option("--with-object-store", help="Add an S3 object store (MinIO) "
                                                    "for artifacts.")] = False,
    tunnel: Annotated[bool, typer.Option("--tunnel", help="Add a cloudflared tunnel under the `tunnel` profile "
                                         "(its token: the secret file cloudflared_token).")] = False,
    secrets_dir: Annotated[Path, typer.Option("--secrets", help="The folder `oshal deploy secrets` wrote.")
                           ] = Path("secrets"),
    image: Annotated[str | None, _IMAGE] = None,
    publish: Annotated[str, typer.Option(help="Host interface:port of the API.")] = "127.0.0.1:8800",
    fleet: Annotated[Path | None, _FLEET] = None,
) -> None:
    """A Compose file for the platform and one service per bot, from the fleet's manifests."""
    settings, manifests_ = _fleet(fleet)
    base = out.parent if out else Path.cwd()
    options = ComposeOptions(image=image or default_image(), fleet_source=_as_seen_from(settings.fleet_dir, base),
                             secrets_source=_as_seen_from(secrets_dir, base), with_vault=with_vault,
                             with_object_store=with_object_store, tunnel=tunnel, publish=publish,
                             drain_timeout_s=settings.drain_timeout_s,
                             provider_configured=settings.model_provider is not None)
    text = to_yaml(compose(manifests_, options))
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text)
    err.print(f"{escape(str(out))}: {len(manifests_)} bot service(s); start it with `docker compose -f "
              f"{escape(str(out))} up -d`")


@deploy_app.command("k8s")
def k8s_command(
    out: Annotated[Path | None, typer.Option("--out", help="Write one file per step into this folder (default: "
                                             "every document to stdout).")] = None,
    namespace: Annotated[str, typer.Option(help="The namespace to deploy into.")] = "oshal",
    redis_address: Annotated[str, typer.Option(help="host:port of your Redis, as the bots and KEDA reach it.")
                             ] = "redis:6379",
    redis_cidr: Annotated[str | None, typer.Option(help="Redis outside the cluster: the address block the bots' "
                                                   "network policy lets them reach (default: pods labelled "
                                                   "app.kubernetes.io/name=redis).")] = None,
    redis_tls: Annotated[bool, typer.Option("--redis-tls", help="KEDA reaches Redis over TLS.")] = False,
    max_replicas: Annotated[int, typer.Option(min=1, max=64, help="Most replicas KEDA scales a bot to.")] = 8,
    secrets_dir: Annotated[Path, typer.Option("--secrets", help="The folder `oshal deploy secrets` wrote (for the "
                                              "kubectl commands printed).")] = Path("secrets"),
    image: Annotated[str | None, _IMAGE] = None,
    fleet: Annotated[Path | None, _FLEET] = None,
) -> None:
    """Kubernetes YAML: namespace, migration Job, control plane, per bot a Deployment with its KEDA ScaledObject,
    PodDisruptionBudgets and NetworkPolicies. Secrets are referenced, never included."""
    settings, manifests_ = _fleet(fleet)
    if ":" not in redis_address:
        raise Invalid(f"--redis-address {redis_address!r} needs a port", hint="e.g. redis.data.svc:6379")
    options = K8sOptions(image=image or default_image(), namespace=namespace, redis_address=redis_address,
                         redis_cidr=redis_cidr, redis_tls=redis_tls, max_replicas=max_replicas,
                         drain_timeout_s=settings.drain_timeout_s,
                         provider_configured=settings.model_provider is not None)
    key_file = settings.connectors_dir / "oshal.pub"
    files = manifests(manifests_, options, key_file.read_text() if key_file.exists() else None)
    if out is None:
        typer.echo("".join(to_yaml_stream(docs) for docs in files.values()), nl=False)
    else:
        out.mkdir(parents=True, exist_ok=True)
        for name, docs in files.items():
            (out / name).write_text(to_yaml_stream(docs))
        err.print(f"{len(files)} files in {escape(str(out))}; apply them in order: `kubectl apply -f "
                  f"{escape(str(out))}/00-namespace.yaml`, create the Secrets, then the rest")
    err.print("the Secrets they reference (from `oshal deploy secrets`):")
    for line in secret_commands(manifests_, options, secrets_dir):
        err.print(f"  {escape(line)}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("migrate")(migrate)
    app.add_typer(deploy_app, name="deploy")
