"""Validation of the numeric options the media steps accept, with errors that name the bad field."""

from __future__ import annotations

import math
from typing import Any

from oshal.errors import HarnessError


def bounded_int(options: dict[str, Any], key: str, default: int | None, low: int, high: int, *,
                even: bool = False, hint: str, where: str = "") -> int:
    """``options[key]`` (or ``default``; None makes it required) as an int in ``low..high``."""
    value = options.get(key, default)
    kind = "an even integer" if even else "an integer"
    # bool is an int subclass, but {"scenes": true} is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high or (even and value % 2):
        raise HarnessError(f"{where}{key} must be {kind} from {low} to {high}, got {value!r}", hint=hint)
    return value


def bounded_float(options: dict[str, Any], key: str, default: float | None, low: float, high: float, *,
                  hint: str, where: str = "") -> float:
    """``options[key]`` (or ``default``; None makes it required) as a finite float in ``low..high``."""
    value = options.get(key, default)
    if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
            or not low <= value <= high):
        raise HarnessError(f"{where}{key} must be a number from {low} to {high}, got {value!r}", hint=hint)
    return float(value)
