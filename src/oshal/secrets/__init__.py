"""Connector credentials, encrypted at rest: a Postgres backend (AES-256-GCM envelope) or HashiCorp Vault.

Use :func:`open_secret_store` and the :class:`SecretStore` port; backends live in :mod:`.builtin` and
:mod:`.vault`, the cryptography in :mod:`.envelope`.
"""

from __future__ import annotations

from oshal.secrets.store import RotationReport, SecretStore, open_secret_store

__all__ = ["RotationReport", "SecretStore", "open_secret_store"]
