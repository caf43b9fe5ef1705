"""Bot manifests: one YAML file per bot, validated at the edge into a frozen model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from oshal.errors import ConfigError, NotFound
from oshal.mesh.redis_keys import BOT_NAME_PATTERN

Harness = Literal["deterministic", "openai", "anthropic"]
_DEFAULT_PROVIDER = {"deterministic": "deterministic", "openai": "openai", "anthropic": "anthropic"}
# Validation context: leave the output_schema's meta-schema check to where the schema is used (see load_fleet).
_SCHEMAS_CHECKED_WHEN_USED = "schemas_checked_when_used"
# The provider SDKs wait between retries as the server's Retry-After asks, up to a minute (both cap it there).
SDK_MAX_RETRY_WAIT_S = 60.0


class BotManifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=BOT_NAME_PATTERN)
    description: str = ""
    persona: str = Field(default="", description="System prompt / persona for model harnesses.")
    harness: Harness = "deterministic"
    intent: str = Field(default="echo", description="Deterministic harness: which built-in intent to run.")
    provider: str = ""
    model: str = "deterministic-1"
    base_url: str | None = None
    api_key_env: str | None = Field(default=None, description="Environment variable holding the model key.")
    max_tokens: int = Field(default=1024, ge=1, le=200_000)
    temperature: float = Field(default=0.0, ge=0, le=2)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    max_tool_steps: int = Field(default=8, ge=1, le=50,
                                description="Model harnesses: most model calls in one job's tool loop.")
    latency_ms: int = Field(default=0, ge=0, le=600_000, description="Deterministic: simulated model time.")
    capabilities: tuple[str, ...] = ()
    concurrency: int = Field(default=64, ge=1, le=4096)
    replicas: int = Field(default=1, ge=1, le=64)
    node_group: str = Field(default="fleet", pattern=r"^[a-z0-9][a-z0-9-]{0,30}$",
                            description="`oshal up` runs each group's bots in a node host of their own, so bots that "
                            "watch the others (the operations loop's) do not share their fate.")
    model_capable: bool = Field(default=False, description="A model can do this bot's work: with a model provider "
                                "configured (OSHAL_MODEL_PROVIDER), it runs on that provider. Needs output_schema.")
    output_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema (an object) of the output this bot's consumers read: a model harness "
        "asks for structured output with it and returns the answer's JSON, checked against it, as the output.")

    @field_validator("output_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        if value is None:
            return None
        if not (info.context or {}).get(_SCHEMAS_CHECKED_WHEN_USED):
            check_output_schema(value)
        if value.get("type") != "object":
            raise ValueError("output_schema must describe a JSON object (type: object)")
        return value

    @model_validator(mode="after")
    def _capable_has_shape(self) -> BotManifest:
        if self.model_capable and self.output_schema is None:
            raise ValueError("model_capable needs output_schema: the shape of the output its consumers read, so a "
                             "model's answer keeps that shape")
        return self

    @property
    def provider_name(self) -> str:
        return self.provider or _DEFAULT_PROVIDER[self.harness]

    @property
    def longest_model_call_s(self) -> float:
        """How long one model call may run, its retries included: every attempt to its timeout, plus the longest
        wait the SDK makes before each retry. 0 for the deterministic harness, which makes no model calls."""
        if self.harness == "deterministic":
            return 0.0
        return self.timeout_s * (self.max_retries + 1) + SDK_MAX_RETRY_WAIT_S * self.max_retries


def check_output_schema(schema: dict[str, Any]) -> None:
    """ValueError unless ``schema`` is a valid JSON Schema (draft 2020-12)."""
    import jsonschema  # here, not at the top: ~3 MB of RSS that an idle node host does without (see load_fleet)

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        raise ValueError(f"output_schema is not a valid JSON Schema: {e.message}") from e


def load_manifest(path: Path, *, check_schemas: bool = True) -> BotManifest:
    """``check_schemas=False``: see ``load_fleet``."""
    try:
        data = yaml.safe_load(path.read_text())
        return BotManifest.model_validate(data, context={_SCHEMAS_CHECKED_WHEN_USED: not check_schemas})
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read bot manifest {path}: {e}") from e
    except ValidationError as e:
        raise ConfigError(f"bot manifest {path} is invalid: {e}", hint="see fleet/README.md for the fields") from e


def load_fleet(folder: Path, *, check_schemas: bool = True) -> dict[str, BotManifest]:
    """Every ``*.yaml`` in ``folder``; bot names must be unique.

    ``check_schemas=False`` (the node host) leaves each ``output_schema``'s check against the JSON Schema meta-schema
    to where it is used: a model harness checks its bot's when it is built, at the node's start (``build_harness``).
    Everything else is checked as always. Every fleet is also loaded with the check by whatever provisions it (`oshal
    up`, `oshal migrate`, `oshal deploy`), so a bad schema fails there first; a node host, which stays up, does not
    keep jsonschema (~3 MB) for bots that never use their schema (the deterministic harness)."""
    if not folder.is_dir():
        raise ConfigError(f"fleet folder {folder} does not exist", hint="set OSHAL_FLEET_DIR or --fleet")
    fleet: dict[str, BotManifest] = {}
    for path in sorted(folder.glob("*.y*ml")):
        manifest = load_manifest(path, check_schemas=check_schemas)
        if manifest.name in fleet:
            raise ConfigError(f"bot {manifest.name!r} is defined twice (second time in {path})")
        fleet[manifest.name] = manifest
    if not fleet:
        raise ConfigError(f"fleet folder {folder} has no bot manifests (*.yaml)")
    return fleet


def select(fleet: dict[str, BotManifest], names: list[str] | None) -> dict[str, BotManifest]:
    if not names:
        return fleet
    missing = [n for n in names if n not in fleet]
    if missing:
        raise NotFound(f"unknown bot(s): {', '.join(missing)}", hint=f"known bots: {', '.join(fleet)}")
    return {n: fleet[n] for n in names}
