"""Bandit over planted source files: what it flags, how findings are keyed, and that a scan that cannot run says so."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from oshal.errors import Invalid, Unavailable
from oshal.security.codescan import platform_roots, scan_code
from oshal.security.findings import Finding, Severity

RISKY = """\
import subprocess

import yaml


def run(cmd):
    subprocess.call(cmd, shell=True)


def load(stream):
    return yaml.load(stream)


def ask():
    return eval(input())
"""


def plant(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


@pytest.fixture
def connector(tmp_path: Path) -> Path:
    root = tmp_path / "connector"
    plant(root, "risky.py", RISKY)
    return root


def test_planted_issues_are_reported_with_bandit_check_ids(connector: Path) -> None:
    findings = by_check(scan_code([connector]))

    assert set(findings) == {"bandit.B602", "bandit.B506", "bandit.B307"}
    shell = findings["bandit.B602"]
    assert shell.scan == "code"
    assert shell.severity is Severity.HIGH
    assert shell.evidence["file"] == "connector/risky.py"
    assert shell.evidence["line"] == 7
    assert shell.evidence["code"] == "subprocess.call(cmd, shell=True)"
    assert shell.evidence["confidence"] == "HIGH"
    assert shell.subject.startswith("connector/risky.py:B602:")
    assert "shell=False" in shell.remediation
    assert "https://bandit.readthedocs.io/" in shell.remediation
    assert findings["bandit.B506"].severity is Severity.MEDIUM
    assert "safe_load" in findings["bandit.B506"].remediation


def test_min_severity_low_adds_low_findings(connector: Path) -> None:
    findings = by_check(scan_code([connector], min_severity="low"))

    assert findings["bandit.B404"].severity is Severity.LOW  # import subprocess
    assert "bandit.B602" in findings


def test_min_severity_high_keeps_only_high(connector: Path) -> None:
    assert {f.check for f in scan_code([connector], min_severity="HIGH")} == {"bandit.B602"}


def test_unknown_min_severity_is_refused(connector: Path) -> None:
    with pytest.raises(Invalid, match="minimum severity"):
        scan_code([connector], min_severity="severe")


def test_high_severity_with_medium_confidence_is_reported_as_medium(tmp_path: Path) -> None:
    plant(tmp_path, "app.py", "from flask import Flask\napp = Flask(__name__)\napp.run(debug=True)\n")

    finding = by_check(scan_code([tmp_path]))["bandit.B201"]

    assert finding.evidence["confidence"] == "MEDIUM"
    assert finding.severity is Severity.MEDIUM


def test_fingerprint_survives_lines_inserted_above(connector: Path) -> None:
    before = by_check(scan_code([connector]))
    plant(connector, "risky.py", '"""A docstring pushed in on top."""\n\nimport os\n\nprint(os.sep)\n' + RISKY)

    after = by_check(scan_code([connector]))

    assert set(after) == set(before)
    for check, finding in before.items():
        assert after[check].fingerprint == finding.fingerprint
        assert after[check].evidence["line"] == finding.evidence["line"] + 5


def test_changing_the_flagged_line_changes_the_fingerprint(connector: Path) -> None:
    before = by_check(scan_code([connector]))["bandit.B602"]
    plant(connector, "risky.py", RISKY.replace("subprocess.call(cmd,", "subprocess.call(command,").replace(
        "def run(cmd)", "def run(command)"))

    after = by_check(scan_code([connector]))["bandit.B602"]

    assert after.fingerprint != before.fingerprint


def test_identical_flagged_lines_in_one_file_stay_distinct(tmp_path: Path) -> None:
    plant(tmp_path, "twice.py", "def a(x):\n    return eval(x)\n\n\ndef b(x):\n    return eval(x)\n")

    findings = scan_code([tmp_path])

    assert len(findings) == 2
    assert len({f.fingerprint for f in findings}) == 2


def test_nosec_suppresses_a_finding(tmp_path: Path) -> None:
    plant(tmp_path, "reviewed.py", "import subprocess\n\n\ndef run(cmd):\n"
                                   "    subprocess.call(cmd, shell=True)  # nosec B602 - cmd is a constant\n")

    assert scan_code([tmp_path]) == []


def test_clean_file_gives_no_findings(tmp_path: Path) -> None:
    plant(tmp_path, "clean.py", "def add(a: int, b: int) -> int:\n    return a + b\n")

    assert scan_code([tmp_path], min_severity="low") == []


def test_planted_bandit_config_cannot_switch_checks_off(connector: Path) -> None:
    plant(connector, ".bandit", "[bandit]\nskips = B602,B506,B307\n")

    assert {f.check for f in scan_code([connector])} == {"bandit.B602", "bandit.B506", "bandit.B307"}


def test_excluded_paths_are_not_scanned(connector: Path) -> None:
    plant(connector, "vendored/third_party.py", "def f(x):\n    return eval(x)\n")

    with_vendored = scan_code([connector])
    without = scan_code([connector], exclude=["*/vendored/*"])

    assert any(f.evidence["file"] == "connector/vendored/third_party.py" for f in with_vendored)
    assert all("vendored" not in f.evidence["file"] for f in without)


def test_file_that_does_not_parse_is_reported_not_skipped(tmp_path: Path) -> None:
    plant(tmp_path / "pkg", "broken.py", "def broken(:\n")

    findings = scan_code([tmp_path / "pkg"])

    assert [(f.check, f.subject, f.severity) for f in findings] == [
        ("bandit.unscanned", "pkg/broken.py", Severity.MEDIUM)]


def test_missing_root_raises_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="not found"):
        scan_code([tmp_path / "nowhere"])


@pytest.fixture
def fake_bandit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package named bandit placed ahead of the real one on the scanner's PYTHONPATH."""
    shadow = tmp_path / "shadow"
    plant(shadow, "bandit/__init__.py", "")
    monkeypatch.setenv("PYTHONPATH", str(shadow))
    return shadow / "bandit" / "__main__.py"


def test_missing_bandit_raises_unavailable_with_install_hint(fake_bandit: Path, connector: Path) -> None:
    # The shadow package has no __main__, so `python -m bandit` cannot find bandit's entry point.
    with pytest.raises(Unavailable, match="not installed") as raised:
        scan_code([connector])
    assert raised.value.hint is not None and "pip install bandit" in raised.value.hint


def test_bandit_crash_raises_unavailable(fake_bandit: Path, connector: Path) -> None:
    fake_bandit.write_text("import sys\nsys.stderr.write('boom')\nsys.exit(2)\n")

    with pytest.raises(Unavailable, match="exited 2: boom"):
        scan_code([connector])


def test_bandit_traceback_with_exit_1_raises_unavailable(fake_bandit: Path, connector: Path) -> None:
    fake_bandit.write_text("raise RuntimeError('plugin failed')\n")

    with pytest.raises(Unavailable, match="not JSON"):
        scan_code([connector])


def test_unparsable_bandit_output_raises_unavailable(fake_bandit: Path, connector: Path) -> None:
    fake_bandit.write_text("print('this is not json')\n")

    with pytest.raises(Unavailable, match="not JSON"):
        scan_code([connector])


def test_bandit_that_hangs_raises_unavailable(fake_bandit: Path, connector: Path) -> None:
    fake_bandit.write_text("import time\ntime.sleep(30)\n")

    started = time.monotonic()
    with pytest.raises(Unavailable, match="timed out"):
        scan_code([connector], timeout=1)
    assert time.monotonic() - started < 10


def test_platform_package_scans_end_to_end() -> None:
    [root] = platform_roots()
    assert (root / "security" / "codescan.py").exists()

    findings = scan_code([root])

    assert isinstance(findings, list)
    assert all(f.scan == "code" and f.subject.startswith("oshal/") for f in findings)
