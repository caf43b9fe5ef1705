"""The node host's settings reader (``read_settings``) builds what ``Settings`` builds, without pydantic-settings:
the same values from the same sources in the same order, and the same errors for wrong values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest

from oshal.errors import ConfigError
from oshal.settings import Settings
from oshal.settings_fields import SettingsFields, read_settings


@pytest.fixture(autouse=True)
def no_oshal_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("OSHAL_"):
            monkeypatch.delenv(name)


def both(**overrides: Any) -> tuple[SettingsFields, Settings]:
    return read_settings(**overrides), Settings(**overrides)


def assert_same(**overrides: Any) -> SettingsFields:
    lean, full = both(**overrides)
    assert lean.model_dump() == full.model_dump()
    return lean


def test_the_defaults_are_the_same_and_paths_are_made_absolute(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = assert_same()
    assert settings.home == tmp_path / ".oshal" and settings.fleet_dir == tmp_path / "fleet"
    assert settings.node_replicas == {} and settings.node_liveness_file is None


@pytest.mark.parametrize("variables", [
    {"OSHAL_MODE": "prod", "OSHAL_LOG_LEVEL": "debug", "OSHAL_LOG_JSON": "true", "OSHAL_API_PORT": "9000"},
    {"OSHAL_HEARTBEAT_TTL_S": "2.5", "OSHAL_CLAIM_IDLE_MS": "100", "OSHAL_MAX_DELIVERIES": "7",
     "OSHAL_DRAIN_TIMEOUT_S": "3"},
    {"OSHAL_NODE_REPLICAS": '{"echo": 3, "triage": 0}', "OSHAL_CORS_ORIGINS": '["https://a.test"]',
     "OSHAL_LOG_PATHS": '["/var/log/x"]'},
    {"OSHAL_FLEET_DIR": "some/fleet", "OSHAL_NODE_CREDENTIALS": "/run/secrets/node.json",
     "OSHAL_NODE_LIVENESS_FILE": "/tmp/alive", "OSHAL_REDIS_URL": "rediss://h:6380/0"},
    {"oshal_log_level": "warning", "Oshal_Model_Provider": "openai", "OSHAL_MODEL": "m"},  # names in any case
    {"OSHAL_DISPATCH_KEY": "k" * 32, "OSHAL_CONSOLE_SECURE_COOKIE": "false", "OSHAL_UNKNOWN_THING": "ignored"},
])
def test_values_from_the_environment_are_the_same(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    settings = assert_same()
    assert settings.model_dump() != SettingsFields().model_dump()  # the variables did change something


def test_arguments_beat_the_environment_which_beats_secret_files(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "oshal_redis_url").write_text("redis://from-file:6379\n")
    (secrets / "OSHAL_DISPATCH_KEY").write_text("  file-key  \n")  # found whatever its case; stripped
    (secrets / "oshal_node_replicas").write_text('{"echo": 2}')
    (secrets / "oshal_api_url").write_text("http://file.test")
    (tmp_path / "outside").write_text("http://planted.test")
    (secrets / "oshal_api_key").symlink_to(tmp_path / "outside")  # resolves outside the folder: not read
    monkeypatch.setenv("OSHAL_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("OSHAL_API_URL", "http://env.test")
    monkeypatch.setenv("OSHAL_FLEET_DIR", str(tmp_path / "env-fleet"))
    with pytest.warns(UserWarning, match="resolves outside") as warned:  # both say why they skip the link
        settings = assert_same(fleet_dir=tmp_path / "argument-fleet")
    assert len([w for w in warned if "resolves outside" in str(w.message)]) == 2
    assert settings.redis_url == "redis://from-file:6379"
    assert settings.dispatch_key is not None and settings.dispatch_key.get_secret_value() == "file-key"
    assert settings.node_replicas == {"echo": 2}
    assert settings.api_url == "http://env.test"
    assert settings.api_key is None
    assert settings.fleet_dir == tmp_path / "argument-fleet"


def test_a_secrets_folder_that_is_not_there_adds_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSHAL_SECRETS_DIR", str(tmp_path / "missing"))
    assert assert_same().redis_url is None


@pytest.mark.parametrize(("name", "value"), [("OSHAL_HEARTBEAT_TTL_S", "-1"), ("OSHAL_MODE", "staging"),
                                             ("OSHAL_API_PORT", "0"), ("OSHAL_NODE_REPLICAS", '{"echo": "two"}'),
                                             ("OSHAL_LOG_JSON", "maybe")])
def test_a_wrong_value_is_refused_with_the_same_error(monkeypatch: pytest.MonkeyPatch, name: str,
                                                      value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(pydantic.ValidationError) as lean:
        read_settings()
    with pytest.raises(pydantic.ValidationError) as full:
        Settings()
    assert lean.value.errors() == full.value.errors()
    assert str(lean.value) == str(full.value)
    assert "validation error for Settings" in str(lean.value)
    assert name.removeprefix("OSHAL_").lower() in str(lean.value)


def test_json_that_does_not_parse_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSHAL_NODE_REPLICAS", "echo=2")
    with pytest.raises(ConfigError) as caught:
        read_settings()
    assert caught.value.message.startswith("OSHAL_NODE_REPLICAS is not valid JSON")
    assert caught.value.hint is not None and '{"bot": 2}' in caught.value.hint
    with pytest.raises(Exception, match="node_replicas"):  # pydantic-settings refuses it too
        Settings()
