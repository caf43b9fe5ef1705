"""System users the platform runs parts of itself as when it runs as root, and the file access they need."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from oshal.errors import Unavailable

# The node host runs bot code; as root, the platform runs it as this user, which owns nothing of the platform's.
NODE_USER = "oshal_node"


@dataclass(frozen=True, slots=True)
class SystemUser:
    name: str
    uid: int
    gid: int


def running_as_root() -> bool:
    return os.geteuid() == 0


def ensure_system_user(name: str) -> SystemUser:
    """The system user ``name`` (no home, no login shell), created the first time. Needs root."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = _create(name)
    return SystemUser(name, entry.pw_uid, entry.pw_gid)


def _create(name: str) -> pwd.struct_passwd:
    done = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin",
                           name], check=False, capture_output=True, text=True)
    if done.returncode not in (0, 9):  # 9: created meanwhile by a concurrent start
        raise Unavailable(f"cannot create the system user {name}: {done.stderr.strip()}",
                          hint=f"create it yourself: useradd --system --user-group --no-create-home {name}")
    return pwd.getpwnam(name)


def make_traversable(path: Path) -> list[Path]:
    """Add search (x, not read) permission for others on ``path``'s directory and each of its parents, so a system
    user can reach what lies below by name. Returns the directories it changed."""
    changed = []
    start = path if path.is_dir() else path.parent
    for folder in (start, *start.parents):
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(folder, stat.S_IMODE(mode) | stat.S_IXOTH)
            changed.append(folder)
    return changed
