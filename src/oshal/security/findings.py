"""What a scan reports: a finding with a severity, evidence, a stable fingerprint and a remediation."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def files_automatically(self) -> bool:
        """HIGH and CRITICAL findings file a ticket and notify at once; lower ones wait for an operator."""
        return self.rank >= _RANK[Severity.HIGH]


_RANK = {Severity.INFO: 0, Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3, Severity.CRITICAL: 4}

SCANS = ("posture", "secrets", "code", "runtime", "ledger", "access")


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found by one check. ``subject`` names what it is about (a table, a route, ``file:line``).

    The fingerprint depends on the scan, the check and the subject only, so a re-scan that sees the same
    problem with fresh evidence maps to the same finding. Evidence must never contain a secret value.
    """

    scan: str
    check: str
    severity: Severity
    title: str
    subject: str
    remediation: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scan not in SCANS:
            raise ValueError(f"unknown scan {self.scan!r}; one of {', '.join(SCANS)}")

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.scan, self.check, self.subject)

    def as_dict(self) -> dict[str, Any]:
        return {"scan": self.scan, "check": self.check, "severity": self.severity.value, "title": self.title,
                "subject": self.subject, "remediation": self.remediation, "evidence": self.evidence,
                "fingerprint": self.fingerprint}


def fingerprint(scan: str, check: str, subject: str) -> str:
    return hashlib.sha256(f"{scan}\x1f{check}\x1f{subject}".encode()).hexdigest()[:32]
