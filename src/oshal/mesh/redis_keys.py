"""Every Redis key and stream name in one place."""

from __future__ import annotations

import re

PREFIX = "oshal"
LANE_GROUP = "bots"
COLLECTOR_GROUP = "collector"
EVENTS_CHANNEL = f"{PREFIX}:events"
WAITER_ID_PATTERN = r"[0-9a-f]{32}"  # a control-plane process's token (EventHub), whole
KILL_SWITCHES = f"{PREFIX}:kill"
KILL_SWITCHES_LOADED = f"{PREFIX}:kill:loaded"
KILL_SWITCHES_VERSION = f"{PREFIX}:kill:version"
KILL_CHANNEL = f"{PREFIX}:kill:changed"

BOT_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,39}$"
_BOT_NAME = re.compile(BOT_NAME_PATTERN)


def valid_bot_name(name: str) -> bool:
    # The name becomes part of key patterns in ACLs, so glob characters must never appear in it.
    return bool(_BOT_NAME.match(name))


def _bot_key(kind: str, bot: str, *rest: str) -> str:
    """``oshal:<kind>:<bot>[:<rest>...]``: the one form of every per-bot key, which bot ACLs grant by pattern."""
    return ":".join((PREFIX, kind, bot, *rest))


def lane_stream(bot: str) -> str:
    return _bot_key("lane", bot)


def out_stream(bot: str) -> str:
    return _bot_key("out", bot)


def dead_stream(bot: str) -> str:
    return _bot_key("dead", bot)


def heartbeat_key(bot: str, consumer: str) -> str:
    return _bot_key("hb", bot, consumer)


def heartbeat_pattern(bot: str) -> str:
    return heartbeat_key(bot, "*")


def done_marker_prefix(bot: str) -> str:
    """Done markers: ``{prefix}{phase_id}`` exists once a phase sent more than once has succeeded."""
    return _bot_key("done", bot, "")


def done_marker(bot: str, phase_id: object) -> str:
    return f"{done_marker_prefix(bot)}{phase_id}"


def done_marker_pattern(bot: str) -> str:
    return done_marker(bot, "*")


def waiter_channel(token: str) -> str:
    """One control-plane process's own channel: the rows of finished tickets its waiters wait on (bots' ACL users
    may subscribe to no channel at all)."""
    return f"{EVENTS_CHANNEL}:to:{token}"


def acl_user(bot: str) -> str:
    return f"bot-{bot}"


def node_acl_user(node_id: object) -> str:
    """A remote node's own ACL user: the permissions of its bot's, revocable on its own."""
    return f"node-{node_id}"


def node_consumer_prefix(node_id: object) -> str:
    """The start of every consumer name of a remote node's workers (and so of their heartbeat keys)."""
    return f"node-{node_id}"


def node_heartbeat_pattern(bot: str, node_id: object) -> str:
    return heartbeat_key(bot, f"{node_consumer_prefix(node_id)}-*")
