"""``oshal tenant create|list`` and ``oshal key create|list|revoke`` (operator keys only)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Column, Table

from oshal.cli.client import JsonFlag, WideFlag, emit_json, err, out, print_rows, report, request, when
from oshal.types import Role

tenant_app = typer.Typer(name="tenant", no_args_is_help=True, help="Create and list tenants (operator only).")
key_app = typer.Typer(name="key", no_args_is_help=True,
                      help="Create, list and revoke API keys (operator only).")

TenantOpt = Annotated[str | None, typer.Option(
    "--tenant", help="Tenant id or name (default: the tenant of the key you are using).")]


@tenant_app.command("create")
def tenant_create(
    name: Annotated[str, typer.Argument(help="Letters, digits, space, _ . -; starts alphanumeric.")],
    as_json: JsonFlag = False,
) -> None:
    """Create a tenant. Give it a key with `oshal key create --tenant NAME`."""
    tenant: dict[str, Any] = request("POST", "/v1/tenants", {"name": name})
    report(tenant, as_json, f"tenant [bold]{tenant['name']}[/] created: {tenant['id']}",
           f"next: oshal key create --tenant {tenant['name']!r} --role member")


@tenant_app.command("list")
def tenant_list(wide: WideFlag = False, as_json: JsonFlag = False) -> None:
    """List every tenant."""
    tenants: list[dict[str, Any]] = request("GET", "/v1/tenants")
    table = Table(Column("id", no_wrap=True), "name", "created",
                  title=f"tenants ({len(tenants)})", title_justify="left")
    print_rows(tenants, table, lambda t: (str(t["id"]), t["name"], when(t["created_at"])), wide=wide, as_json=as_json)


@key_app.command("mint")
def key_mint() -> None:
    """Print a new key without contacting the API: use it as OSHAL_BOOTSTRAP_KEY (the first operator key in prod
    mode). Keep it secret; it is registered on the platform's first start."""
    from oshal.launcher.host import mint_key

    out.print(mint_key())


@key_app.command("create")
def key_create(
    tenant: TenantOpt = None,
    role: Annotated[Role, typer.Option("--role", help="member: tickets, bots, ledger; operator: also admin.")]
    = Role.MEMBER,
    name: Annotated[str, typer.Option("--name", help="A label to recognise the key by.")] = "",
    expires_in_days: Annotated[int | None, typer.Option(
        "--expires-in-days", min=1, max=3650, help="Expire the key after this many days (default: never).",
    )] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API key. The key itself is printed once and cannot be shown again."""
    body: dict[str, Any] = {"tenant": tenant, "role": role.value, "name": name,
                            "expires_in_days": expires_in_days}
    created: dict[str, Any] = request("POST", "/v1/keys", {k: v for k, v in body.items() if v is not None})
    if as_json:
        emit_json(created)
        return
    out.print(Panel(f"[bold]{created['key']}[/]", title=f"new {created['role']} key {created['prefix']}",
                    subtitle=f"id {created['id']}", border_style="green", expand=False))
    out.print(f"tenant {created['tenant_id']}, expires {created['expires_at'] or 'never'}")
    err.print("[bold yellow]warning:[/] store this key now; it is not shown again "
              "(use it with `export OSHAL_API_KEY=...`)")


@key_app.command("list")
def key_list(tenant: TenantOpt = None, wide: WideFlag = False, as_json: JsonFlag = False) -> None:
    """List the keys of a tenant (prefixes only; keys themselves are never shown again)."""
    keys: list[dict[str, Any]] = request("GET", "/v1/keys", tenant=tenant)
    table = Table(Column("id", no_wrap=True), "prefix", "role", "name", "created", "expires", "revoked",
                  title=f"keys ({len(keys)})", title_justify="left")
    print_rows(keys, table, _key_cells, wide=wide, as_json=as_json)


def _key_cells(k: dict[str, Any]) -> tuple[str, ...]:
    revoked = f"[red]{when(k['revoked_at'])}[/]" if k.get("revoked_at") else "-"
    return (str(k["id"]), k["prefix"], k["role"], escape(k["name"]) or "-", when(k["created_at"]),
            when(k["expires_at"]) if k.get("expires_at") else "never", revoked)


@key_app.command("revoke")
def key_revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="Key id (from `oshal key list`).")],
    tenant: TenantOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Revoke a key: requests with it are refused from now on."""
    key: dict[str, Any] = request("DELETE", f"/v1/keys/{key_id}", tenant=tenant)
    report(key, as_json, f"key [bold]{key['prefix']}[/] ({key['id']}) revoked at {key['revoked_at']}")


def register(app: typer.Typer) -> None:
    app.add_typer(tenant_app, name="tenant")
    app.add_typer(key_app, name="key")
