"""Connector credentials, encrypted at rest: a Postgres backend (AES-256-GCM envelope) or HashiCorp Vault.

Use :func:`open_secret_store` and the :class:`SecretStore` port (:mod:`.port`); backends live in :mod:`.builtin`
and :mod:`.vault`, the cryptography in :mod:`.encryption`.
"""

from __future__ import annotations

from collections.abc import Sequence

from oshal.errors import ConfigError
from oshal.secrets.port import RotationReport, SecretStore
from oshal.settings import Settings
from oshal.store.db import Database

__all__ = ["RotationReport", "SecretStore", "open_secret_store"]


def open_secret_store(settings: Settings, db: Database | None = None, *,
                      previous_keks: Sequence[bytes] = ()) -> SecretStore:
    """The configured backend. ``db`` (opened by the caller, API role) is required for the builtin backend;
    ``previous_keks`` are KEKs still accepted for unwrapping while a KEK rotation is in progress."""
    if settings.secrets_backend == "vault":
        from oshal.secrets.vault import VaultSecretStore

        return VaultSecretStore.from_settings(settings)
    from oshal.secrets.builtin import BuiltinSecretStore
    from oshal.secrets.encryption import load_kek

    kek = load_kek(settings)  # first: a missing KEK is the error an operator must see
    if db is None:
        raise ConfigError("the builtin secret store needs a database",
                          hint="pass the API role's Database, or set OSHAL_SECRETS_BACKEND=vault")
    return BuiltinSecretStore(db, kek, previous_keks=previous_keks)
