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
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from oshal.errors import ConfigError, Conflict
from oshal.security.findings import Finding
from oshal.security.osv import read_osv
from oshal.security.vulnmodel import (
    FORMAT,
    SEVERITIES,
    Advisory,
    AffectedRange,
    Malformed,
    VulnDb,
    parse_timestamp,
    parse_version,
)

__all__ = [
    "home_db_path",
    "import_db",
    "installed_packages",
    "load_db",
    "read_db",
    "scan_dependencies",
]

SEED_PATH = Path(__file__).parent / "data" / "vulndb.json"


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
    except Malformed as e:
        raise ConfigError(f"vulnerability database {path} is invalid: {e}",
                          hint=f"the file must follow the {FORMAT} format") from e


def _parse_db(raw: Any, path: Path | None) -> VulnDb:
    if not isinstance(raw, dict):
        raise Malformed("top level must be an object")
    if raw.get("format") != FORMAT:
        raise Malformed(f"format must be {FORMAT!r}, got {raw.get('format')!r}")
    updated = parse_timestamp(raw.get("updated"), "updated")
    entries = raw.get("advisories")
    if not isinstance(entries, list):
        raise Malformed("advisories must be a list")
    advisories = tuple(_parse_advisory(entry, f"advisories[{i}]") for i, entry in enumerate(entries))
    _refuse_duplicate_ids(advisories)
    return VulnDb(updated=updated, advisories=advisories, source=path)


def _parse_advisory(entry: Any, where: str) -> Advisory:
    if not isinstance(entry, dict):
        raise Malformed(f"{where} must be an object")
    advisory_id = _required_text(entry, "id", where)
    where = f"{where} ({advisory_id})"
    severity = entry.get("severity", "medium")
    if severity not in SEVERITIES:
        raise Malformed(f"{where}: severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    ranges = entry.get("affected")
    if not isinstance(ranges, list) or not ranges:
        raise Malformed(f"{where}: affected must be a non-empty list of ranges")
    return Advisory(
        id=advisory_id, package=canonicalize_name(_required_text(entry, "package", where)),
        summary=str(entry.get("summary", "")), severity=SEVERITIES[severity],
        affected=tuple(_parse_range(r, f"{where} affected[{i}]") for i, r in enumerate(ranges)),
        aliases=_text_list(entry, "aliases", where), references=_text_list(entry, "references", where))


def _parse_range(raw: Any, where: str) -> AffectedRange:
    if not isinstance(raw, dict) or "introduced" not in raw:
        raise Malformed(f"{where} must be an object with 'introduced'")
    if "fixed" in raw and "last_affected" in raw:
        raise Malformed(f"{where} has both 'fixed' and 'last_affected'; a range ends in one of them")
    introduced = parse_version(raw["introduced"], where)
    fixed = parse_version(raw["fixed"], where) if "fixed" in raw else None
    last = parse_version(raw["last_affected"], where) if "last_affected" in raw else None
    if fixed is not None and fixed <= introduced:
        raise Malformed(f"{where}: fixed {fixed} is not after introduced {introduced}")
    if last is not None and last < introduced:
        raise Malformed(f"{where}: last_affected {last} is before introduced {introduced}")
    return AffectedRange(introduced=introduced, fixed=fixed, last_affected=last)


def _required_text(entry: dict[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise Malformed(f"{where}: {key} must be a non-empty string")
    return value.strip()


def _text_list(entry: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Malformed(f"{where}: {key} must be a list of strings")
    return tuple(value)


def _refuse_duplicate_ids(advisories: tuple[Advisory, ...]) -> None:
    seen: set[tuple[str, str]] = set()
    for advisory in advisories:
        key = (advisory.package, advisory.id)
        if key in seen:
            raise Malformed(f"advisory {advisory.id} for {advisory.package} appears twice")
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
        return read_osv(source)
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
