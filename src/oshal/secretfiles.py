"""Local secret files under ``$OSHAL_HOME/secrets``: created once with mode 0600, never logged."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def secrets_dir(home: Path) -> Path:
    path = home / "secrets"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, value: str) -> None:
    """Write ``value`` to ``path`` readable by the owner only, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    os.replace(tmp, path)


def read_or_create(path: Path, nbytes: int = 24) -> str:
    """Return the secret stored at ``path``, generating and storing a random one the first time."""
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(nbytes)
    write_private(path, value)
    return value
