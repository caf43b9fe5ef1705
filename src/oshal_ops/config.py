"""The operations loop's configuration: where the platform is, what to watch, when to act on its own.

Read from a YAML file (``oshal ops run --config ops.yaml``); the platform's URL and key fall back to
``OSHAL_API_URL`` / ``OSHAL_API_KEY`` and then to the admin key ``oshal up`` wrote. Every field is validated and a
mistake names the field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from oshal_ops.checks import EndpointCheck, Thresholds

FAILURE_MODES = ("dead_bot", "stuck_lane", "poison_message", "exhausted_budget", "failing_credential",
                 "engine_down", "endpoint_down")


class ConfigError(Exception):
    """A configuration mistake, said in words that name the field and how to fix it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EndpointIn(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    url: str = Field(pattern=r"^https?://", max_length=2000)
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    expect_status: int = Field(default=200, ge=100, le=599)
    expect_body: str | None = Field(default=None, max_length=1000)


class AlertsIn(_Strict):
    listen: str = Field(default="127.0.0.1:8810", pattern=r"^[\w.\-\[\]:]+:\d{1,5}$")
    token_env: str = Field(default="OSHAL_OPS_ALERT_TOKEN", pattern=r"^[A-Z_][A-Z0-9_]*$")


class OpsConfig(_Strict):
    url: str = Field(default="", description="The control plane; default OSHAL_API_URL or http://127.0.0.1:8800")
    key_file: Path | None = Field(default=None, description="A file holding a platform operator key")
    interval_s: float = Field(default=10.0, ge=0.2, le=3600)
    endpoints: list[EndpointIn] = Field(default_factory=list, max_length=200)
    bots: list[str] | None = Field(default=None, description="the bots to watch; default: every registered bot")
    lane_pending: int = Field(default=100, ge=0)
    dead_letters: int = Field(default=0, ge=0)
    alerts: AlertsIn | None = None
    automatic: list[str] = Field(default_factory=list, description="failure modes healed without approval")
    incident_budget_usd: float = Field(default=0.50, ge=0, le=1000, description="spend cap on each incident")
    max_actions_per_incident: int = Field(default=3, ge=0, le=20)

    @field_validator("automatic")
    @classmethod
    def _known_modes(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(FAILURE_MODES))
        if unknown:
            raise ValueError(f"unknown failure modes {unknown}; known: {', '.join(FAILURE_MODES)}")
        return value

    def checks(self) -> list[EndpointCheck]:
        return [EndpointCheck(e.name, e.url, e.timeout_s, e.expect_status, e.expect_body) for e in self.endpoints]

    def thresholds(self) -> Thresholds:
        return Thresholds(lane_pending=self.lane_pending, dead_letters=self.dead_letters,
                          bots=frozenset(self.bots) if self.bots is not None else None)

    def platform_url(self) -> str:
        return (self.url or os.environ.get("OSHAL_API_URL") or "http://127.0.0.1:8800").rstrip("/")

    def platform_key(self) -> str:
        """The operator key: key_file, else OSHAL_API_KEY, else the admin key `oshal up` wrote."""
        if self.key_file is not None:
            return _read_key(self.key_file)
        if os.environ.get("OSHAL_API_KEY"):
            return os.environ["OSHAL_API_KEY"].strip()
        home = Path(os.environ.get("OSHAL_HOME", ".oshal"))
        return _read_key(home / "admin.key")

    def alert_token(self) -> str | None:
        """The webhook's bearer token, or None: then the webhook refuses every request (fail closed)."""
        if self.alerts is None:
            return None
        token = os.environ.get(self.alerts.token_env, "").strip()
        return token or None


def _read_key(path: Path) -> str:
    try:
        key = path.read_text().strip()
    except OSError as e:
        raise ConfigError(f"cannot read the platform key from {path}: {e.strerror}. Set key_file, or "
                          "OSHAL_API_KEY, or run `oshal up` first (it writes .oshal/admin.key)") from e
    if not key.startswith("osk_"):
        raise ConfigError(f"{path} does not hold an oshal API key (osk_...)")
    return key


def load(path: Path | None) -> OpsConfig:
    raw: Any = {}
    if path is not None:
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except OSError as e:
            raise ConfigError(f"cannot read {path}: {e.strerror}") from e
        except yaml.YAMLError as e:
            raise ConfigError(f"{path} is not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping of settings (url, endpoints, ...)")
    try:
        return OpsConfig.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()[:5])
        raise ConfigError(f"{path}: {problems}") from e
