"""The secret-store port: what the rest of oshal may do with credentials.

A credential is addressed by (tenant, name) or, when user-scoped, (tenant, name, user). Values go in and
come out as text; nothing but :meth:`SecretStore.get` ever returns one, and no error message contains one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable
from uuid import UUID

from oshal.errors import Invalid, NotFound, TooLarge

if TYPE_CHECKING:
    from oshal.store.db import Conn

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_NAME = re.compile(NAME_PATTERN)
MAX_VALUE_BYTES = 64 * 1024


@dataclass(frozen=True)
class RotationReport:
    """What a rotation did. Counts only: never key material."""

    backend: Literal["builtin", "vault"]
    kek_id: str | None = None  # fingerprint of the KEK everything is wrapped by afterwards
    tenants: int = 0  # tenants visited
    data_keys_rewrapped: int = 0  # DEKs re-wrapped under the new KEK (ciphertexts untouched)
    data_keys_current: int = 0  # DEKs that were already wrapped by it
    data_keys_created: int = 0  # new DEKs (data-key rotation)
    credentials_reencrypted: int = 0  # credentials re-encrypted under a new DEK (data-key rotation)
    note: str = ""


@runtime_checkable
class SecretStore(Protocol):
    backend: Literal["builtin", "vault"]

    async def put(self, tenant_id: UUID, name: str, value: str, *, user_id: UUID | None = None) -> None:
        """Create or replace a credential."""
        ...

    async def get(self, tenant_id: UUID, name: str, *, user_id: UUID | None = None) -> str:
        """The value; NotFound (with a hint) when there is none at exactly this scope."""
        ...

    async def get_in(self, conn: Conn, tenant_id: UUID, name: str, *, user_id: UUID | None = None) -> str:
        """:meth:`get` within the caller's tenant transaction when the backend lives in the same database
        (saves a transaction on the tool-call path); other backends ignore ``conn``."""
        ...

    async def resolve_in(self, conn: Conn, tenant_id: UUID, name: str, *, user_id: UUID | None) -> str:
        """The user's own credential when ``user_id`` has one, else the tenant-wide one (NotFound if neither)."""
        ...

    async def delete(self, tenant_id: UUID, name: str, *, user_id: UUID | None = None) -> bool:
        """Remove a credential; True when one existed."""
        ...

    async def names(self, tenant_id: UUID, *, user_id: UUID | None = None) -> list[str]:
        """Sorted names at one scope (tenant-wide, or one user's); never values."""
        ...

    async def rotate(self) -> RotationReport:
        """Bring every stored key under the current key-encryption key."""
        ...

    async def rotate_data_key(self, tenant_id: UUID) -> RotationReport:
        """Give one tenant a new data key and re-encrypt its credentials under it."""
        ...

    async def close(self) -> None: ...


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise Invalid(f"invalid credential name {name!r}",
                      hint="use 1-128 characters: letters, digits, '_', '.', '-', starting with a letter or digit")
    return name


def check_value(value: str) -> bytes:
    if not isinstance(value, str):
        raise Invalid(f"a credential value must be text, got {type(value).__name__}")
    data = value.encode()
    if not data:
        raise Invalid("a credential value must not be empty")
    if len(data) > MAX_VALUE_BYTES:
        raise TooLarge(f"a credential value must be at most {MAX_VALUE_BYTES} bytes, got {len(data)}")
    return data


def scope(name: str, user_id: UUID | None) -> str:
    """How a credential is named in messages: the name and scope, never the value."""
    return f"credential {name!r}" + (f" of user {user_id}" if user_id is not None else "")


def not_found(name: str, user_id: UUID | None) -> NotFound:
    return NotFound(f"no {scope(name, user_id)} in this tenant",
                    hint="store it first (put), or check the name and whether it is user-scoped")
