"""The analyst: a note on each signal, stored with it — why it stands, and what would prove it wrong.

Offline the note is deterministic, built from what the signal recorded (its strategy's values and bars). With a
model provider configured, the ``trade-analyst`` bot (model-capable) writes the notes instead; either way the desk
keeps only notes about the step's own signals, capped in length, so an analyst can add words but never a signal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from oshal_trading.model import Side, Signal

MAX_NOTE_CHARS = 2000


def _values(inputs: Mapping[str, Any]) -> str:
    shown = [f"{k}={v}" for k, v in sorted(inputs.items()) if isinstance(v, int | float | str) and len(str(v)) < 40]
    return ", ".join(shown[:8])


def note_on(signal: Signal) -> str:
    """A deterministic analyst's note: the case for the signal and what would invalidate it."""
    direction = "long" if signal.side is Side.BUY else "flat"
    case = f"{signal.strategy} says go {direction} {signal.symbol} (strength {signal.strength:.2f}, " \
           f"horizon {signal.horizon_bars} bars): {signal.rationale}"
    values = _values(signal.inputs)
    risk = ("It is wrong if the move reverses within the horizon; a close back through the level that triggered it "
            "would say so." if signal.side is Side.BUY else
            "It is wrong if the trend resumes: a new high within the horizon would say so.")
    return " ".join(part for part in (case, f"Values used: {values}." if values else "", risk) if part)


def notes(signals: Sequence[Signal]) -> list[dict[str, str]]:
    return [{"signal": s.id, "rationale": note_on(s)[:MAX_NOTE_CHARS]} for s in signals]


def kept_notes(output: Any, signal_ids: set[str]) -> dict[str, str]:
    """The notes an analyst's output holds about these signals (others, and anything malformed, are dropped)."""
    items = output.get("notes") if isinstance(output, Mapping) else None
    kept: dict[str, str] = {}
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping):
            continue
        signal, text = item.get("signal"), item.get("rationale")
        if isinstance(signal, str) and signal in signal_ids and isinstance(text, str) and text.strip():
            kept.setdefault(signal, text.strip()[:MAX_NOTE_CHARS])
    return kept
