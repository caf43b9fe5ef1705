"""Charts drawn on the server as SVG: no script, no library, readable by a screen reader (a title and a table)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup


def _trusted(svg: str) -> Markup:
    """Markup built here, where every text and attribute value from data went through ``escape`` first."""
    return Markup(svg)  # noqa: S704 - see the docstring


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float
    tip: str = ""


def bars(data: Sequence[Bar], *, title: str, width: int = 640, height: int = 160, unit: str = "") -> Markup:
    """A bar chart of ``data`` in order; each bar names its label and value in a tooltip."""
    if not data:
        return _trusted(f'<p class="empty">{escape(title)}: nothing yet.</p>')
    peak = max(b.value for b in data)
    top = peak if peak > 0 else 1.0  # all zero: bars stay flat, and the label says max 0
    pad_left, pad_bottom, pad_top = 8, 22, 12
    slot = (width - pad_left * 2) / len(data)
    plot_h = height - pad_bottom - pad_top
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
             f'<line x1="{pad_left}" y1="{height - pad_bottom}" x2="{width - pad_left}" y2="{height - pad_bottom}" '
             f'class="axis"/>']
    label_every = max(1, len(data) // 12)
    for i, bar in enumerate(data):
        h = 0.0 if bar.value <= 0 else max(1.5, plot_h * bar.value / top)
        x = pad_left + i * slot + slot * 0.15
        y = height - pad_bottom - h
        tip = bar.tip or f"{bar.label}: {bar.value:g}{unit}"
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}">'
                     f'<title>{escape(tip)}</title></rect>')
        if i % label_every == 0:
            parts.append(f'<text class="tick" x="{x + slot * 0.35:.1f}" y="{height - 6}" text-anchor="middle">'
                         f'{escape(bar.label)}</text>')
    parts.append(f'<text class="peak" x="{width - pad_left}" y="{pad_top - 2}" text-anchor="end">'
                 f'max {escape(f"{peak:g}")}{escape(unit)}</text></svg>')
    return _trusted("".join(parts))


def meter(used: float, limit: float, *, label: str) -> Markup:
    """A horizontal gauge of ``used`` out of ``limit`` (a budget's spent and reserved share)."""
    share = 0.0 if limit <= 0 else min(1.0, used / limit)
    level = "high" if share >= 0.9 else "mid" if share >= 0.7 else "low"
    return _trusted(f'<svg class="meter meter-{level}" viewBox="0 0 200 10" role="img" '
                  f'aria-label="{escape(label)}: {share:.0%}" xmlns="http://www.w3.org/2000/svg">'
                  f'<title>{escape(label)}: {share:.0%}</title><rect class="track" width="200" height="10" rx="5"/>'
                  f'<rect class="fill" width="{200 * share:.1f}" height="10" rx="5"/></svg>')
