"""A test-only deterministic intent (never shipped): tries to read each path it is given, from inside a bot.

A test fleet names it as ``intent: file_probe:try_read`` with this folder on the node's PYTHONPATH.
"""

from __future__ import annotations

import os
from typing import Any


def try_read(value: Any) -> dict[str, Any]:
    results: dict[str, str] = {}
    for path in value["paths"]:
        try:
            if os.path.isdir(path):
                os.listdir(path)
            else:
                with open(path, "rb") as handle:
                    handle.read(1)
            results[path] = "read"
        except OSError as e:
            results[path] = type(e).__name__
    writes: dict[str, str] = {}
    for folder in value.get("write_dirs", []):  # could the bot plant a link where the platform later writes?
        link = os.path.join(folder, "planted-by-a-bot")
        try:
            os.symlink("/etc/hostname", link)
            os.unlink(link)
            writes[folder] = "wrote"
        except OSError as e:
            writes[folder] = type(e).__name__
    return {"uid": os.getuid(), "results": results, "writes": writes,
            "oshal_env": sorted(k for k in os.environ if k.startswith("OSHAL_"))}
