"""JSON as the platform writes it, so every writer agrees byte for byte. A leaf: imports nothing internal.

* :func:`compact`: no spaces, keys in the order given; for streams, the database and responses.
* :func:`canonical`: no spaces, keys sorted; the form that digests, signatures and MACs are taken over.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def compact(value: Any, *, ascii_only: bool = True, default: Callable[[Any], Any] | None = None) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=ascii_only, default=default)


def canonical(value: Any, *, ascii_only: bool = True) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_only)
