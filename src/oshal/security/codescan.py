"""Static analysis of Python source with bandit: the platform package and the connector code an operator points at.

Bandit runs as a subprocess so a crash in it cannot take the caller down, and so its findings come back as
JSON we can check. A scan that cannot run raises ``Unavailable``: an empty list always means "looked, found
nothing", never "could not look".
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import oshal
from oshal.errors import Invalid, Unavailable
from oshal.security.findings import Finding, Severity

__all__ = ["platform_roots", "scan_code"]

DEFAULT_TIMEOUT_S = 300.0
# Bandit's own default exclusions; passing -x replaces them, so they are repeated here.
BANDIT_DEFAULT_EXCLUDES = (".svn", "CVS", ".bzr", ".hg", ".git", "__pycache__", ".tox", ".eggs", "*.egg")
CODE_EVIDENCE_CHARS = 200

_SEVERITIES = {"LOW": Severity.LOW, "MEDIUM": Severity.MEDIUM, "HIGH": Severity.HIGH}

_HINTS = {
    "B102": "Avoid exec(); dispatch to known functions instead",
    "B105": "Load the secret from settings or the vault, never from a literal",
    "B106": "Load the secret from settings or the vault, never from a literal",
    "B108": "Use tempfile.mkstemp()/TemporaryDirectory() instead of a fixed /tmp path",
    "B301": "Never unpickle data you did not produce; use JSON",
    "B307": "Use ast.literal_eval() or an explicit parser instead of eval()",
    "B310": "Fetch URLs with httpx and an allow-list of schemes",
    "B324": "Use hashlib.sha256 (or pass usedforsecurity=False for non-security hashes)",
    "B501": "Keep TLS certificate verification on",
    "B506": "Use yaml.safe_load()",
    "B602": "Pass an argument list with shell=False",
    "B605": "Use subprocess.run() with an argument list instead of a shell string",
    "B608": "Use bound query parameters instead of building SQL from strings",
}
_GENERIC_HINT = "Fix the flagged code, or mark a reviewed false positive with '# nosec {test_id}' and the reason"


def platform_roots() -> list[Path]:
    """The installed ``oshal`` package, so the platform can scan itself."""
    return [Path(oshal.__file__).resolve().parent]


def scan_code(roots: Sequence[Path], *, exclude: Sequence[str] = (), min_severity: str = "medium",
              timeout: float = DEFAULT_TIMEOUT_S) -> list[Finding]:
    """Run bandit over ``roots`` and return one finding per reported issue at or above ``min_severity``."""
    threshold = _parse_severity(min_severity)
    resolved = _existing_roots(roots)
    report = _run_bandit(resolved, exclude, timeout)
    findings = _issue_findings(report.get("results", []), resolved) + _unscanned_findings(
        report.get("errors", []), resolved)
    return [f for f in findings if f.severity.rank >= threshold.rank]


def _parse_severity(value: str) -> Severity:
    try:
        return Severity(value.lower())
    except ValueError as e:
        allowed = ", ".join(s.value for s in Severity)
        raise Invalid(f"unknown minimum severity {value!r}", hint=f"use one of {allowed}") from e


def _existing_roots(roots: Sequence[Path]) -> list[Path]:
    if not roots:
        raise Invalid("no source roots to scan", hint="pass at least one directory or file")
    resolved = [Path(root).resolve() for root in roots]
    missing = [str(root) for root in resolved if not root.exists()]
    if missing:
        # Bandit itself reports a missing target as a soft error and exits 0, which would read as clean.
        raise Unavailable(f"code scan cannot run: source root not found: {', '.join(missing)}",
                          hint="check the connector's code path, or remove it from the scan")
    return resolved


def _run_bandit(roots: list[Path], exclude: Sequence[str], timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="oshal-bandit-") as workdir:
        # An empty [bandit] ini overrides any .bandit file planted in a scanned tree (which could skip tests).
        ini = Path(workdir) / "empty.bandit"
        ini.write_text("[bandit]\n", encoding="utf-8")
        command = _bandit_command(roots, exclude, ini)
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=workdir,
                                  check=False)
        except subprocess.TimeoutExpired as e:
            raise Unavailable(f"code scan timed out after {timeout:g} s", hint="scan fewer or smaller roots, "
                              "or exclude generated and vendored code") from e
        except OSError as e:
            raise Unavailable(f"code scan cannot start {sys.executable}: {e}",
                              hint="check the Python installation running oshal") from e
    return _parse_report(done)


def _bandit_command(roots: list[Path], exclude: Sequence[str], ini: Path) -> list[str]:
    excluded = ",".join((*BANDIT_DEFAULT_EXCLUDES, *exclude))
    # -P keeps the working directory off sys.path so a stray bandit.py cannot stand in for bandit.
    return [sys.executable, "-P", "-m", "bandit", "-r", "-f", "json", "-q", "-n", "1", "--ini", str(ini),
            "-x", excluded, *(str(root) for root in roots)]


def _parse_report(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    if "No module named bandit" in done.stderr:
        raise Unavailable("code scan cannot run: bandit is not installed",
                          hint="reinstall oshal (bandit is one of its dependencies) or `pip install bandit`")
    # Bandit exits 1 when it found issues; anything else non-zero is a failure of bandit itself.
    if done.returncode not in (0, 1):
        raise Unavailable(f"code scan failed: bandit exited {done.returncode}: {_tail(done.stderr)}",
                          hint="run `python -m bandit -r <root>` by hand to see the error")
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError as e:
        raise Unavailable(f"code scan failed: bandit output is not JSON ({e.msg}): {_tail(done.stderr)}",
                          hint="run `python -m bandit -r -f json <root>` by hand to see the error") from e
    if not isinstance(report, dict) or not isinstance(report.get("results"), list):
        raise Unavailable("code scan failed: bandit JSON has no results list",
                          hint="check the installed bandit version (oshal needs bandit >= 1.7)")
    return report


def _tail(text: str, limit: int = 500) -> str:
    text = text.strip()
    return text[-limit:] if text else "(no error output)"


def _issue_findings(results: list[dict[str, Any]], roots: list[Path]) -> list[Finding]:
    seen: Counter[str] = Counter()
    in_file_order = sorted(results, key=lambda r: (str(r.get("filename")), int(r.get("line_number", 0))))
    return [_issue_finding(result, roots, seen) for result in in_file_order]


def _issue_finding(result: dict[str, Any], roots: list[Path], seen: Counter[str]) -> Finding:
    test_id = str(result.get("test_id", "B000"))
    path = _display_path(Path(str(result.get("filename", ""))), roots)
    code = _flagged_code(str(result.get("code", "")))
    subject = f"{path}:{test_id}:{_code_hash(code)}"
    seen[subject] += 1
    if seen[subject] > 1:
        # The same flagged line twice in one file: number repeats in file order so neither hides the other.
        subject = f"{subject}#{seen[subject]}"
    more_info = str(result.get("more_info", ""))
    return Finding(
        scan="code", check=f"bandit.{test_id}", severity=_map_severity(result),
        title=f"{result.get('issue_text')} ({path}:{result.get('line_number')})",
        subject=subject, remediation=_remediation(test_id, more_info),
        evidence={"file": path, "line": result.get("line_number"), "test_id": test_id,
                  "test_name": result.get("test_name"), "confidence": result.get("issue_confidence"),
                  "code": code[:CODE_EVIDENCE_CHARS]})


def _map_severity(result: dict[str, Any]) -> Severity:
    severity = _SEVERITIES.get(str(result.get("issue_severity")).upper(), Severity.LOW)
    if severity is Severity.HIGH and str(result.get("issue_confidence")).upper() != "HIGH":
        return Severity.MEDIUM
    return severity


def _remediation(test_id: str, more_info: str) -> str:
    hint = _HINTS.get(test_id, _GENERIC_HINT.format(test_id=test_id))
    return f"{hint}. See {more_info}" if more_info else f"{hint}."


def _flagged_code(numbered: str) -> str:
    """Bandit prefixes each line with its number (``"12     x = 1"``); keep the stripped source only."""
    lines = []
    for line in numbered.splitlines():
        number, _, source = line.partition(" ")
        lines.append(source.strip() if number.isdigit() else line.strip())
    return "\n".join(line for line in lines if line)


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()[:12]


def _display_path(path: Path, roots: list[Path]) -> str:
    """The path from the root's parent, so ``oshal/bots/x.py`` stays the same wherever oshal is installed."""
    resolved = path.resolve()
    for root in sorted(roots, key=lambda r: len(r.parts), reverse=True):
        if resolved == root or resolved.is_relative_to(root):
            return resolved.relative_to(root.parent).as_posix()
    return resolved.as_posix()


def _unscanned_findings(errors: list[dict[str, Any]], roots: list[Path]) -> list[Finding]:
    """A file bandit could not parse was not checked; report it instead of letting it pass as clean."""
    findings = []
    for error in errors:
        path = _display_path(Path(str(error.get("filename", ""))), roots)
        reason = str(error.get("reason", "unknown error"))
        findings.append(Finding(
            scan="code", check="bandit.unscanned", severity=Severity.MEDIUM,
            title=f"{path} could not be analysed: {reason}", subject=path,
            remediation="Fix the file so it parses as Python, or exclude it from the scan if it is not code.",
            evidence={"file": path, "reason": reason}))
    return findings
