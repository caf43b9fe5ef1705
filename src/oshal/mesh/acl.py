"""One Redis ACL user per bot, limited to its lane, its output stream, its heartbeat keys and its done markers.

A bot's password is derived from the dispatch key and the Redis admin password, so the control plane can re-create a
user Redis lost (a restart without its ACL file, a failover to a replica) with the password the bot's node already
holds. Rotating the Redis admin password (and restarting `oshal up`) rotates every bot's password with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis

from oshal.mesh.redis_keys import (
    acl_user,
    done_marker_pattern,
    heartbeat_pattern,
    lane_stream,
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
    admin_password = unquote(urlsplit(admin_url).password or "")
    message = f"{admin_password}\0{bot}".encode()
    digest = hmac.new(derive_key(dispatch_key, "redis-acl"), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def provision_bot_user(admin: Redis, bot: str, password: str) -> str:
    """Create or reset the bot's ACL user; returns the user name. Replaces any earlier password."""
    if not valid_bot_name(bot):
        raise ValueError(f"invalid bot name {bot!r}")
    user = acl_user(bot)
    await admin.execute_command(  # type: ignore[no-untyped-call]
        "ACL", "SETUSER", user, "reset", "on", f">{password}", "resetkeys",
        f"~{lane_stream(bot)}", f"~{out_stream(bot)}", f"~{heartbeat_pattern(bot)}",
        f"~{done_marker_pattern(bot)}",
        "resetchannels", "-@all", *BOT_COMMANDS,
    )
    return user


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
