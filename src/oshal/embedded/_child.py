"""A supervised child process: started, health-checked, stopped with a signal and a deadline."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from oshal.errors import Unavailable


def pid_from_file(path: Path) -> int | None:
    """The live process whose pid is the first word of ``path`` (a server's pid file); None if it is down."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except PermissionError:  # alive, but another user's process
        return pid
    except OSError:
        return None
    return pid


class Child:
    def __init__(self, name: str, argv: Sequence[str], log_file: Path, *,
                 identity: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_file = log_file
        self.identity = dict(identity or {})
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        """Start the process without waiting for it to become ready (an engine keeper polls readiness)."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child for its lifetime
        self.process = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, **self.identity,
        )
        log.close()

    def start(self, ready: Callable[[], bool], timeout_s: float = 30.0) -> None:
        self.spawn()
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Unavailable(
                    f"{self.name} exited with code {self.process.returncode} during start-up",
                    hint=f"see its log: {self.log_file}",
                )
            if ready():
                return
            time.sleep(0.05)
        self.stop()
        raise Unavailable(f"{self.name} did not become ready in {timeout_s:.0f}s", hint=f"see {self.log_file}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def exit_code(self) -> int | None:
        """The exit status once the process has ended (negative: killed by that signal), else None."""
        return self.process.poll() if self.process else None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 15.0) -> None:
        if not self.running or self.process is None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
