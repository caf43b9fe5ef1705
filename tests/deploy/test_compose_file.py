"""`oshal deploy compose` against the Compose specification's JSON schema, and what the file promises.

The schema is vendored from compose-spec/compose-spec (schema/compose-spec.json, Apache-2.0; see schemas/SOURCES.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from conftest import REPO
from oshal.bots.manifest import load_fleet

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "compose-spec.json").read_text())
OSHAL = [sys.executable, "-m", "oshal.cli.main"]
FLEET = load_fleet(REPO / "fleet")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}


def _generate(folder: Path, *flags: str) -> dict[str, Any]:
    for args in (["deploy", "secrets", "--out", str(folder / "secrets"), "--fleet", str(REPO / "fleet")],
                 ["deploy", "compose", "--out", str(folder / "compose.yaml"), "--secrets", str(folder / "secrets"),
                  "--fleet", str(REPO / "fleet"), *flags]):
        done = subprocess.run([*OSHAL, *args], env=_env(), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    document: dict[str, Any] = yaml.safe_load((folder / "compose.yaml").read_text())
    return document


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("compose")
    return folder, _generate(folder, "--with-vault", "--with-object-store", "--tunnel")


def test_the_file_is_valid_under_the_compose_specification(everything: tuple[Path, dict[str, Any]]) -> None:
    _, document = everything
    jsonschema.Draft7Validator(SCHEMA).validate(document)


def test_the_validator_rejects_what_the_specification_forbids(everything: tuple[Path, dict[str, Any]]) -> None:
    _, document = everything
    broken = json.loads(json.dumps(document))
    broken["services"]["control-plane"]["depends_on"]["migrate"]["condition"] = "service_finished"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(SCHEMA).validate(broken)


def test_one_service_per_bot_with_the_manifests_replicas_each_on_its_own_lane(
        everything: tuple[Path, dict[str, Any]]) -> None:
    _, document = everything
    services = document["services"]
    bots = {name.removeprefix("bot-"): s for name, s in services.items() if name.startswith("bot-")}
    assert sorted(bots) == sorted(FLEET)
    for name, service in bots.items():
        assert service["command"] == ["node", "--bot", name, "--replicas", "1"]
        assert service["deploy"]["replicas"] == FLEET[name].replicas
        assert service["secrets"] == [{"source": f"node-{name}", "target": "node-credentials.json"}]
        assert service["healthcheck"]["test"] == ["CMD", "oshal", "node", "--check"]
        assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
        assert "data" not in service["networks"]  # no route to Postgres
        assert ("egress" in service["networks"]) == (FLEET[name].harness != "deterministic")


def test_the_engines_the_migration_and_the_optional_services(everything: tuple[Path, dict[str, Any]]) -> None:
    folder, document = everything
    services = document["services"]
    assert "--appendonly yes --aclfile /data/users.acl" in services["redis"]["command"][-1]
    assert services["postgres"]["networks"] == ["data"] and document["networks"]["data"] == {"internal": True}
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"] and migrate["restart"] == "no"
    assert services["control-plane"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert "oshal_database_url" in migrate["secrets"] and "oshal_database_url" not in services["control-plane"][
        "secrets"]  # the owner's login goes to the migration only
    assert services["control-plane"]["environment"]["OSHAL_SECRETS_BACKEND"] == "vault"
    assert services["cloudflared"]["profiles"] == ["tunnel"]
    assert services["control-plane"]["environment"]["OSHAL_OBJECT_STORE"] == "s3"
    assert services["control-plane"]["depends_on"]["minio-init"] == {"condition": "service_completed_successfully"}
    # Every secret is a file; all but the two an operator brings (Vault's token, the tunnel's) were generated.
    missing = sorted(name for name, spec in document["secrets"].items()
                     if not (folder / spec["file"]).resolve().is_file())
    assert missing == ["cloudflared_token", "oshal_vault_token"]


def test_without_options_there_is_no_vault_object_store_or_tunnel(tmp_path: Path) -> None:
    document = _generate(tmp_path)
    jsonschema.Draft7Validator(SCHEMA).validate(document)
    assert not {"vault", "minio", "minio-init", "cloudflared"} & set(document["services"])
    assert "oshal_secrets_kek" in document["services"]["control-plane"]["secrets"]
    assert all((tmp_path / spec["file"]).resolve().is_file() for spec in document["secrets"].values())


def test_generating_twice_keeps_every_secret_and_gives_the_same_file(tmp_path: Path) -> None:
    first = _generate(tmp_path)
    before = {p.name: p.read_text() for p in (tmp_path / "secrets").iterdir()}
    assert _generate(tmp_path) == first
    assert {p.name: p.read_text() for p in (tmp_path / "secrets").iterdir()} == before
    assert oct((tmp_path / "secrets").stat().st_mode & 0o777) == "0o700"


def test_docker_compose_accepts_the_file(everything: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine")
    version = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
    if version.returncode != 0:
        pytest.skip(f"no `docker compose` here: {(version.stderr or version.stdout).strip()[:200]}")
    original, _ = everything
    folder = tmp_path / "copy"
    shutil.copytree(original, folder)
    for brought in ("cloudflared_token", "oshal_vault_token"):  # what an operator would add
        (folder / "secrets" / brought).write_text("operator-provided\n")
    done = subprocess.run([docker, "compose", "-f", str(folder / "compose.yaml"), "--profile", "tunnel", "config",
                           "--quiet"], capture_output=True, text=True, cwd=folder)
    assert done.returncode == 0, done.stderr
