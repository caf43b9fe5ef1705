"""Mesh: per-bot lane streams in, per-bot output streams back, heartbeats, dead letters and ACLs."""

from oshal.mesh.envelopes import CallUsage, Envelope, Result
from oshal.mesh.redis_keys import dead_stream, heartbeat_key, lane_stream, out_stream

__all__ = ["CallUsage", "Envelope", "Result", "dead_stream", "heartbeat_key", "lane_stream", "out_stream"]
