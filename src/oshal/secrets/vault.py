"""HashiCorp Vault (KV v2) as the secret store, through ``hvac`` (``pip install 'oshal[vault]'``).

Layout under the KV v2 mount: ``<prefix>/<tenant_id>/<name>`` for tenant-wide credentials and
``<prefix>/<tenant_id>/users/<user_id>/<name>`` for user-scoped ones; each secret is ``{"value": "..."}``.
Encryption at rest and its keys are Vault's job, so there is no envelope here and :meth:`rotate` only says so.
Tenant isolation comes from the path: every address is built from a validated tenant uuid and name.

hvac is synchronous; each call runs in a worker thread so the event loop never blocks on Vault.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal
from uuid import UUID

from oshal.errors import ConfigError, Forbidden, Invalid, NotFound, Unavailable
from oshal.secrets.port import RotationReport, check_name, check_value, not_found, scope
from oshal.settings import Settings

_NOTE = ("Vault encrypts its storage with its own keyring and rotates it itself (`vault operator rotate`); "
         "oshal holds no keys for this backend, so there is nothing to re-wrap or re-encrypt")


def _hvac() -> Any:
    try:
        import hvac
    except ImportError:
        raise ConfigError("the Vault secret backend needs the hvac package: pip install 'oshal[vault]'",
                          hint="or set OSHAL_SECRETS_BACKEND=builtin") from None
    return hvac


def _dig(body: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


class _Missing(Exception):
    """Vault answered 404 for the path."""


class VaultSecretStore:
    backend: Literal["builtin", "vault"] = "vault"

    def __init__(self, url: str, token: str, *, mount: str = "secret", prefix: str = "oshal",
                 timeout_s: float = 10.0, verify: bool | str = True) -> None:
        if not url:
            raise ConfigError("OSHAL_VAULT_URL is not set; the Vault secret backend needs it",
                              hint="set OSHAL_VAULT_URL, e.g. https://vault.internal:8200")
        if not token:
            raise ConfigError("OSHAL_VAULT_TOKEN is not set; the Vault secret backend needs it",
                              hint="set OSHAL_VAULT_TOKEN to a token allowed to read and write the KV v2 paths")
        hvac = _hvac()
        self._errors = hvac.exceptions
        self._url = url.rstrip("/")
        self._mount = mount.strip("/")
        self._prefix = prefix.strip("/")
        if not self._mount or not self._prefix:
            raise ConfigError("OSHAL_VAULT_MOUNT and OSHAL_VAULT_PREFIX must not be empty")
        self._client = hvac.Client(url=self._url, token=token, timeout=timeout_s, verify=verify)
        self._kv = self._client.secrets.kv.v2

    @classmethod
    def from_settings(cls, settings: Settings) -> VaultSecretStore:
        token = settings.vault_token.get_secret_value() if settings.vault_token is not None else ""
        return cls(settings.vault_url or "", token, mount=settings.vault_mount, prefix=settings.vault_prefix)

    # -- addressing -----------------------------------------------------------------------------------
    def _folder(self, tenant_id: UUID, user_id: UUID | None) -> str:
        tenant = UUID(str(tenant_id))
        base = f"{self._prefix}/{tenant}"
        return base if user_id is None else f"{base}/users/{UUID(str(user_id))}"

    def path(self, tenant_id: UUID, name: str, user_id: UUID | None = None) -> str:
        """Where a credential lives under the mount."""
        return f"{self._folder(tenant_id, user_id)}/{check_name(name)}"

    async def _call(self, what: str, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        """Run one hvac call in a thread and translate its errors. Messages never carry the token or value."""
        errors = self._errors
        try:
            return await asyncio.to_thread(fn, mount_point=self._mount, **kwargs)
        except errors.InvalidPath as e:
            if any("no handler for route" in str(m) for m in e.errors or ()):
                raise ConfigError(f"Vault has no KV v2 mount {self._mount!r} (OSHAL_VAULT_MOUNT)",
                                  hint="set OSHAL_VAULT_MOUNT to the mount of your KV version 2 engine") from None
            raise _Missing from None
        except (errors.Forbidden, errors.Unauthorized):
            raise Forbidden(f"Vault denied {what}: permission denied",
                            hint=f"check OSHAL_VAULT_TOKEN and that its policy covers "
                                 f"{self._mount}/data/{self._prefix}/* and {self._mount}/metadata/{self._prefix}/*"
                            ) from None
        except errors.InvalidRequest:
            raise Invalid(f"Vault rejected {what} as invalid",
                          hint=f"check that {self._mount} is a KV version 2 mount (OSHAL_VAULT_MOUNT)") from None
        except errors.VaultError as e:
            raise Unavailable(f"Vault failed {what} ({type(e).__name__})",
                              hint=f"check Vault at {self._url} (sealed, down or rate limited?)") from None
        except OSError as e:  # requests' connection errors and timeouts derive from OSError
            raise Unavailable(f"cannot reach Vault at {self._url} for {what} ({type(e).__name__})",
                              hint="check OSHAL_VAULT_URL and that Vault is running") from None

    # -- credentials ----------------------------------------------------------------------------------
    async def put(self, tenant_id: UUID, name: str, value: str, *, user_id: UUID | None = None) -> None:
        path = self.path(tenant_id, name, user_id)
        check_value(value)
        await self._call(f"writing {scope(name, user_id)}", self._kv.create_or_update_secret,
                         path=path, secret={"value": value})

    async def get_in(self, conn: Any, tenant_id: UUID, name: str, *, user_id: UUID | None = None) -> str:
        return await self.get(tenant_id, name, user_id=user_id)  # Vault is not in the database: no shared tx

    async def resolve_in(self, conn: Any, tenant_id: UUID, name: str, *, user_id: UUID | None) -> str:
        if user_id is not None:
            try:
                return await self.get(tenant_id, name, user_id=user_id)
            except NotFound:
                pass
        return await self.get(tenant_id, name)

    async def get(self, tenant_id: UUID, name: str, *, user_id: UUID | None = None) -> str:
        path = self.path(tenant_id, name, user_id)
        try:
            response = await self._call(f"reading {scope(name, user_id)}", self._kv.read_secret_version,
                                        path=path, raise_on_deleted_version=True)
        except _Missing:
            raise not_found(name, user_id) from None
        value = _dig(response, "data", "data", "value")
        if not isinstance(value, str):
            raise Invalid(f"the Vault secret for {scope(name, user_id)} has no text field 'value'",
                          hint=f"oshal stores {{\"value\": ...}} at {self._mount}/{path}; store it again (put)")
        return value

    async def delete(self, tenant_id: UUID, name: str, *, user_id: UUID | None = None) -> bool:
        path = self.path(tenant_id, name, user_id)
        what = f"deleting {scope(name, user_id)}"
        try:
            await self._call(what, self._kv.read_secret_metadata, path=path)
        except _Missing:
            return False
        await self._call(what, self._kv.delete_metadata_and_all_versions, path=path)
        return True

    async def names(self, tenant_id: UUID, *, user_id: UUID | None = None) -> list[str]:
        try:
            response = await self._call("listing credentials", self._kv.list_secrets,
                                        path=self._folder(tenant_id, user_id))
        except _Missing:
            return []  # Vault answers 404 for an empty folder
        keys = _dig(response, "data", "keys")
        if not isinstance(keys, list):
            return []
        return sorted(k for k in keys if isinstance(k, str) and not k.endswith("/"))

    async def rotate(self) -> RotationReport:
        return RotationReport(backend="vault", note=_NOTE)

    async def rotate_data_key(self, tenant_id: UUID) -> RotationReport:
        UUID(str(tenant_id))
        return RotationReport(backend="vault", tenants=1, note=_NOTE)

    async def close(self) -> None:
        await asyncio.to_thread(self._client.adapter.close)
