"""Installed packages checked against an offline vulnerability database.

The database is a small JSON file (``oshal-vulndb/1``) shipped with oshal as a seed and refreshed by an
operator with ``import_db`` from a newer file or a downloaded OSV dump; nothing here touches the network.
Version ranges follow OSV: a version is affected when ``introduced <= v < fixed`` (or ``<= last_affected``).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from oshal.errors import ConfigError, Conflict
from oshal.logs import get_logger
from oshal.security.findings import Finding, Severity

__all__ = [
    "Advisory",
    "AffectedRange",
    "VulnDb",
    "home_db_path",
    "import_db",
    "installed_packages",
    "load_db",
    "read_db",
    "scan_dependencies",
]

log = get_logger(__name__)

FORMAT = "oshal-vulndb/1"
SEED_PATH = Path(__file__).parent / "data" / "vulndb.json"
_SEVERITIES = {"low": Severity.LOW, "medium": Severity.MEDIUM, "high": Severity.HIGH, "critical": Severity.CRITICAL}
# GitHub's advisories say MODERATE where we say medium.
_OSV_SEVERITIES = {"LOW": "low", "MODERATE": "medium", "MEDIUM": "medium", "HIGH": "high", "CRITICAL": "critical"}


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


class _Malformed(ValueError):
    """A problem inside a database file; wrapped into ConfigError with the file name."""


# --- loading -------------------------------------------------------------------------------------------------


def home_db_path(home: Path) -> Path:
    return home / "security" / "vulndb.json"


def load_db(home: Path | None = None) -> VulnDb:
    """The operator's refreshed copy under ``home`` when there is one, else the seed shipped with oshal."""
    if home is not None and home_db_path(home).exists():
        return read_db(home_db_path(home))
    return read_db(SEED_PATH)


def read_db(path: Path) -> VulnDb:
    """Read and validate one ``oshal-vulndb/1`` file."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return _parse_db(raw, path)
    except OSError as e:
        raise ConfigError(f"vulnerability database {path} cannot be read: {e.strerror or e}",
                          hint="check the path and its permissions") from e
    except json.JSONDecodeError as e:
        raise ConfigError(f"vulnerability database {path} is not valid JSON: {e.msg} at line {e.lineno}",
                          hint="re-import a good copy with `import_db`, or delete it to fall back to the seed") from e
    except _Malformed as e:
        raise ConfigError(f"vulnerability database {path} is invalid: {e}",
                          hint=f"the file must follow the {FORMAT} format") from e


def _parse_db(raw: Any, path: Path | None) -> VulnDb:
    if not isinstance(raw, dict):
        raise _Malformed("top level must be an object")
    if raw.get("format") != FORMAT:
        raise _Malformed(f"format must be {FORMAT!r}, got {raw.get('format')!r}")
    updated = _parse_timestamp(raw.get("updated"), "updated")
    entries = raw.get("advisories")
    if not isinstance(entries, list):
        raise _Malformed("advisories must be a list")
    advisories = tuple(_parse_advisory(entry, f"advisories[{i}]") for i, entry in enumerate(entries))
    _refuse_duplicate_ids(advisories)
    return VulnDb(updated=updated, advisories=advisories, source=path)


def _parse_timestamp(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise _Malformed(f"{where} must be an ISO date string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise _Malformed(f"{where} is not an ISO date: {value!r}") from e
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_advisory(entry: Any, where: str) -> Advisory:
    if not isinstance(entry, dict):
        raise _Malformed(f"{where} must be an object")
    advisory_id = _required_text(entry, "id", where)
    where = f"{where} ({advisory_id})"
    severity = entry.get("severity", "medium")
    if severity not in _SEVERITIES:
        raise _Malformed(f"{where}: severity must be one of {', '.join(_SEVERITIES)}, got {severity!r}")
    ranges = entry.get("affected")
    if not isinstance(ranges, list) or not ranges:
        raise _Malformed(f"{where}: affected must be a non-empty list of ranges")
    return Advisory(
        id=advisory_id, package=canonicalize_name(_required_text(entry, "package", where)),
        summary=str(entry.get("summary", "")), severity=_SEVERITIES[severity],
        affected=tuple(_parse_range(r, f"{where} affected[{i}]") for i, r in enumerate(ranges)),
        aliases=_text_list(entry, "aliases", where), references=_text_list(entry, "references", where))


def _parse_range(raw: Any, where: str) -> AffectedRange:
    if not isinstance(raw, dict) or "introduced" not in raw:
        raise _Malformed(f"{where} must be an object with 'introduced'")
    if "fixed" in raw and "last_affected" in raw:
        raise _Malformed(f"{where} has both 'fixed' and 'last_affected'; a range ends in one of them")
    introduced = _parse_version(raw["introduced"], where)
    fixed = _parse_version(raw["fixed"], where) if "fixed" in raw else None
    last = _parse_version(raw["last_affected"], where) if "last_affected" in raw else None
    if fixed is not None and fixed <= introduced:
        raise _Malformed(f"{where}: fixed {fixed} is not after introduced {introduced}")
    if last is not None and last < introduced:
        raise _Malformed(f"{where}: last_affected {last} is before introduced {introduced}")
    return AffectedRange(introduced=introduced, fixed=fixed, last_affected=last)


def _parse_version(value: Any, where: str) -> Version:
    try:
        return Version(str(value))
    except InvalidVersion as e:
        raise _Malformed(f"{where}: {value!r} is not a valid version") from e


def _required_text(entry: dict[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _Malformed(f"{where}: {key} must be a non-empty string")
    return value.strip()


def _text_list(entry: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _Malformed(f"{where}: {key} must be a list of strings")
    return tuple(value)


def _refuse_duplicate_ids(advisories: tuple[Advisory, ...]) -> None:
    seen: set[tuple[str, str]] = set()
    for advisory in advisories:
        key = (advisory.package, advisory.id)
        if key in seen:
            raise _Malformed(f"advisory {advisory.id} for {advisory.package} appears twice")
        seen.add(key)


# --- refreshing ----------------------------------------------------------------------------------------------


def import_db(source: Path, home: Path, *, force: bool = False) -> VulnDb:
    """Install a newer database under ``home`` from an ``oshal-vulndb/1`` file, an OSV directory or an OSV zip.

    An import older than the database in use is refused unless ``force``: replaying an old dump would
    silently forget advisories published since.
    """
    incoming = _read_source(source)
    current = _current_for_import(home)
    if incoming.updated < current.updated and not force:
        raise Conflict(f"vulnerability database {source} (updated {incoming.updated.date()}) is older than the "
                       f"one in use (updated {current.updated.date()})",
                       hint="import a newer dump, or pass force=True to replace it anyway")
    target = home_db_path(home)
    _write_atomically(target, json.dumps(incoming.as_dict(), indent=1, sort_keys=True) + "\n")
    return VulnDb(updated=incoming.updated, advisories=incoming.advisories, source=target)


def _current_for_import(home: Path) -> VulnDb:
    try:
        return load_db(home)
    except ConfigError:
        # A damaged copy under home is what an import repairs; judge the import against the seed instead.
        return read_db(SEED_PATH)


def _read_source(source: Path) -> VulnDb:
    if source.is_dir() or zipfile.is_zipfile(source):
        return _from_osv(source)
    return read_db(source)


def _write_atomically(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".vulndb-", suffix=".json", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- OSV conversion ------------------------------------------------------------------------------------------


def _from_osv(source: Path) -> VulnDb:
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
    except (_Malformed, OSError, zipfile.BadZipFile) as e:
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
        raise _Malformed(f"{name} is not valid JSON") from e
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise _Malformed(f"{name} is not an OSV entry (no id)")
    return raw


def _osv_modified(raw: dict[str, Any], name: str) -> datetime | None:
    value = raw.get("modified")
    return _parse_timestamp(value, f"{name} modified") if value is not None else None


def _osv_advisories(raw: dict[str, Any], name: str) -> list[Advisory]:
    if raw.get("withdrawn"):
        return []
    try:
        ranges_by_package = _osv_pypi_ranges(raw, f"{name} ({raw['id']})")
    except _Malformed as e:
        # Old PyPI entries sometimes carry versions PEP 440 cannot read; losing one beats refusing the dump.
        log.warning("vulndb.osv_entry_skipped", advisory=raw["id"], reason=str(e))
        return []
    severity = _OSV_SEVERITIES.get(str(_as_dict(raw.get("database_specific")).get("severity", "")).upper(), "medium")
    summary = str(raw.get("summary") or raw.get("details") or "")[:300]
    references = tuple(str(r["url"]) for r in raw.get("references") or [] if isinstance(r, dict) and "url" in r)
    aliases = tuple(str(a) for a in raw.get("aliases") or [])
    return [Advisory(id=raw["id"], package=package, summary=summary, severity=_SEVERITIES[severity],
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
            exact = _parse_version(version, where)
            ranges.append(AffectedRange(introduced=exact, last_affected=exact))
    return ranges


def _ranges_from_events(events: list[Any], where: str) -> list[AffectedRange]:
    """OSV events read in order: each ``introduced`` opens a range, the next ``fixed``/``last_affected`` closes it."""
    ranges: list[AffectedRange] = []
    start: Version | None = None
    for event in map(_as_dict, events):
        if "introduced" in event:
            start = _parse_version(event["introduced"], where)
        elif start is not None and "fixed" in event:
            ranges.append(AffectedRange(introduced=start, fixed=_parse_version(event["fixed"], where)))
            start = None
        elif start is not None and "last_affected" in event:
            ranges.append(AffectedRange(introduced=start, last_affected=_parse_version(event["last_affected"], where)))
            start = None
    if start is not None:
        ranges.append(AffectedRange(introduced=start))
    return ranges


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# --- scanning ------------------------------------------------------------------------------------------------


def installed_packages() -> dict[str, str]:
    """Canonical name -> version of every distribution importable by this interpreter (first one on the path wins)."""
    packages: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages.setdefault(canonicalize_name(name), dist.version)
    return packages


def scan_dependencies(db: VulnDb, packages: Mapping[str, str]) -> list[Finding]:
    """One finding per (installed package, advisory that covers its version)."""
    findings = []
    for name, installed in sorted(packages.items()):
        try:
            version = Version(installed)
        except InvalidVersion:
            continue  # a local or legacy version string cannot be placed in a range
        package = canonicalize_name(name)
        for advisory in db.for_package(package):
            matched = advisory.matching_range(version)
            if matched is not None:
                findings.append(_finding(db, package, installed, advisory, matched))
    return findings


def _finding(db: VulnDb, package: str, installed: str, advisory: Advisory, matched: AffectedRange) -> Finding:
    shown = advisory.display_id
    title = f"{package} {installed} is affected by {shown}" + (f" ({advisory.id})" if shown != advisory.id else "")
    return Finding(
        scan="code", check=f"vuln.{advisory.id}", severity=advisory.severity, title=title,
        subject=f"{package}:{advisory.id}", remediation=_remediation(package, matched),
        evidence={"package": package, "installed": installed, "advisory": advisory.id,
                  "aliases": list(advisory.aliases), "affected": [r.describe() for r in advisory.affected],
                  "fixed_in": str(matched.fixed) if matched.fixed is not None else None,
                  "summary": advisory.summary, "references": list(advisory.references),
                  "db_updated": db.updated.isoformat()})


def _remediation(package: str, matched: AffectedRange) -> str:
    if matched.fixed is not None:
        return f"upgrade {package} to >= {matched.fixed}"
    if matched.last_affected is not None:
        return f"upgrade {package} to a release after {matched.last_affected}; if none exists, remove or isolate it"
    return f"no fixed version yet: remove or isolate {package}"
