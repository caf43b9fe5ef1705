"""One Redis ACL user per bot, limited to its lane, its output stream, its heartbeat keys and its done markers; and
one per remote node (``oshal node join``) with exactly its bot's permissions, so a node can be cut off on its own.

A bot's password is derived from the dispatch key and the Redis admin password, so the control plane can re-create a
user Redis lost (a restart without its ACL file, a failover to a replica) with the password the bot's node already
holds. Rotating the Redis admin password (and restarting `oshal up`) rotates every bot's password with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from redis.asyncio import Redis

from oshal.mesh.redis_keys import (
    acl_user,
    done_marker_pattern,
    heartbeat_pattern,
    lane_stream,
    node_acl_user,
    out_stream,
    valid_bot_name,
)
from oshal.mesh.signing import derive_key

BOT_COMMANDS = (
    "+xreadgroup", "+xack", "+xdel", "+xadd", "+xautoclaim", "+xclaim", "+xpending", "+xgroup|create",
    "+set", "+del", "+ping", "+client|setname", "+client|id",
    "+exists",  # the fence: whether a re-sent envelope's phase already succeeded (its done marker)
)


def bot_password(dispatch_key: bytes, admin_url: str, bot: str) -> str:
    return _derived_password(derive_key(dispatch_key, "redis-acl"), admin_url, bot)


def node_password(dispatch_key: bytes, admin_url: str, node_id: object) -> str:
    """A remote node's password, derived like a bot's (from its own key) so a lost user can be given back."""
    return _derived_password(derive_key(dispatch_key, "redis-acl-node"), admin_url, str(node_id))


def _derived_password(key: bytes, admin_url: str, subject: str) -> str:
    admin_password = unquote(urlsplit(admin_url).password or "")
    digest = hmac.new(key, f"{admin_password}\0{subject}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def user_url(base_url: str, user: str, password: str) -> str:
    """``base_url`` (any credentials in it dropped) logging in as ``user``."""
    parts = urlsplit(base_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"))


async def _set_lane_user(admin: Redis, user: str, bot: str, password: str) -> None:
    if not valid_bot_name(bot):
        raise ValueError(f"invalid bot name {bot!r}")
    await admin.execute_command(  # type: ignore[no-untyped-call]
        "ACL", "SETUSER", user, "reset", "on", f">{password}", "resetkeys",
        f"~{lane_stream(bot)}", f"~{out_stream(bot)}", f"~{heartbeat_pattern(bot)}",
        f"~{done_marker_pattern(bot)}",
        "resetchannels", "-@all", *BOT_COMMANDS,
    )


async def provision_bot_user(admin: Redis, bot: str, password: str) -> str:
    """Create or reset the bot's ACL user; returns the user name. Replaces any earlier password."""
    user = acl_user(bot)
    await _set_lane_user(admin, user, bot, password)
    return user


async def provision_node_user(admin: Redis, bot: str, node_id: object, password: str) -> str:
    """Create or reset a remote node's ACL user, with its bot's permissions; returns the user name."""
    user = node_acl_user(node_id)
    await _set_lane_user(admin, user, bot, password)
    return user


async def cut_off_user(admin: Redis, user: str) -> int:
    """Disable ``user`` (no password, no keys, no commands) and close every connection logged in as it; returns how
    many were closed. Disabled first, so a closed connection cannot log in again."""
    await admin.execute_command("ACL", "SETUSER", user, "reset")  # type: ignore[no-untyped-call]
    killed = await admin.execute_command("CLIENT", "KILL", "USER", user)  # type: ignore[no-untyped-call]
    await save_users(admin)
    return int(killed)


async def save_users(admin: Redis) -> bool:
    """Write the users to the server's ACL file, when it has one (the embedded Redis does); False if it has none."""
    config = await admin.config_get("aclfile")
    path = next(iter(config.values()), None) if config else None
    if not path:
        return False
    await admin.execute_command("ACL", "SAVE")  # type: ignore[no-untyped-call]
    return True


async def ensure_bot_users(admin: Redis, admin_url: str, bots: Iterable[str], dispatch_key: bytes) -> list[str]:
    """Re-create the bots' ACL users the server does not have (existing ones are left as they are); returns the
    bots whose users were missing. Users that exist are not reset: that could cut off their live connections."""
    existing = {name.decode() if isinstance(name, bytes) else str(name) for name in await admin.acl_users()}
    missing = sorted(bot for bot in bots if acl_user(bot) not in existing)
    for bot in missing:
        await provision_bot_user(admin, bot, bot_password(dispatch_key, admin_url, bot))
    if missing:
        await save_users(admin)
    return missing
