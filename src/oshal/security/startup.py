"""Fail closed at start-up: outside dev mode, refuse to run with a missing, default or weak secret."""

from __future__ import annotations

import base64
import binascii

from oshal.errors import ConfigError
from oshal.settings import Settings

# Values seen in example configs and tutorials; a secret equal to one of these is as good as none.
KNOWN_DEFAULTS = frozenset({
    "changeme", "change-me", "change_me", "secret", "password", "default", "dev", "test", "example", "oshal",
    "admin", "letmein", "insecure", "development", "please-change-me", "replace-me", "xxx", "todo",
})
MIN_SECRET_CHARS = 32
_GENERATE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
_GENERATE_KEK = 'python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"'


def weakness(value: str) -> str | None:
    """Why ``value`` is not fit to be a secret, or None."""
    if value.strip().lower() in KNOWN_DEFAULTS:
        return "is a well-known default"
    if len(value) < MIN_SECRET_CHARS:
        return f"is {len(value)} characters; at least {MIN_SECRET_CHARS} are needed"
    if len(set(value)) < 10:
        return "has fewer than 10 distinct characters"
    return None


def secret_problems(settings: Settings, *, bootstrap: bool = True) -> list[str]:
    """One line per missing or unfit secret: the setting, what is wrong, and how to make a good one. The bootstrap
    key matters only to what registers it (`oshal up`), not to a control plane started on its own."""
    problems: list[str] = []

    def check(name: str, value: str | None, how: str) -> None:
        if not value:
            problems.append(f"{name} is not set (generate one with: {how})")
        elif (why := weakness(value)) is not None:
            problems.append(f"{name} {why} (generate one with: {how})")

    check("OSHAL_DISPATCH_KEY", _plain(settings.dispatch_key), _GENERATE)
    if settings.secrets_backend == "builtin":
        kek = _plain(settings.secrets_kek)
        if not kek:
            problems.append(f"OSHAL_SECRETS_KEK is not set (generate one with: {_GENERATE_KEK})")
        elif not _is_32_bytes_base64(kek):
            problems.append(f"OSHAL_SECRETS_KEK is not base64 of 32 bytes (generate one with: {_GENERATE_KEK})")
    else:
        if not settings.vault_url:
            problems.append("OSHAL_VAULT_URL is not set (the secrets backend is vault)")
        if not _plain(settings.vault_token):
            problems.append("OSHAL_VAULT_TOKEN is not set (the secrets backend is vault)")
    key = _plain(settings.bootstrap_key)
    if bootstrap and not key:
        problems.append("OSHAL_BOOTSTRAP_KEY is not set: the first operator key (make one with `oshal key mint`)")
    elif key and (not key.startswith("osk_") or len(key) < 40):
        problems.append("OSHAL_BOOTSTRAP_KEY is not an oshal key (make one with `oshal key mint`)")
    return problems


def require_secrets(settings: Settings, *, bootstrap: bool = True) -> None:
    """Raise, naming every missing setting at once, unless in dev mode or every secret is present and strong."""
    if settings.mode == "dev":
        return
    problems = secret_problems(settings, bootstrap=bootstrap)
    if problems:
        raise ConfigError(
            f"refusing to start in {settings.mode} mode: " + "; ".join(problems),
            hint="set these in the environment (or run with OSHAL_MODE=dev on a laptop, which generates them)")


def _plain(value: object) -> str | None:
    if value is None:
        return None
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if getter else value)


def _is_32_bytes_base64(value: str) -> bool:
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False
