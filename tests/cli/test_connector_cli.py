"""`oshal connector import|list|show|enable` against the running API, as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import Platform

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "openapi"


def oshal(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OSHAL_API_URL": platform.url, "OSHAL_API_KEY": platform.admin_key,
           "OSHAL_HOME": str(platform.home)}
    return subprocess.run([sys.executable, "-m", "oshal.cli.main", *args], env=env, capture_output=True, text=True,
                          timeout=120)


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
