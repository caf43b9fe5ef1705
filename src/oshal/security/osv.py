"""OSV dumps (osv.dev's PyPI zip or a folder of its JSON files) converted to a vulnerability database."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import Version

from oshal.errors import ConfigError
from oshal.logs import get_logger
from oshal.security.findings import Severity
from oshal.security.vulnmodel import Advisory, AffectedRange, Malformed, VulnDb, parse_timestamp, parse_version

__all__ = ["read_osv"]

log = get_logger(__name__)

# GitHub's advisories say MODERATE where we say medium.
_OSV_SEVERITIES = {"LOW": Severity.LOW, "MODERATE": Severity.MEDIUM, "MEDIUM": Severity.MEDIUM, "HIGH": Severity.HIGH,
                   "CRITICAL": Severity.CRITICAL}


def read_osv(source: Path) -> VulnDb:
    """Convert the PyPI entries of an OSV dump (a directory of JSON files, or osv.dev's zip) to a database."""
    advisories: list[Advisory] = []
    known: dict[str, set[str]] = {}
    newest: datetime | None = None
    try:
        # Sorted by id so GHSA entries (which carry a severity) win over their PYSEC twins.
        for name, raw in sorted(_osv_documents(source), key=lambda doc: str(doc[1].get("id", doc[0]))):
            for advisory in _osv_advisories(raw, name):
                names = {advisory.id, *advisory.aliases}
                if names & known.setdefault(advisory.package, set()):
                    continue
                known[advisory.package] |= names
                advisories.append(advisory)
            modified = _osv_modified(raw, name)
            if modified is not None and (newest is None or modified > newest):
                newest = modified
    except (Malformed, OSError, zipfile.BadZipFile) as e:
        raise ConfigError(f"OSV dump {source} is invalid: {e}", hint="pass osv.dev's PyPI dump unchanged") from e
    if not advisories:
        raise ConfigError(f"OSV dump {source} has no PyPI advisories",
                          hint="download the PyPI dump (PyPI/all.zip) and pass that file or its unpacked folder")
    return VulnDb(updated=newest or datetime.now(UTC), advisories=tuple(advisories), source=source)


def _osv_documents(source: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if source.is_dir():
        for path in sorted(source.rglob("*.json")):
            yield str(path), _osv_json(path.read_bytes(), str(path))
        return
    with zipfile.ZipFile(source) as archive:
        for member in sorted(archive.namelist()):
            if member.endswith(".json"):
                yield member, _osv_json(archive.read(member), member)


def _osv_json(data: bytes, name: str) -> dict[str, Any]:
    try:
        raw = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Malformed(f"{name} is not valid JSON") from e
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise Malformed(f"{name} is not an OSV entry (no id)")
    return raw


def _osv_modified(raw: dict[str, Any], name: str) -> datetime | None:
    value = raw.get("modified")
    return parse_timestamp(value, f"{name} modified") if value is not None else None


def _osv_advisories(raw: dict[str, Any], name: str) -> list[Advisory]:
    if raw.get("withdrawn"):
        return []
    try:
        ranges_by_package = _osv_pypi_ranges(raw, f"{name} ({raw['id']})")
    except Malformed as e:
        # Old PyPI entries sometimes carry versions PEP 440 cannot read; losing one beats refusing the dump.
        log.warning("vulndb.osv_entry_skipped", advisory=raw["id"], reason=str(e))
        return []
    label = str(_as_dict(raw.get("database_specific")).get("severity", "")).upper()
    severity = _OSV_SEVERITIES.get(label, Severity.MEDIUM)
    summary = str(raw.get("summary") or raw.get("details") or "")[:300]
    references = tuple(str(r["url"]) for r in raw.get("references") or [] if isinstance(r, dict) and "url" in r)
    aliases = tuple(str(a) for a in raw.get("aliases") or [])
    return [Advisory(id=raw["id"], package=package, summary=summary, severity=severity,
                     affected=tuple(ranges), aliases=aliases, references=references)
            for package, ranges in ranges_by_package.items() if ranges]


def _osv_pypi_ranges(raw: dict[str, Any], where: str) -> dict[str, list[AffectedRange]]:
    ranges_by_package: dict[str, list[AffectedRange]] = {}
    for affected in raw.get("affected") or []:
        package = _as_dict(_as_dict(affected).get("package"))
        if package.get("ecosystem") != "PyPI" or not isinstance(package.get("name"), str):
            continue
        ranges_by_package.setdefault(canonicalize_name(package["name"]), []).extend(_osv_ranges(affected, where))
    return ranges_by_package


def _osv_ranges(affected: dict[str, Any], where: str) -> list[AffectedRange]:
    ranges: list[AffectedRange] = []
    for osv_range in affected.get("ranges") or []:
        if _as_dict(osv_range).get("type") in ("ECOSYSTEM", "SEMVER"):
            ranges.extend(_ranges_from_events(osv_range.get("events") or [], where))
    if not ranges:
        # Some entries list the affected versions one by one instead of giving ranges.
        for version in affected.get("versions") or []:
            exact = parse_version(version, where)
            ranges.append(AffectedRange(introduced=exact, last_affected=exact))
    return ranges


def _ranges_from_events(events: list[Any], where: str) -> list[AffectedRange]:
    """OSV events read in order: each ``introduced`` opens a range, the next ``fixed``/``last_affected`` closes it."""
    ranges: list[AffectedRange] = []
    start: Version | None = None
    for event in map(_as_dict, events):
        if "introduced" in event:
            start = parse_version(event["introduced"], where)
        elif start is not None and "fixed" in event:
            ranges.append(AffectedRange(introduced=start, fixed=parse_version(event["fixed"], where)))
            start = None
        elif start is not None and "last_affected" in event:
            ranges.append(AffectedRange(introduced=start, last_affected=parse_version(event["last_affected"], where)))
            start = None
    if start is not None:
        ranges.append(AffectedRange(introduced=start))
    return ranges


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
