"""`oshal connector import|list|show|enable` against the running API, as a real process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import Platform
from conftest import run_cli as oshal

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "openapi"


def test_import_a_real_spec_then_review_and_enable(platform: Platform) -> None:
    spec = SPECS / "finance" / "alpaca-market-data.yaml"
    done = oshal(platform, "connector", "import", str(spec), "--id", "alpaca-data", "--category", "finance",
                 "--json")
    assert done.returncode == 0, done.stderr
    draft = json.loads(done.stdout)
    assert draft["id"] == "alpaca-data" and draft["operations"] == 36 and draft["state"] == "draft"
    assert draft["enabled_operations"] == 0

    again = oshal(platform, "connector", "import", str(spec), "--id", "alpaca-data")
    assert again.returncode == 6 and "already in the catalog" in again.stderr

    shown = json.loads(oshal(platform, "connector", "show", "alpaca-data", "--json").stdout)
    reads = [op["name"] for op in shown["manifest"]["operations"] if op["risk"] == "read"][:2]
    enabled = oshal(platform, "connector", "enable", "alpaca-data", *reads, "--json")
    assert enabled.returncode == 0 and json.loads(enabled.stdout)["enabled_operations"] == 2
    listed = json.loads(oshal(platform, "connector", "list", "--json").stdout)
    assert [(c["id"], c["state"], c["enabled_operations"]) for c in listed] == [("alpaca-data", "draft", 2)]

    missing = oshal(platform, "connector", "import", "/nonexistent/spec.yaml")
    assert missing.returncode == 3 and "spec.yaml" in missing.stderr


def test_secrets_rotate_reports_counts_and_never_key_material(platform: Platform) -> None:
    done = oshal(platform, "secrets", "rotate", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["backend"] == "builtin" and len(report["kek_id"]) == 16
    assert report["data_keys_rewrapped"] == 0  # nothing was wrapped by another KEK
    kek = (platform.home / "secrets" / "kek").read_text().strip()
    assert kek not in done.stdout and kek not in done.stderr


SPEC_FILES = sorted(p for p in SPECS.glob("*/*") if p.suffix in (".json", ".yml", ".yaml"))


def test_the_shared_specs_are_there() -> None:
    assert len(SPEC_FILES) >= 9, SPECS  # the parametrized test below must not pass by having nothing to import


@pytest.mark.parametrize("spec", SPEC_FILES, ids=lambda p: p.name)
def test_every_shared_spec_imports_through_the_cli(platform: Platform, spec: Path) -> None:
    done = oshal(platform, "connector", "import", str(spec), "--json")  # YAML dates, int keys and all
    assert done.returncode == 0, done.stderr
    draft = json.loads(done.stdout)
    assert draft["state"] == "draft" and draft["operations"] > 0 and draft["enabled_operations"] == 0
    shown = oshal(platform, "connector", "show", draft["id"], "--manifest")
    assert shown.returncode == 0, shown.stderr
    manifest = json.loads(shown.stdout)
    assert manifest["id"] == draft["id"] and len(manifest["operations"]) == draft["operations"]


def test_the_signing_flow_as_the_readme_gives_it(platform: Platform, tmp_path: Path) -> None:
    spec = SPECS / "finance" / "alpaca-market-data.yaml"
    assert oshal(platform, "connector", "import", str(spec), "--id", "alpaca", "--publisher", "acme").returncode == 0
    assert oshal(platform, "connector", "enable", "alpaca", "getBarsForStockSymbol").returncode == 0
    keys = json.loads(oshal(platform, "connector", "keygen", "--publisher", "acme", "--out", str(tmp_path / "keys"),
                            "--json").stdout)
    assert oshal(platform, "connector", "trust", "acme", keys["public_key"]).returncode == 0
    shown = oshal(platform, "connector", "show", "alpaca", "--manifest")
    (tmp_path / "alpaca.json").write_text(shown.stdout)
    signed = oshal(platform, "connector", "sign", str(tmp_path / "alpaca.json"), "--key", keys["private_key"])
    assert signed.returncode == 0, signed.stderr
    published = oshal(platform, "connector", "publish", "alpaca", str(tmp_path / "alpaca.json.sig.json"), "--json")
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["state"] == "enabled"

    # imported without --publisher, the manifest names "imported": a signature is refused, and the hint says why
    assert oshal(platform, "connector", "import", str(spec), "--id", "alpaca2").returncode == 0
    (tmp_path / "alpaca2.json").write_text(oshal(platform, "connector", "show", "alpaca2", "--manifest").stdout)
    assert oshal(platform, "connector", "sign", str(tmp_path / "alpaca2.json"), "--key", keys["private_key"]
                 ).returncode == 0
    refused = oshal(platform, "connector", "publish", "alpaca2", str(tmp_path / "alpaca2.json.sig.json"))
    assert refused.returncode == 5 and "untrusted_publisher" in refused.stderr
    assert "--publisher NAME --replace" in refused.stderr
