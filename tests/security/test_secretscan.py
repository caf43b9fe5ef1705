"""Secret scanning finds planted canaries, never repeats them, and stays quiet on a clean log.

Canaries are assembled from pieces so that this file itself does not trip secret scanners.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from oshal.security.findings import Finding, Severity
from oshal.security.secretscan import Blob, scan_blobs
from oshal.security.secretsources import file_blobs, text_blob

AWS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG" + "/bPxRfiCYEXAMPLEKEY"
GITHUB_TOKEN = "gh" + "p_" + "R7kQ2mX9vLp4Tz8Wn3Yb6Hc1Jd5Fg0As2Ke7"
OSHAL_KEY = "osk_0123456789ab_" + "Qm7Xv2Lp9Tz4Wn8Yb3Hc6Jd1Fg5As0Ke"
PASSWORD = "hunter2" + "hunter2Hx9"
SLACK_TOKEN = "xo" + "xb-" + "482910374615-5920184736251-" + "Tq8ZmN3vXc7LpR2wKs9YhB4d"
PEM_BODY = ["MIIEowIBAAKCAQEAu3Xk9QzT1c7mVfL2pR8sN4wY6hJ0aG5eK1dB3nC7xZ2vM9qL",
            "8tW4yR6uI0oP2aS5dF7gH9jK1lZ3xC5vB7nM9qW2eR4tY6uI8oP0aS2dF4gH6jK8"]
PRIVATE_KEY_PEM = "\n".join(["-----BEGIN RSA " + "PRIVATE KEY-----", *PEM_BODY, "-----END RSA " + "PRIVATE KEY-----"])

CANARIES = [AWS_KEY_ID, AWS_SECRET, GITHUB_TOKEN, OSHAL_KEY, PASSWORD, SLACK_TOKEN, *PEM_BODY]


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in strings_in(key) + strings_in(item)]
    if isinstance(value, list | tuple):
        return [text for item in value for text in strings_in(item)]
    return [str(value)]


def by_check(findings: list[Finding]) -> dict[str, list[Finding]]:
    grouped: dict[str, list[Finding]] = {}
    for finding in findings:
        grouped.setdefault(finding.check, []).append(finding)
    return grouped


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    (tmp_path / "fleet").mkdir()
    (tmp_path / "fleet" / "echo.yaml").write_text(
        "bot: echo\n"
        "aws:\n"
        f"  aws_access_key_id: {AWS_KEY_ID}\n"
        f'  aws_secret_access_key: "{AWS_SECRET}"\n'
        "database:\n"
        f'  password = "{PASSWORD}"\n'
        f"slack_webhook_token: {SLACK_TOKEN}\n"
    )
    (tmp_path / "fleet" / "deploy.pem").write_text(PRIVATE_KEY_PEM + "\n")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "control.log").write_text(
        '{"event": "bot.started", "bot": "echo", "level": "info"}\n'
        f'{{"event": "github.call", "token": "{GITHUB_TOKEN}", "level": "debug"}}\n'
        f'2024-05-01T12:00:00.000001Z [info     ] auth.header  authorization="Bearer {OSHAL_KEY}"\n'
    )
    return tmp_path


def scan_planted(root: Path) -> list[Finding]:
    return scan_blobs([*file_blobs([root / "fleet"], "config", root=root),
                       *file_blobs([root / "logs"], "logs", root=root)])


@pytest.mark.parametrize(("check", "severity", "location"), [
    ("secret.aws_access_key", Severity.CRITICAL, "fleet/echo.yaml:3"),
    ("secret.aws_access_key", Severity.CRITICAL, "fleet/echo.yaml:4"),
    ("secret.secret_keyword", Severity.MEDIUM, "fleet/echo.yaml:6"),
    ("secret.slack_token", Severity.HIGH, "fleet/echo.yaml:7"),
    ("secret.private_key", Severity.CRITICAL, "fleet/deploy.pem:1"),
    ("secret.github_token", Severity.HIGH, "logs/control.log:2"),
    ("secret.oshal_api_key", Severity.CRITICAL, "logs/control.log:3"),
])
def test_each_planted_secret_is_found_with_its_check_and_severity(
        planted: Path, check: str, severity: Severity, location: str) -> None:
    findings = scan_planted(planted)
    matching = [f for f in findings if f.evidence["location"] == location]
    assert [(f.check, f.severity) for f in matching] == [(check, severity)]


def test_exactly_the_planted_secrets_are_found(planted: Path) -> None:
    assert len(scan_planted(planted)) == 7


def test_findings_never_contain_a_secret(planted: Path) -> None:
    findings = scan_planted(planted)
    texts = [text for finding in findings for text in strings_in(finding.as_dict())]
    for canary in CANARIES:
        for text in texts:
            assert canary not in text
            assert canary[-12:] not in text  # not even a recognisable piece


def test_evidence_names_the_secret_by_prefix_and_length_and_the_subject_by_hash(planted: Path) -> None:
    findings = scan_planted(planted)
    aws = next(f for f in findings if f.evidence["location"] == "fleet/echo.yaml:3")
    assert aws.evidence == {"source": "config", "location": "fleet/echo.yaml:3", "type": "AWS Access Key",
                            "line": 3, "redacted": "AKIA…(20 chars)"}
    assert aws.subject == f"config:fleet/echo.yaml:{sha256(AWS_KEY_ID)[:16]}"
    assert aws.title == "AWS Access Key in config"


def test_remediation_says_rotate_and_where_to_purge(planted: Path) -> None:
    findings = {f.check: f for f in scan_planted(planted)}
    assert "Rotate the GitHub Token at its issuer" in findings["secret.github_token"].remediation
    assert "purge it from logs/control.log" in findings["secret.github_token"].remediation
    oshal = findings["secret.oshal_api_key"].remediation
    assert "0123456789ab" in oshal and "oshal key revoke" in oshal  # the public prefix identifies the key


def test_fingerprints_are_stable_across_scans(planted: Path) -> None:
    first = {f.fingerprint for f in scan_planted(planted)}
    second = {f.fingerprint for f in scan_planted(planted)}
    assert first == second


def test_a_rotated_secret_is_a_new_finding() -> None:
    rotated = GITHUB_TOKEN[:-4] + "Zz99"
    before = scan_blobs([Blob("logs", "logs/control.log", f'token="{GITHUB_TOKEN}"')])
    after = scan_blobs([Blob("logs", "logs/control.log", f'token="{rotated}"')])
    assert before[0].check == after[0].check == "secret.github_token"
    assert before[0].fingerprint != after[0].fingerprint


def test_a_rotated_private_key_is_a_new_finding() -> None:
    other = PRIVATE_KEY_PEM.replace(PEM_BODY[1], PEM_BODY[1][::-1])
    before = scan_blobs([Blob("config", "fleet/deploy.pem", PRIVATE_KEY_PEM)])
    after = scan_blobs([Blob("config", "fleet/deploy.pem", other)])
    assert before[0].fingerprint != after[0].fingerprint


def test_a_private_key_escaped_into_a_json_log_line_is_found() -> None:
    line = json.dumps({"event": "tls.loaded", "key": PRIVATE_KEY_PEM})
    [finding] = scan_blobs([Blob("logs", "logs/control.log", line)])
    assert (finding.check, finding.severity) == ("secret.private_key", Severity.CRITICAL)
    assert finding.evidence["redacted"].startswith("----…")


def test_same_secret_in_same_place_is_reported_once() -> None:
    line = f'{{"event": "github.call", "token": "{GITHUB_TOKEN}"}}'
    findings = scan_blobs([Blob("logs", "logs/control.log", "\n".join([line] * 50)),
                           Blob("logs", "logs/bot.log", line)])
    assert sorted(f.evidence["location"] for f in findings) == ["logs/bot.log", "logs/control.log:1"]


def test_stream_entries_of_one_stream_share_a_subject() -> None:
    blobs = [text_blob("streams", f"stream oshal:out:echo 170000000{n}-0", {"result": f"key {OSHAL_KEY}"})
             for n in range(3)]
    [finding] = scan_blobs(blobs)
    assert finding.subject.startswith("streams:stream oshal:out:echo:")
    assert finding.evidence["location"] == "stream oshal:out:echo 1700000000-0"
    assert "XDEL" in finding.remediation


def test_allow_suppresses_a_secret_by_its_digest_or_subject_prefix(planted: Path) -> None:
    findings = scan_planted(planted)
    without_aws = scan_blobs([*file_blobs([planted / "fleet"], "config", root=planted),
                              *file_blobs([planted / "logs"], "logs", root=planted)],
                             allow={sha256(AWS_KEY_ID), sha256(GITHUB_TOKEN)[:16]})
    assert len(without_aws) == len(findings) - 2
    assert all(f.evidence["redacted"] != "AKIA…(20 chars)" for f in without_aws)
    assert "secret.github_token" not in by_check(without_aws)


def test_clean_structlog_output_has_no_findings() -> None:
    lines = [
        json.dumps({"event": "http.request", "level": "info", "timestamp": "2024-05-01T12:00:00.123456Z",
                    "request_id": "0a4600a3-6a9d-4572-87fc-1c59d44a7ba5",
                    "tenant_id": "57ee05cd-e009-42c7-9ebf-f20686734721",
                    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
                    "path": "/v1/bots/echo/tickets/9be4bcfc-49b6-4a08-92e6-cc3ababced20", "status": 200,
                    "digest": "5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9",
                    "key": "oshal:lane:echo", "entry_id": "1700000000000-0", "api_key": "[redacted]",
                    "token_count": 1234, "secret_ref": "vault:kv/oshal/connectors/github",
                    "url": "https://api.github.com/repos/acme/widgets/pulls?state=open&per_page=100"}),
        "2024-05-01T12:00:01.000001Z [info     ] connector.call       bot=echo "
        "trace_id=d5a4fd12aabfe228f219e9cb0eb53f16 ticket=11143a36-118f-40bc-9168-7cabc1206b9a "
        'etag="947ccf25ec84d8dbc74254770f58904dba41eccc" password=[redacted] max_tokens=1024 '
        "secret_name=oshal-db-creds url=https://hooks.example.com/x/c3fc1626",
        "2024-05-01T12:00:02.000002Z [warning  ] connector.retry      connector=github attempt=2 "
        "error=\"HTTPError('503 Service Unavailable')\" commit=53a13043b026c48bbf33feff9243a8f506b40928 "
        "idempotency_key=b5b7a767c76fb008f86bebb2737f6a6f session_token=[redacted] auth=oauth2",
        "2024-05-01T12:00:03.000003Z [info     ] user.password_reset  password_changed_at=2024-05-01T12:00:03Z "
        "password_reset=true token_ttl=3600",
        "2024-05-01T12:00:04.000004Z [error    ] ticket.failed        error=\"KeyError('password')\" "
        "hint=\"send 'Authorization: Bearer osk_...' (oshal key create makes one)\"",
    ]
    assert scan_blobs([Blob("logs", "logs/control.log", "\n".join(lines))]) == []


def test_entropy_counts_only_when_assigned_to_a_secret_name() -> None:
    random_value = "Zm9vYmFyYmF6cXV4" + "q8Xr2LpT7vNw4KsYd9GhJm3B"
    assert scan_blobs([Blob("logs", "logs/a.log", f'{{"trace": "{random_value}"}}')]) == []
    [finding] = scan_blobs([Blob("logs", "logs/a.log", f'{{"auth_token": "{random_value}"}}')])
    assert (finding.check, finding.severity) == ("secret.base64_high_entropy_string", Severity.MEDIUM)


def test_unquoted_keyword_assignments_in_console_logs_are_found() -> None:
    [finding] = scan_blobs([Blob("logs", "logs/a.log", f"2024 [info] db.connect db_password={PASSWORD} host=db")])
    assert finding.check == "secret.secret_keyword"


def test_file_blobs_skips_binary_files(tmp_path: Path) -> None:
    (tmp_path / "image.bin").write_bytes(b"\x89PNG\x00\x00" + GITHUB_TOKEN.encode())
    (tmp_path / "notes.txt").write_text("nothing here\n")
    assert [blob.location for blob in file_blobs([tmp_path], "config", root=tmp_path)] == ["notes.txt"]


def test_file_blobs_skips_big_non_log_files(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text("x: 1\n" * 1000 + f"token: {GITHUB_TOKEN}\n")
    assert list(file_blobs([tmp_path], "config", root=tmp_path, max_bytes=1000)) == []


def test_file_blobs_reads_the_tail_of_big_log_files_with_real_line_numbers(tmp_path: Path) -> None:
    filler = '{"event": "heartbeat", "bot": "echo"}\n'
    (tmp_path / "control.log").write_text(filler * 5000 + f'{{"token": "{GITHUB_TOKEN}"}}\n' + filler * 10)
    [blob] = file_blobs([tmp_path / "control.log"], "logs", root=tmp_path, max_bytes=4096)
    assert len(blob.text.encode()) <= 4096
    [finding] = scan_blobs([blob])
    assert finding.evidence["location"] == "control.log:5001"
    assert finding.subject.startswith("logs:control.log:")


def test_text_blob_renders_one_line_per_leaf_with_its_key_path() -> None:
    blob = text_blob("tickets", "ticket 1 result", {"config": {"api_token": "x", "hosts": ["a", {"port": 1}]},
                                                     "payload": '{"password": "y"}'})
    assert blob.text.splitlines() == ['config.api_token: "x"', 'config.hosts[0]: "a"', "config.hosts[1].port: 1",
                                      'payload.password: "y"']


def test_text_blob_finds_a_token_nested_in_a_ticket_result() -> None:
    location = "ticket 6f1c2a9e-3b1d-4c55-9a51-0d6b2f7e8c41 result"
    [finding] = scan_blobs([text_blob("tickets", location, {"config": {"api_token": GITHUB_TOKEN}})])
    assert (finding.check, finding.severity) == ("secret.github_token", Severity.HIGH)
    assert finding.evidence["location"] == location
    assert "redact it from" in finding.remediation


def test_text_blob_finds_a_keyword_by_its_key_name() -> None:
    [finding] = scan_blobs([text_blob("manifests", "manifest github", {"auth": {"password": PASSWORD}})])
    assert finding.check == "secret.secret_keyword"


def test_blob_rejects_an_unknown_source() -> None:
    with pytest.raises(ValueError, match="unknown secret source"):
        Blob("email", "inbox", "text")
