"""The README's CLI commands, run verbatim and in order against a fresh platform, so the README cannot drift.

What runs: every line of a fenced block that holds CLI commands (lines starting with ``oshal ``), where the line
is an ``oshal`` command or sets a shell variable (``VIDEO=$(oshal ticket submit ... --quiet)``); comments are
skipped, and anything else in such a block fails the test. Each
line runs in bash exactly as written, from a fresh checkout-like folder (the repository's ``fleet/``,
``workflows/``, ``connectors/`` and ``tests/``, with ``../shared`` beside it) in which ``oshal up`` was started
as ``make up`` starts it. The substitution scheme is the shell's own: a variable a line sets is passed to every
later line, just as a reader's shell would keep it. The only differences from a reader's terminal are named
here: the API port (``OSHAL_API_URL``; the suite may run next to a real ``make up``), the files the README asks
the reader to write (``READER_FILES``), and the commands that need the internet (``NEEDS_INTERNET``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import REPO, free_port

README = REPO / "README.md"
SHARED = REPO.parent / "shared"
BIN = Path(sys.executable).parent  # the venv: `oshal` and `python`, as after `make up` with the venv activated

# Commands that reach a third-party API on the internet; each is skipped, and must still be in the README.
NEEDS_INTERNET = {
    'oshal ticket submit echo \'{"tool_calls": [{"connector": "alpaca", "operation": "getBarsForStockSymbol", '
    '"arguments": {"symbol": "AAPL", "timeframe": "1Day"}}]}\' --wait 30':
        "calls data.alpaca.markets: needs the internet and real Alpaca keys",
}
# Files the README tells the reader to write with their own credentials (fakes here: nothing calls the real API).
READER_FILES = {
    "keys.json": '{"APCA-API-KEY-ID": "readme-key-id", "APCA-API-SECRET-KEY": "readme-secret"}\n',
    "token.txt": "readme-spotify-token\n",
    "ops.yaml": 'interval_s: 10\nendpoints:\n  - {name: shop, url: "http://127.0.0.1:9/health", timeout_s: 2, '
                'expect_status: 200}\nbots: [echo, summarizer]\n',
}
_ASSIGNMENT = re.compile(r"^(?:export )?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_COMMAND_TIMEOUT_S = 180


@dataclass(frozen=True)
class Line:
    number: int
    text: str

    @property
    def variable(self) -> str | None:
        match = _ASSIGNMENT.match(self.text)
        return match.group(1) if match else None


def readme_commands(text: str) -> list[Line]:
    """The runnable lines of every fenced block that holds CLI commands, in README order."""
    commands: list[Line] = []
    for block in re.finditer(r"^```[^\n]*\n(.*?)^```", text, re.S | re.M):
        first = text[:block.start()].count("\n") + 2
        lines = [Line(first + i, line.rstrip()) for i, line in enumerate(block.group(1).splitlines())]
        if not any(line.text.startswith("oshal ") for line in lines):
            continue
        for line in lines:
            if line.text.startswith("oshal ") or line.variable is not None:
                commands.append(line)
            elif line.text.strip() and not line.text.lstrip().startswith("#"):
                raise AssertionError(f"README line {line.number} in a CLI block is neither an oshal command, a "
                                     f"shell variable set for later lines, nor a comment: {line.text!r}")
    return commands


def test_the_readme_has_cli_blocks_and_every_skip_is_still_in_it() -> None:
    commands = [line.text for line in readme_commands(README.read_text())]
    assert len(commands) >= 30, commands
    assert any(c.startswith("export OSHAL_API_KEY=") for c in commands)
    for skipped in NEEDS_INTERNET:
        assert skipped in commands, f"a skipped command is no longer in the README: {skipped}"


def test_make_up_installs_what_the_readme_commands_need() -> None:
    """`make up` installs the package with the extras README commands use (import-mcp needs the MCP SDK)."""
    makefile = (REPO / "Makefile").read_text()
    up = re.search(r"^up: (.*)$", makefile, re.M)
    install = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", makefile, re.M)
    assert up is not None and "$(STAMP)" in up.group(1), "make up no longer installs the package first"
    assert install is not None and "pip install" in install.group(1) and "'.[mcp]'" in install.group(1), makefile


@dataclass
class Checkout:
    folder: Path
    env: dict[str, str]


def _checkout(root: Path) -> Path:
    folder = root / "oshal"
    folder.mkdir()
    for name in ("fleet", "workflows", "connectors", "tests"):
        (folder / name).symlink_to(REPO / name)
    (root / "shared").symlink_to(SHARED)
    for name, content in READER_FILES.items():
        (folder / name).write_text(content)
    return folder


def _wait_ready(proc: subprocess.Popen[str], url: str, key_file: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"oshal up exited with {proc.returncode}: {proc.communicate()}")
        try:
            if key_file.exists():
                key = key_file.read_text().strip()
                bots = httpx.get(f"{url}/v1/bots", headers={"Authorization": f"Bearer {key}"}, timeout=2)
                if bots.status_code == 200 and all(b["status"] == "online" for b in bots.json()):
                    return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("oshal up did not become ready within 120 s")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checkout]:
    """`make up` on a fresh clone: `oshal up` in a new folder, its data in the default ./.oshal."""
    assert (BIN / "oshal").exists(), f"no oshal in {BIN}: run `make dev`"
    folder = _checkout(tmp_path_factory.mktemp("readme"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
    env.update({"PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "OSHAL_API_URL": f"http://127.0.0.1:{port}",
                "OSHAL_LOG_LEVEL": "warning", "COLUMNS": "120"})
    proc = subprocess.Popen([str(BIN / "oshal"), "up", "--port", str(port)], cwd=folder, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_ready(proc, env["OSHAL_API_URL"], folder / ".oshal" / "admin.key")
        yield Checkout(folder, env)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=30)


def _run(line: Line, checkout: Checkout) -> subprocess.CompletedProcess[str]:
    script = line.text
    if line.variable is not None:
        # `export X=$(...)` exits 0 whatever the command did: assign first, keep the command's status, print X.
        script = f'{line.text.removeprefix("export ")}\nstatus=$?\nprintf %s "${{{line.variable}}}"\nexit $status'
    return subprocess.run(["bash", "-o", "pipefail", "-c", script], cwd=checkout.folder, env=checkout.env,
                          capture_output=True, text=True, timeout=_COMMAND_TIMEOUT_S)


def test_every_readme_command_runs_in_order_on_a_fresh_platform(checkout: Checkout) -> None:
    ran, skipped = [], []
    for line in readme_commands(README.read_text()):
        if line.text in NEEDS_INTERNET:
            skipped.append(line.text)
            continue
        done = _run(line, checkout)
        where = f"README line {line.number}: {line.text}\nexit {done.returncode}\n{done.stdout[-3000:]}\n" \
                f"{done.stderr[-3000:]}"
        assert done.returncode == 0, where
        assert "Traceback" not in done.stderr, where
        if line.variable is not None:
            assert done.stdout.strip(), f"{where}\nset {line.variable} to nothing"
            checkout.env[line.variable] = done.stdout.strip()
        ran.append((line, done))
    assert sorted(skipped) == sorted(NEEDS_INTERNET)

    by_text = {line.text: done for line, done in ran}
    video = checkout.env["VIDEO"]
    timeline = next(done for text, done in by_text.items() if text.startswith("oshal ticket timeline $VIDEO"))
    assert "video.mp4" in timeline.stdout, timeline.stdout  # the video was rendered and assembled
    assert re.fullmatch(r"[0-9a-f-]{36}", video)
    approved = next(done for text, done in by_text.items() if text.startswith("oshal approval approve $APPROVAL"))
    assert '"result": 5' in approved.stdout, approved.stdout  # the approved MCP call ran on the demo server
    assert (checkout.folder / "alpaca.json.sig.json").exists()  # signed where the README says
