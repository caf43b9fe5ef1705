"""The vulnerability database's records, and the value parsers shared by its two readers (vulndb files, OSV dumps)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from oshal.security.findings import Severity

__all__ = [
    "FORMAT",
    "SEVERITIES",
    "Advisory",
    "AffectedRange",
    "Malformed",
    "VulnDb",
    "parse_timestamp",
    "parse_version",
]

FORMAT = "oshal-vulndb/1"
SEVERITIES = {"low": Severity.LOW, "medium": Severity.MEDIUM, "high": Severity.HIGH, "critical": Severity.CRITICAL}


@dataclass(frozen=True, slots=True)
class AffectedRange:
    introduced: Version
    fixed: Version | None = None
    last_affected: Version | None = None

    def contains(self, version: Version) -> bool:
        if version < self.introduced:
            return False
        if self.fixed is not None and version >= self.fixed:
            return False
        return self.last_affected is None or version <= self.last_affected

    def describe(self) -> str:
        if self.fixed is not None:
            return f">={self.introduced},<{self.fixed}"
        if self.last_affected is not None:
            return f">={self.introduced},<={self.last_affected}"
        return f">={self.introduced}"

    def as_dict(self) -> dict[str, str]:
        out = {"introduced": str(self.introduced)}
        if self.fixed is not None:
            out["fixed"] = str(self.fixed)
        if self.last_affected is not None:
            out["last_affected"] = str(self.last_affected)
        return out


@dataclass(frozen=True, slots=True)
class Advisory:
    id: str
    package: str
    summary: str
    severity: Severity
    affected: tuple[AffectedRange, ...]
    aliases: tuple[str, ...] = ()
    references: tuple[str, ...] = ()

    def matching_range(self, version: Version) -> AffectedRange | None:
        return next((r for r in self.affected if r.contains(version)), None)

    @property
    def display_id(self) -> str:
        """The CVE when there is one (what people search for), else the advisory's own id."""
        return next((a for a in self.aliases if a.startswith("CVE-")), self.id)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "aliases": list(self.aliases), "package": self.package, "summary": self.summary,
                "severity": self.severity.value, "affected": [r.as_dict() for r in self.affected],
                "references": list(self.references)}


@dataclass(frozen=True, slots=True)
class VulnDb:
    updated: datetime
    advisories: tuple[Advisory, ...]
    source: Path | None = None
    _by_package: dict[str, tuple[Advisory, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        grouped: dict[str, list[Advisory]] = {}
        for advisory in self.advisories:
            grouped.setdefault(advisory.package, []).append(advisory)
        object.__setattr__(self, "_by_package", {name: tuple(items) for name, items in grouped.items()})

    def for_package(self, name: str) -> tuple[Advisory, ...]:
        return self._by_package.get(canonicalize_name(name), ())

    def as_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "updated": self.updated.isoformat(),
                "advisories": [a.as_dict() for a in self.advisories]}


class Malformed(ValueError):
    """A problem inside a database file; wrapped into ConfigError with the file name."""


def parse_timestamp(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise Malformed(f"{where} must be an ISO date string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise Malformed(f"{where} is not an ISO date: {value!r}") from e
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_version(value: Any, where: str) -> Version:
    try:
        return Version(str(value))
    except InvalidVersion as e:
        raise Malformed(f"{where}: {value!r} is not a valid version") from e
