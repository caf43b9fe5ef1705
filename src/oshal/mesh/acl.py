"""One Redis ACL user per bot, limited to its lane, its output stream, its heartbeat keys and its done markers."""

from __future__ import annotations

from redis.asyncio import Redis

from oshal.mesh.keys import (
    acl_user,
    done_marker_pattern,
    heartbeat_pattern,
    lane_stream,
    out_stream,
    valid_bot_name,
)

BOT_COMMANDS = (
    "+xreadgroup", "+xack", "+xdel", "+xadd", "+xautoclaim", "+xclaim", "+xpending", "+xgroup|create",
    "+set", "+del", "+ping", "+client|setname", "+client|id",
    # The fenced lane read is a script (checked command by command against this ACL) that tests done markers.
    "+eval", "+evalsha", "+exists",
)


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
