"""Bot manifests: the demo fleet loads, and every kind of bad manifest is refused with a useful message."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from oshal.bots.harnesses import build_harness
from oshal.bots.manifest import BotManifest, load_fleet, load_manifest, select
from oshal.errors import ConfigError, NotFound

FLEET = Path(__file__).resolve().parents[2] / "fleet"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_the_demo_fleet_loads() -> None:
    fleet = load_fleet(FLEET)

    assert len(fleet) >= 6
    assert {"echo", "extractor", "planner", "reviewer", "summarizer", "triage"} <= set(fleet)
    echo = fleet["echo"]
    assert (echo.name, echo.harness, echo.intent, echo.model) == ("echo", "deterministic", "echo",
                                                                   "deterministic-echo")
    assert echo.persona == "You repeat exactly what you are given."
    assert echo.capabilities == ("echo",)
    assert (echo.concurrency, echo.replicas) == (256, 1)
    assert echo.provider_name == "deterministic"
    assert fleet["triage"].replicas == 2
    assert all(name == manifest.name for name, manifest in fleet.items())


def test_every_deterministic_bot_in_the_demo_fleet_builds_a_harness() -> None:
    fleet = load_fleet(FLEET)
    built = [name for name, m in fleet.items() if m.harness == "deterministic" and build_harness(m)]
    assert {"echo", "extractor", "planner", "reviewer", "summarizer", "triage"} <= set(built)


def test_defaults_and_provider_name() -> None:
    bare = BotManifest(name="bare")
    assert (bare.harness, bare.intent, bare.model, bare.api_key_env, bare.max_retries) == (
        "deterministic", "echo", "deterministic-1", None, 2)
    assert BotManifest(name="a", harness="openai").provider_name == "openai"
    assert BotManifest(name="b", harness="anthropic").provider_name == "anthropic"
    assert BotManifest(name="c", harness="openai", provider="vllm").provider_name == "vllm"


def test_manifests_are_frozen() -> None:
    manifest = BotManifest(name="frozen")
    with pytest.raises(pydantic.ValidationError):
        manifest.name = "thawed"  # type: ignore[misc]
    assert manifest.name == "frozen"


@pytest.mark.parametrize("bad_name",
                         ["a*", "bot?", "b[1]", "Echo", "1st", "-dash", "with space", "x" * 41, ""])
def test_a_bad_bot_name_is_refused(tmp_path: Path, bad_name: str) -> None:
    path = write(tmp_path, "bot.yaml", f"name: {bad_name!r}\nintent: echo\n")
    with pytest.raises(ConfigError) as caught:
        load_fleet(tmp_path)

    assert caught.value.message.startswith(f"bot manifest {path} is invalid: ")
    assert "name" in caught.value.message
    assert caught.value.hint == "see fleet/README.md for the fields"


def test_the_longest_allowed_name_is_accepted(tmp_path: Path) -> None:
    write(tmp_path, "bot.yaml", f"name: {'x' * 40}\n")
    assert list(load_fleet(tmp_path)) == ["x" * 40]


def test_an_unknown_field_is_refused_and_named(tmp_path: Path) -> None:
    path = write(tmp_path, "bot.yaml", "name: typo\nintnet: echo\n")
    with pytest.raises(ConfigError) as caught:
        load_fleet(tmp_path)

    assert caught.value.message.startswith(f"bot manifest {path} is invalid: ")
    assert "intnet" in caught.value.message
    assert "Extra inputs are not permitted" in caught.value.message


def test_an_out_of_range_value_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "bot.yaml", "name: hot\nharness: openai\ntemperature: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_fleet(tmp_path)
    assert "temperature" in caught.value.message


def test_an_unknown_harness_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "bot.yaml", "name: odd\nharness: gemini\n")
    with pytest.raises(ConfigError) as caught:
        load_fleet(tmp_path)
    assert "harness" in caught.value.message


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "name: twin\nintent: echo\n")
    second = write(tmp_path, "b.yml", "name: twin\nintent: plan\n")
    with pytest.raises(ConfigError) as caught:
        load_fleet(tmp_path)

    assert caught.value.message == f"bot 'twin' is defined twice (second time in {second})"


def test_an_empty_folder_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "README.md", "# not a manifest\n")
    with pytest.raises(ConfigError) as caught:
        load_fleet(tmp_path)
    assert caught.value.message == f"fleet folder {tmp_path} has no bot manifests (*.yaml)"


def test_a_missing_folder_is_refused_with_a_hint(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError) as caught:
        load_fleet(missing)
    assert caught.value.message == f"fleet folder {missing} does not exist"
    assert caught.value.hint == "set OSHAL_FLEET_DIR or --fleet"


def test_unparseable_yaml_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "bot.yaml", "name: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_fleet(tmp_path)
    assert caught.value.message.startswith(f"cannot read bot manifest {path}: ")


def test_an_empty_or_non_mapping_manifest_is_refused(tmp_path: Path) -> None:
    empty = write(tmp_path, "empty.yaml", "")
    with pytest.raises(ConfigError) as caught:
        load_manifest(empty)
    assert caught.value.message.startswith(f"bot manifest {empty} is invalid: ")

    listed = write(tmp_path, "list.yaml", "- name: echo\n")
    with pytest.raises(ConfigError) as caught_list:
        load_manifest(listed)
    assert caught_list.value.message.startswith(f"bot manifest {listed} is invalid: ")


def test_yml_and_yaml_both_load_and_other_files_are_ignored(tmp_path: Path) -> None:
    write(tmp_path, "one.yaml", "name: one\n")
    write(tmp_path, "two.yml", "name: two\nintent: summarize\n")
    write(tmp_path, "notes.txt", "name: three\n")
    fleet = load_fleet(tmp_path)

    assert sorted(fleet) == ["one", "two"]
    assert fleet["two"].intent == "summarize"


def test_select_picks_named_bots_or_refuses_unknown_ones() -> None:
    fleet = load_fleet(FLEET)
    assert list(select(fleet, ["triage", "echo"])) == ["triage", "echo"]
    assert select(fleet, None) is fleet
    with pytest.raises(NotFound) as caught:
        select(fleet, ["echo", "ghost"])
    assert caught.value.message == "unknown bot(s): ghost"
