"""Every Redis key and stream name in one place."""

from __future__ import annotations

import re

PREFIX = "oshal"
LANE_GROUP = "bots"
COLLECTOR_GROUP = "collector"
EVENTS_CHANNEL = f"{PREFIX}:events"
KILL_SWITCHES = f"{PREFIX}:kill"
KILL_SWITCHES_LOADED = f"{PREFIX}:kill:loaded"
KILL_SWITCHES_VERSION = f"{PREFIX}:kill:version"
KILL_CHANNEL = f"{PREFIX}:kill:changed"

BOT_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,39}$"
_BOT_NAME = re.compile(BOT_NAME_PATTERN)


def valid_bot_name(name: str) -> bool:
    # The name becomes part of key patterns in ACLs, so glob characters must never appear in it.
    return bool(_BOT_NAME.match(name))


def lane_stream(bot: str) -> str:
    return f"{PREFIX}:lane:{bot}"


def out_stream(bot: str) -> str:
    return f"{PREFIX}:out:{bot}"


def heartbeat_key(bot: str, consumer: str) -> str:
    return f"{PREFIX}:hb:{bot}:{consumer}"


def heartbeat_pattern(bot: str) -> str:
    return f"{PREFIX}:hb:{bot}:*"


def done_marker_prefix(bot: str) -> str:
    """Done markers: ``{prefix}{phase_id}`` exists once a phase sent more than once has succeeded."""
    return f"{PREFIX}:done:{bot}:"


def done_marker(bot: str, phase_id: str) -> str:
    return f"{done_marker_prefix(bot)}{phase_id}"


def done_marker_pattern(bot: str) -> str:
    return f"{done_marker_prefix(bot)}*"


def dead_stream(bot: str) -> str:
    return f"{PREFIX}:dead:{bot}"


def acl_user(bot: str) -> str:
    return f"bot-{bot}"
