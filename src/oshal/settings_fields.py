"""Every setting's name, type, default and check (environment prefix ``OSHAL_``), and a lean reader of them.

``Settings`` (``oshal.settings``) reads these fields through pydantic-settings, for every process but the node host.
The node host stays up for the platform's lifetime and keeps what it imported: pydantic-settings is about 5 MB of
it, so it reads the same fields with ``read_settings`` below, which takes the same sources in the same order (its
arguments, then the environment, then the files in ``$OSHAL_SECRETS_DIR``) and validates them with the same model,
so the values and the validation errors are the same.
"""

from __future__ import annotations

import json
import os
import types
import warnings
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from oshal.errors import ConfigError

ENV_PREFIX = "OSHAL_"
# A folder of secret files, one per setting, named like its variable (``oshal_dispatch_key``): what Compose and
# Kubernetes mount at /run/secrets, so no secret has to sit in a process's environment.
SECRETS_DIR_VARIABLE = "OSHAL_SECRETS_DIR"


class SettingsFields(BaseModel):
    # As pydantic-settings configures a settings model: defaults are validated too (``home`` is made absolute), and
    # an error names the model ``Settings`` whichever reader built it.
    model_config = ConfigDict(extra="ignore", validate_default=True, title="Settings")

    mode: Literal["dev", "prod"] = "dev"
    home: Path = Field(default=Path(".oshal"), description="Data folder for embedded engines and keys.")

    database_url: str | None = Field(
        default=None, description="Owner/migration connection URL of an external Postgres; unset = embedded."
    )
    api_database_url: str | None = Field(
        default=None, description="Connection URL for the API's least-privilege role (derived when unset)."
    )
    redis_url: str | None = Field(default=None, description="URL of an external Redis; unset = embedded.")
    node_redis_url: str | None = Field(
        default=None, description="The Redis address remote nodes are given at `oshal node join`, without "
        "credentials (each node gets a user of its own), e.g. rediss://10.0.0.5:6380; unset = the control plane's own.")

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8800, ge=1, le=65535)
    api_url: str = "http://127.0.0.1:8800"
    api_key: str | None = None
    tls_cert_file: Path | None = Field(default=None, description="PEM certificate: the API serves HTTPS with it.")
    tls_key_file: Path | None = Field(default=None, description="PEM private key for tls_cert_file.")
    cors_origins: list[str] = Field(default_factory=list, description="Browser origins allowed to call the API.")
    bootstrap_key: SecretStr | None = Field(
        default=None, description="The system tenant's first operator key (`oshal key mint` makes one); required "
        "outside dev mode. In dev mode one is generated and written to $HOME/admin.key.")
    dispatch_key: SecretStr | None = Field(
        default=None, description="HMAC key signing lane envelopes; required outside dev mode."
    )

    fleet_dir: Path = Path("fleet")
    node_credentials: Path | None = Field(default=None, description="Node host: the file of its bots' own Redis URLs "
                                          "and gateway tokens that `oshal up` writes it (instead of OSHAL_HOME).")
    node_replicas: dict[str, int] = Field(default_factory=dict, description="Node host: replicas per bot ordered "
                                          "through fleet control, instead of the manifests' (0 leaves a bot out).")
    node_liveness_file: Path | None = Field(default=None, description="Node host: a file it rewrites every few "
                                            "seconds while its event loop runs; `oshal node --check` reads it (the "
                                            "container's liveness probe). Unset = none is written.")
    connectors_dir: Path = Field(default=Path("connectors"), description="Curated signed connectors to install.")
    prices_file: Path | None = None

    max_input_bytes: int = Field(default=64 * 1024, ge=256)
    max_batch: int = Field(default=1000, ge=1, le=10_000)
    rate_limit_per_s: float = Field(default=500.0, gt=0, description="API requests per second per key.")
    rate_limit_burst: float = Field(default=1000.0, ge=1, description="API requests one key may burst.")
    max_deliveries: int = Field(default=3, ge=1, description="Deliveries of one message before dead letter.")
    claim_idle_ms: int = Field(default=15_000, ge=50, description="Idle time before a replica reclaims.")
    stale_after_s: float = Field(default=120.0, gt=0, description="No progress for this long, and no copy in its "
                                 "lane or output stream: re-send.")
    done_marker_ttl_s: int = Field(default=86_400, ge=60, description="How long workers keep skipping copies of "
                                   "a phase that was sent more than once and succeeded.")
    sweep_interval_s: float = Field(default=5.0, gt=0)
    heartbeat_ttl_s: float = Field(default=10.0, gt=0)
    collector_batch: int = Field(default=1000, ge=1)
    collector_loops: int = Field(default=1, ge=1, le=16, description="Collector loops per control plane, each with "
                                 "a connection of its own: while Postgres commits one batch, another is prepared "
                                 "(2 gives about 40% more throughput on 2 cores; see the README before raising it).")
    wait_max_s: float = Field(default=60.0, gt=0)
    drain_timeout_s: float = Field(default=20.0, gt=0)
    db_pool_size: int = Field(default=8, ge=1)

    connector_rate_per_s: float = Field(default=20.0, gt=0, description="Calls per second per connector.")
    connector_burst: float = Field(default=40.0, ge=1, description="Burst of calls per connector.")

    workflows_dir: Path = Field(default=Path("workflows"), description="Built-in workflow definitions to register.")
    object_store: Literal["local", "s3"] = Field(default="local", description="Where artifacts (videos, files) go.")
    objects_dir: Path | None = Field(default=None, description="Local object store folder; default $HOME/objects.")
    s3_endpoint: str | None = Field(default=None, description="S3-compatible endpoint URL (path-style requests).")
    s3_bucket: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    max_artifact_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, description="Largest artifact a bot stores.")
    scheduler_interval_s: float = Field(default=1.0, gt=0, description="How often the scheduler looks for due ticks.")

    log_paths: list[Path] = Field(default_factory=list, description="Log files or folders the secrets scan reads "
                                  "(besides $HOME/logs and the embedded Postgres log).")
    security_scan_interval_s: float = Field(default=900.0, ge=0, description="How often the Security Center "
                                            "runs its scans (the code scan daily); 0 = only on demand.")
    security_webhook_url: str | None = Field(default=None, description="Where HIGH and CRITICAL findings are "
                                             "POSTed as JSON when filed (besides the log and the audit log).")
    audit_anchor_interval_s: float = Field(default=10.0, gt=0, description="How often the audit chain's head is "
                                           "anchored (MACed with a key the database never sees).")
    audit_retention_days: int = Field(default=365, ge=30, description="Audit entries older than this are pruned.")
    reservation_ttl_s: float = Field(default=600.0, gt=0, description="A model call's budget reservation expires "
                                     "(and is released) when no result settles it for this long; each later call "
                                     "of the same job extends it. Start-up fails when a bot's model call may run "
                                     "longer (timeout_s x attempts + retry waits + 10 s).")
    max_model_calls: int = Field(default=200, ge=0, description="Runaway protection: a ticket making more model "
                                 "calls than this within max_model_calls_window_s pauses; 0 = no limit.")
    max_model_calls_window_s: float = Field(default=600.0, gt=0)
    ledger_retention_days: int = Field(default=90, ge=1, description="Per-call ledger rows older than this are "
                                       "rolled up into daily totals (nothing is lost from the totals).")
    console_session_ttl_s: float = Field(default=8 * 3600.0, ge=60, le=30 * 86_400, description="How long a web "
                                         "console login lasts (the key's own expiry or revocation ends it sooner).")
    console_secure_cookie: bool | None = Field(default=None, description="Mark the console's cookies Secure: "
                                               "None = when the request came over HTTPS (X-Forwarded-Proto too).")
    model_provider: Literal["openai", "anthropic"] | None = Field(
        default=None, description="Run the fleet's model-capable bots on this provider (`openai` = any "
        "OpenAI-compatible endpoint); unset = every bot stays on its own harness (the deterministic one offline).")
    model: str | None = Field(default=None, description="The model those bots use; required with model_provider.")
    model_base_url: str | None = Field(default=None, description="The provider's endpoint, e.g. a local Ollama at "
                                       "http://127.0.0.1:11434/v1; unset = the provider's own API.")
    model_api_key_env: str | None = Field(default=None, description="The NAME of the environment variable holding "
                                          "the model key (never the key itself); default OPENAI_API_KEY or "
                                          "ANTHROPIC_API_KEY. A local server on loopback needs none.")
    log_level: str = "info"
    log_json: bool = False

    @field_validator("home", "fleet_dir", "connectors_dir", "workflows_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def embedded(self) -> bool:
        return self.database_url is None and self.redis_url is None

    @property
    def admin_key_file(self) -> Path:
        return self.home / "admin.key"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    secrets_backend: Literal["builtin", "vault"] = Field(
        default="builtin", description="Where connector credentials live: Postgres (encrypted here) or Vault."
    )
    secrets_kek: SecretStr | None = Field(
        default=None,
        description="Key-encryption key for stored credentials: base64 of 32 random bytes; required outside dev "
        "mode. Generate one with: python -c \"import os,base64;print(base64.b64encode(os.urandom(32)).decode())\"",
    )
    vault_url: str | None = Field(default=None, description="HashiCorp Vault address, e.g. https://vault:8200.")
    vault_token: SecretStr | None = Field(default=None, description="Vault token with access to the KV v2 paths.")
    vault_mount: str = Field(default="secret", description="Mount point of the KV v2 secrets engine.")
    vault_prefix: str = Field(default="oshal", description="Path prefix under the mount for oshal's credentials.")


def _is_complex(annotation: Any) -> bool:
    """A list or dict setting: its variable holds JSON (as pydantic-settings decodes it)."""
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_is_complex(arg) for arg in get_args(annotation) if arg is not type(None))
    return get_origin(annotation) in (list, dict) or annotation in (list, dict)


def _secret_files(folder: str | None) -> dict[str, Path]:
    """The entries of ``$OSHAL_SECRETS_DIR`` by lowercased name; none when the variable is unset or not a folder."""
    if not folder or not os.path.isdir(folder):
        return {}
    return {path.name.lower(): path for path in Path(folder).expanduser().iterdir()}


def _read_secret(path: Path) -> str | None:
    """A secret file's value, stripped. One that resolves outside its folder (a planted link) or is not a file is
    not read, with a warning, as pydantic-settings does."""
    try:
        inside = path.parent.resolve() in path.resolve().parents
    except (OSError, RuntimeError) as e:
        warnings.warn(f'attempted to load secret file "{path}" but it could not be resolved: {e}', stacklevel=3)
        return None
    if not inside:
        warnings.warn(f'attempted to load secret file "{path}" but it resolves outside of "{path.parent}".',
                      stacklevel=3)
        return None
    if not path.is_file():
        warnings.warn(f'attempted to load secret file "{path}" but it is not a file.', stacklevel=3)
        return None
    return path.read_text(encoding="utf-8").strip()


def read_settings(**overrides: Any) -> SettingsFields:
    """The settings ``Settings(**overrides)`` would build, read without pydantic-settings (see the module's doc)."""
    env = {name.lower(): value for name, value in os.environ.items()}
    secret_files = _secret_files(os.environ.get(SECRETS_DIR_VARIABLE))  # named exactly, as ``Settings`` reads it
    values: dict[str, Any] = {}
    for name, field in SettingsFields.model_fields.items():
        if name in overrides:
            values[name] = overrides[name]
            continue
        variable = f"{ENV_PREFIX}{name}".lower()
        if variable in env:
            raw = env[variable]
        elif variable in secret_files and (secret := _read_secret(secret_files[variable])) is not None:
            raw = secret
        else:
            continue
        if _is_complex(field.annotation):
            try:
                values[name] = json.loads(raw)
            except ValueError as e:
                raise ConfigError(f"{variable.upper()} is not valid JSON: {e}",
                                  hint='it is a JSON list or object, e.g. ["a", "b"] or {"bot": 2}') from e
        else:
            values[name] = raw
    return SettingsFields.model_validate(values)
