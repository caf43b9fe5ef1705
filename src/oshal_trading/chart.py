"""The equity curve as a PNG (matplotlib, no display needed)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path


def equity_png(path: Path, days: Sequence[dt.date], equity: Sequence[int], *, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 4), dpi=110)
    try:
        axes.plot(range(len(days)), [e / 100 for e in equity], color="#2f5bd3", linewidth=1.4)
        ticks = list(range(0, len(days), max(1, len(days) // 8)))
        axes.set_xticks(ticks, [days[i].isoformat() for i in ticks])
        axes.set_title(title, fontsize=11)
        axes.set_ylabel("equity (USD)")
        axes.grid(True, alpha=0.3)
        figure.autofmt_xdate()
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)
    return path
