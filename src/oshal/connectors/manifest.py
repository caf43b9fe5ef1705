"""Connector manifests: what an external API offers, how it authenticates, and what each operation risks.

A manifest is data. Its canonical form (sorted-key JSON of everything but the signature) is what a publisher
signs; any change to an operation, description, schema, scope or enabled flag changes that form.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from oshal import jsontext
from oshal.errors import Forbidden, NotFound

Risk = Literal["read", "write", "money", "destructive"]
Method = Literal["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]
AuthKind = Literal["none", "api_key", "bearer", "basic", "oauth2_client_credentials", "oauth2_refresh_token"]
Category = Literal["commerce", "travel", "media", "finance", "ops", "productivity", "communication", "data",
                   "other"]

CONNECTOR_ID_PATTERN = r"^[a-z][a-z0-9-]{1,62}$"
OPERATION_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$"
# Declared effects that move money; an operation declaring one is "money" whatever its method.
MONEY_EFFECTS = frozenset({"payment", "charge", "refund", "payout", "transfer", "order", "trade", "purchase"})
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def derive_risk(method: str, effects: tuple[str, ...] | list[str] = ()) -> Risk:
    """Risk follows from what an operation does, never from what a manifest claims about itself."""
    if method.upper() == "DELETE" or "delete" in effects or "destructive" in effects:
        return "destructive"
    if MONEY_EFFECTS.intersection(effects):
        return "money"
    if method.upper() in _READ_METHODS and not effects:
        return "read"
    return "write"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class AuthScheme(_Frozen):
    """How requests authenticate. The credential itself never appears here: only where it goes."""

    kind: AuthKind
    name: str = Field(default="", description="Header or query parameter name for api_key.")
    location: Literal["header", "query"] = "header"
    token_url: str | None = Field(default=None, description="OAuth2 token endpoint.")
    scopes: tuple[str, ...] = ()


class Parameter(_Frozen):
    name: str = Field(min_length=1, max_length=200)
    location: Literal["path", "query", "header"]
    required: bool = False
    description: str = ""
    json_schema: dict[str, Any] = Field(default_factory=dict, alias="schema")


class Operation(_Frozen):
    name: str = Field(pattern=OPERATION_NAME_PATTERN)
    method: Method
    path: str = Field(min_length=1, max_length=2000)
    summary: str = ""
    description: str = ""
    parameters: tuple[Parameter, ...] = ()
    body_schema: dict[str, Any] | None = None
    body_required: bool = False
    output_schema: dict[str, Any] | None = None
    effects: tuple[str, ...] = Field(default=(), description="Declared side effects, e.g. payment, delete.")
    enabled: bool = False

    @model_validator(mode="before")
    @classmethod
    def _risk_is_derived(cls, data: Any) -> Any:
        """A stated risk (as in a dumped manifest) must agree with the one derived from method and effects."""
        if isinstance(data, dict) and "risk" in data:
            data = dict(data)
            stated = data.pop("risk")
            derived = derive_risk(str(data.get("method", "")), tuple(data.get("effects") or ()))
            if stated != derived:
                raise ValueError(f"risk {stated!r} contradicts method and effects, which make it {derived!r}")
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def risk(self) -> Risk:
        return derive_risk(self.method, self.effects)

    def path_parameters(self) -> list[str]:
        return re.findall(r"{([^{}]+)}", self.path)


class ConnectorManifest(_Frozen):
    id: str = Field(pattern=CONNECTOR_ID_PATTERN)
    version: str = Field(min_length=1, max_length=50)
    publisher: str = Field(min_length=1, max_length=100)
    category: Category = "other"
    title: str = ""
    description: str = ""
    base_url: str = Field(min_length=1, max_length=2000)
    auth: tuple[AuthScheme, ...] = ()
    operations: tuple[Operation, ...] = ()
    allow_private_network: bool = Field(
        default=False, description="Permit requests to loopback/private/link-local addresses (tests, on-prem)."
    )
    source: dict[str, Any] = Field(default_factory=dict, description="Where an import came from (kind, title, hash).")

    def operation(self, name: str) -> Operation | None:
        return next((op for op in self.operations if op.name == name), None)

    def callable_operation(self, name: str) -> Operation:
        """The operation, if it exists and is enabled; NotFound or Forbidden (saying what to do) otherwise."""
        op = self.operation(name)
        if op is None:
            names = ", ".join(o.name for o in self.operations[:30]) or "(none)"
            raise NotFound(f"connector {self.id} has no operation {name[:80]!r}", hint=f"its operations are: {names}")
        if not op.enabled:
            raise Forbidden(f"operation {op.name} of connector {self.id} is not enabled; an operator must enable it")
        return op

    def canonical_bytes(self) -> bytes:
        """The exact bytes a publisher signs."""
        body = self.model_dump(mode="json", by_alias=True)
        return jsontext.canonical(body, ascii_only=False).encode()

    def digest(self) -> str:
        return hashlib.sha256(self.canonical_bytes()).hexdigest()
