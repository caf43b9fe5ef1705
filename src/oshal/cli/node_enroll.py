"""``oshal node enroll|join|list|revoke|resume``: remote nodes that join with a single-use code and can be cut off.

``oshal node`` with no subcommand still runs a node host (``oshal node --bot X``); see :func:`oshal.cli.platform.node`.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from oshal.cli.client import (
    Client,
    JsonFlag,
    WideFlag,
    err,
    load_settings,
    out,
    print_rows,
    report,
    request,
    short,
    when,
)
from oshal.errors import Conflict, Invalid, OshalError

_TTL = re.compile(r"^(\d+)([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

ApiOption = Annotated[str, typer.Option("--api", help="The control plane's URL, e.g. https://100.64.0.1:8800 "
                                                      "(HTTPS; plain http:// only to loopback).")]
RedisUrlOption = Annotated[str | None, typer.Option(
    "--redis-url", help="Reach Redis here instead of where the control plane says: scheme://host:port, no "
                        "credentials (e.g. rediss://100.64.0.1:6380).")]
RedisCaOption = Annotated[Path | None, typer.Option(
    "--redis-ca", help="PEM file of the CA that signed Redis' TLS certificate (rediss:// only).")]
PlainRedisOption = Annotated[bool, typer.Option(
    "--allow-plain-redis", help="Accept plain redis:// to another host: only inside an encrypted network such as "
                                "a WireGuard mesh (Headscale/Tailscale).")]


def parse_ttl(value: str) -> int:
    """``600``, ``90s``, ``10m``, ``2h`` or ``1d`` in seconds."""
    match = _TTL.match(value.strip().lower())
    if not match:
        raise Invalid(f"--ttl {value!r} is not a duration", hint="e.g. --ttl 10m, 90s or 2h (at most 24h)")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def enroll(
    bot: Annotated[str, typer.Option(help="The bot whose lane the node will serve.")],
    ttl: Annotated[str, typer.Option(help="How long the code may be redeemed: 90s, 10m, 2h (at most 24h).")] = "10m",
    label: Annotated[str, typer.Option(help="A note shown by `oshal node list`, e.g. the machine's name.")] = "",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the code.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Mint a short-lived, single-use enrollment code for a node of BOT (platform operators). Shown once."""
    doc = request("POST", "/v1/nodes/enrollments", {"bot": bot, "ttl_s": parse_ttl(ttl), "label": label})
    if quiet:
        out.print(doc["code"], highlight=False)
        return
    api = load_settings().api_url
    report(doc, as_json,
           f"node [bold]{doc['node_id']}[/] for bot [bold]{escape(bot)}[/]; its code works once, until "
           f"{when(doc['expires_at'])} UTC (shown only now):\n  [bold]{doc['code']}[/]",
           f"on the node's machine: oshal node join {doc['code']} --api {api} --bot {bot}  "
           "(the control plane's HTTPS address as that machine reaches it)")


def join(
    code: Annotated[str, typer.Argument(help="The code from `oshal node enroll`.")],
    api: ApiOption,
    bot: Annotated[str | None, typer.Option(help="The bot you expect to serve: a code for another is refused.")
                   ] = None,
    redis_url: RedisUrlOption = None,
    redis_ca: RedisCaOption = None,
    allow_plain_redis: PlainRedisOption = False,
    no_run: Annotated[bool, typer.Option("--no-run", help="Only join: keep the identity, do not start working "
                                                          "(start later with `oshal node resume`).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an identity this home joined with before.")
                     ] = False,
) -> None:
    """Exchange CODE for a bot's identity (its own Redis user and gateway token), keep it under $OSHAL_HOME/remote-node
    (0600), and start working the bot's lane. Ctrl-C drains in-flight work and stops."""
    from oshal.launcher.remote_node import (
        RedisTransport,
        check_api_url,
        joined_before,
        node_redis_url,
        run_joined,
        save_identity,
    )

    api_url = check_api_url(api)  # before the code goes anywhere
    transport = RedisTransport(redis_url, str(redis_ca) if redis_ca else None, allow_plain_redis).checked()
    home = load_settings().home
    previous = joined_before(home)
    if previous and not force:
        raise Conflict(f"{home} already holds the identity of node {previous['node_id']} (bot {previous['bot']})",
                       hint="run it with `oshal node resume`; to join anew, set another OSHAL_HOME or pass --force")
    with Client(api_url, None) as client:
        joined: dict[str, Any] = client.call("POST", "/v1/nodes/join", anonymous=True, body={
            "code": code, "bot": bot, "hostname": socket.gethostname()[:255]})
    path = save_identity(home, api_url, joined, transport)
    err.print(f"joined as node [bold]{joined['node_id']}[/] for bot [bold]{escape(joined['bot'])}[/]; "
              f"identity kept in {path}")
    try:
        node_redis_url(joined["redis_url"], transport)
    except OshalError as e:
        raise type(e)(e.message, hint=f"{e.hint}; the identity is kept: fix that and run `oshal node resume` with "
                                      "the same options") from e
    if no_run:
        err.print("[dim]start working its lane with: oshal node resume[/]")
        return
    run_joined(home)


def resume(
    redis_url: RedisUrlOption = None,
    redis_ca: RedisCaOption = None,
    allow_plain_redis: PlainRedisOption = False,
) -> None:
    """Run the bot this home ($OSHAL_HOME) joined as, again (after a restart). Options given here are kept."""
    from oshal.launcher.remote_node import RedisTransport, run_joined

    given = redis_url is not None or redis_ca is not None or allow_plain_redis
    transport = RedisTransport(redis_url, str(redis_ca) if redis_ca else None, allow_plain_redis) if given else None
    run_joined(load_settings().home, transport)


def list_nodes(as_json: JsonFlag = False, wide: WideFlag = False) -> None:
    """Every node: bot, state (pending, expired, online, offline, revoked), last heartbeat, where it joined from."""
    rows: list[dict[str, Any]] = request("GET", "/v1/nodes")
    table = Table("node", "bot", "state", "replicas", "last heartbeat", "created", "joined from", "label")
    print_rows(rows, table, lambda r: (
        short(r["id"], wide), escape(r["bot"]), r["state"], str(r["replicas"]), when(r["last_heartbeat"]),
        when(r["created_at"]), escape(" ".join(p for p in (r["hostname"], r["joined_from"]) if p) or "-"),
        escape(r["label"])), wide=wide, as_json=as_json)


def revoke(
    node_id: Annotated[str, typer.Argument(help="The node's id (`oshal node list --wide`).")],
    as_json: JsonFlag = False,
) -> None:
    """Cut a node off: its Redis user disabled and its connections closed, its gateway token refused."""
    doc = request("POST", f"/v1/nodes/{node_id}/revoke")
    report(doc, as_json, f"node {doc['id']} (bot {escape(doc['bot'])}) revoked; "
                         f"{doc['connections_closed']} Redis connection(s) closed")


def register(root: typer.Typer, run_node_host: Callable[..., None]) -> None:
    """``oshal node``: the node host itself (no subcommand), and the remote-node commands."""
    group = typer.Typer(invoke_without_command=True, no_args_is_help=False,
                        help="Run a node host, or enroll, join, list, revoke and resume remote nodes.")
    group.callback()(run_node_host)
    group.command()(enroll)
    group.command()(join)
    group.command("list")(list_nodes)
    group.command()(revoke)
    group.command()(resume)
    root.add_typer(group, name="node")
