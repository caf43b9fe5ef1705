"""The equity chart drawn in a short-lived process of its own: matplotlib (~50 MB) never loads into the long-running
node host that runs the recap bot. ``python -m oshal_trading.chart_process`` reads {"title", "days", "equity"} as
JSON on stdin and writes the PNG to stdout."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

TIMEOUT_S = 60.0


async def render(days: Sequence[dt.date], equity: Sequence[int], title: str) -> bytes:
    request = json.dumps({"title": title, "days": [d.isoformat() for d in days], "equity": list(equity)}).encode()
    with tempfile.TemporaryDirectory() as config_dir:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "oshal_trading.chart_process", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ,
                                                                                 "MPLCONFIGDIR": config_dir})
        try:
            png, problem = await asyncio.wait_for(child.communicate(request), TIMEOUT_S)
        except TimeoutError:
            child.kill()
            await child.wait()
            raise RuntimeError(f"drawing the equity chart took over {TIMEOUT_S:g} s") from None
    if child.returncode != 0 or not png.startswith(b"\x89PNG"):
        raise RuntimeError(f"drawing the equity chart failed: {problem.decode(errors='replace')[-500:]}")
    return png


def main() -> None:
    from oshal_trading.chart import equity_png

    request = json.loads(sys.stdin.buffer.read())
    with tempfile.TemporaryDirectory() as folder:
        path = equity_png(Path(folder) / "equity.png", [dt.date.fromisoformat(d) for d in request["days"]],
                          [int(e) for e in request["equity"]], title=str(request["title"]))
        sys.stdout.buffer.write(path.read_bytes())


if __name__ == "__main__":
    main()
