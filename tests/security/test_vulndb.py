"""The offline vulnerability database: range matching, the shipped seed, findings for installed packages, refreshes."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from oshal.errors import ConfigError, Conflict
from oshal.security.findings import Severity
from oshal.security.vulndb import (
    SEED_PATH,
    home_db_path,
    import_db,
    installed_packages,
    load_db,
    read_db,
    scan_dependencies,
)
from oshal.security.vulnmodel import AffectedRange


def v(text: str) -> Version:
    return Version(text)


def advisory(id_: str = "GHSA-test-0001", package: str = "demo", **overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": id_, "aliases": ["CVE-2099-0001"], "package": package, "summary": "demo flaw",
                             "severity": "high", "affected": [{"introduced": "0", "fixed": "2.0.0"}],
                             "references": ["https://example.invalid/advisory"]}
    entry.update(overrides)
    return entry


def write_db(path: Path, advisories: list[dict[str, Any]], updated: str = "2030-01-01") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": "oshal-vulndb/1", "updated": updated, "advisories": advisories}))
    return path


# --- ranges ---------------------------------------------------------------------------------------------------


def test_fixed_is_exclusive_and_introduced_inclusive() -> None:
    affected = AffectedRange(introduced=v("1.2.0"), fixed=v("1.4.0"))

    assert not affected.contains(v("1.1.9"))
    assert affected.contains(v("1.2.0"))
    assert affected.contains(v("1.3.99"))
    assert not affected.contains(v("1.4.0"))
    assert not affected.contains(v("1.4.1"))


def test_last_affected_is_inclusive() -> None:
    affected = AffectedRange(introduced=v("0"), last_affected=v("21.2.0"))

    assert affected.contains(v("21.2.0"))
    assert not affected.contains(v("21.2.1"))
    assert not affected.contains(v("22.0.0"))


def test_range_without_end_covers_every_later_version() -> None:
    affected = AffectedRange(introduced=v("3.0"))

    assert affected.contains(v("3.0")) and affected.contains(v("99.0"))
    assert not affected.contains(v("2.9"))


def test_prerelease_of_the_fix_is_still_affected() -> None:
    assert AffectedRange(introduced=v("0"), fixed=v("2.0.0")).contains(v("2.0.0rc1"))


# --- the seed -------------------------------------------------------------------------------------------------


def test_seed_loads_and_every_entry_is_complete() -> None:
    db = load_db()

    assert db.source == SEED_PATH
    assert len(db.advisories) >= 15
    for adv in db.advisories:
        assert adv.id.startswith("GHSA-")
        assert any(alias.startswith("CVE-") for alias in adv.aliases)
        assert adv.summary and adv.references and adv.affected
        assert all(r.fixed is not None or r.last_affected is not None for r in adv.affected)
    assert len({(a.package, a.id) for a in db.advisories}) == len(db.advisories)


def test_seed_flags_a_known_vulnerable_jinja2() -> None:
    findings = {f.check: f for f in scan_dependencies(load_db(), {"Jinja2": "3.1.2"})}

    assert set(findings) == {"vuln.GHSA-h5c8-rqwp-cp95", "vuln.GHSA-h75v-3vvj-5mfj"}
    first = findings["vuln.GHSA-h5c8-rqwp-cp95"]
    assert first.title == "jinja2 3.1.2 is affected by CVE-2024-22195 (GHSA-h5c8-rqwp-cp95)"
    assert first.remediation == "upgrade jinja2 to >= 3.1.3"
    assert findings["vuln.GHSA-h75v-3vvj-5mfj"].remediation == "upgrade jinja2 to >= 3.1.4"


def test_seed_picks_the_fix_on_the_installed_release_line() -> None:
    db = load_db()

    old = scan_dependencies(db, {"urllib3": "1.26.18"})
    new = scan_dependencies(db, {"urllib3": "2.2.1"})

    assert [f.evidence["fixed_in"] for f in old] == ["1.26.19"]
    assert [f.evidence["fixed_in"] for f in new] == ["2.2.2"]
    assert scan_dependencies(db, {"urllib3": "2.2.2"}) == []


# --- findings -------------------------------------------------------------------------------------------------


@pytest.fixture
def demo_db(tmp_path: Path) -> Path:
    return write_db(tmp_path / "db.json", [
        advisory(),
        advisory("GHSA-test-0002", aliases=[], severity="critical",
                 affected=[{"introduced": "1.0", "last_affected": "1.5"}]),
        advisory("GHSA-test-0003", aliases=[], affected=[{"introduced": "1.0"}]),
        advisory("GHSA-test-0004", package="Other_Pkg", affected=[{"introduced": "0", "fixed": "0.9"}]),
    ])


def test_planted_old_version_is_flagged_with_evidence(demo_db: Path) -> None:
    db = read_db(demo_db)

    findings = {f.check: f for f in scan_dependencies(db, {"demo": "1.0.0"})}

    fixed = findings["vuln.GHSA-test-0001"]
    assert fixed.scan == "code"
    assert fixed.severity is Severity.HIGH
    assert fixed.subject == "demo:GHSA-test-0001"
    assert fixed.title == "demo 1.0.0 is affected by CVE-2099-0001 (GHSA-test-0001)"
    assert fixed.remediation == "upgrade demo to >= 2.0.0"
    assert fixed.evidence == {
        "package": "demo", "installed": "1.0.0", "advisory": "GHSA-test-0001", "aliases": ["CVE-2099-0001"],
        "affected": [">=0,<2.0.0"], "fixed_in": "2.0.0", "summary": "demo flaw",
        "references": ["https://example.invalid/advisory"], "db_updated": "2030-01-01T00:00:00+00:00"}
    assert findings["vuln.GHSA-test-0002"].severity is Severity.CRITICAL
    assert findings["vuln.GHSA-test-0002"].title == "demo 1.0.0 is affected by GHSA-test-0002"
    assert "after 1.5" in findings["vuln.GHSA-test-0002"].remediation
    assert findings["vuln.GHSA-test-0003"].remediation == "no fixed version yet: remove or isolate demo"
    assert findings["vuln.GHSA-test-0003"].evidence["fixed_in"] is None


def test_fixed_version_is_not_flagged(demo_db: Path) -> None:
    findings = scan_dependencies(read_db(demo_db), {"demo": "2.0.0"})

    assert [f.check for f in findings] == ["vuln.GHSA-test-0003"]  # the one with no fix yet


def test_package_names_are_normalised(demo_db: Path) -> None:
    findings = scan_dependencies(read_db(demo_db), {"other.pkg": "0.1"})

    assert [f.subject for f in findings] == ["other-pkg:GHSA-test-0004"]


def test_fingerprint_does_not_depend_on_installed_version(demo_db: Path) -> None:
    db = read_db(demo_db)

    [first] = [f for f in scan_dependencies(db, {"demo": "1.0"}) if f.check == "vuln.GHSA-test-0001"]
    [later] = [f for f in scan_dependencies(db, {"demo": "1.9"}) if f.check == "vuln.GHSA-test-0001"]

    assert first.fingerprint == later.fingerprint


def test_unparsable_installed_version_is_skipped(demo_db: Path) -> None:
    assert scan_dependencies(read_db(demo_db), {"demo": "not a version!"}) == []


def test_missing_severity_defaults_to_medium(tmp_path: Path) -> None:
    entry = advisory()
    del entry["severity"]

    [finding] = scan_dependencies(read_db(write_db(tmp_path / "db.json", [entry])), {"demo": "1.0"})

    assert finding.severity is Severity.MEDIUM


def test_installed_packages_lists_this_environment() -> None:
    packages = installed_packages()

    assert "packaging" in packages and "bandit" in packages
    assert all(name == name.lower() and "_" not in name for name in packages)


# --- invalid files --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "problem"), [
    ("{not json", "not valid JSON"),
    ('{"format": "other/1", "updated": "2030-01-01", "advisories": []}', "format must be"),
    ('{"format": "oshal-vulndb/1", "updated": "yesterday", "advisories": []}', "not an ISO date"),
    ('{"format": "oshal-vulndb/1", "updated": "2030-01-01", "advisories": {}}', "advisories must be a list"),
])
def test_corrupt_file_raises_config_error_naming_file(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "vulndb.json"
    path.write_text(content)

    with pytest.raises(ConfigError, match=problem) as raised:
        read_db(path)
    assert str(path) in raised.value.message


@pytest.mark.parametrize(("override", "problem"), [
    ({"severity": "urgent"}, "severity must be one of"),
    ({"affected": []}, "affected must be a non-empty list"),
    ({"affected": [{"introduced": "0", "fixed": "banana split"}]}, "not a valid version"),
    ({"affected": [{"introduced": "2.0", "fixed": "1.0"}]}, "not after introduced"),
    ({"affected": [{"introduced": "0", "fixed": "2", "last_affected": "1"}]}, "both 'fixed' and 'last_affected'"),
    ({"package": ""}, "package must be a non-empty string"),
    ({"aliases": "CVE-1"}, "aliases must be a list of strings"),
])
def test_invalid_advisory_raises_config_error(tmp_path: Path, override: dict[str, Any], problem: str) -> None:
    path = write_db(tmp_path / "db.json", [advisory(**override)])

    with pytest.raises(ConfigError, match=problem):
        read_db(path)


def test_duplicate_advisory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="appears twice"):
        read_db(write_db(tmp_path / "db.json", [advisory(), advisory()]))


# --- refreshing -----------------------------------------------------------------------------------------------


def test_import_installs_a_newer_db_under_home(tmp_path: Path, demo_db: Path) -> None:
    home = tmp_path / "home"

    imported = import_db(demo_db, home)

    assert imported.source == home_db_path(home)
    assert home_db_path(home).exists()
    assert load_db(home).advisories == read_db(demo_db).advisories
    assert load_db(home).source == home_db_path(home)
    assert not [p for p in home_db_path(home).parent.iterdir() if p.name.startswith(".vulndb-")]


def test_import_refuses_an_older_db_unless_forced(tmp_path: Path, demo_db: Path) -> None:
    home = tmp_path / "home"
    import_db(demo_db, home)
    older = write_db(tmp_path / "older.json", [advisory("GHSA-old-0001")], updated="2029-06-01")

    with pytest.raises(Conflict, match="older than the one in use"):
        import_db(older, home)
    assert load_db(home).advisories == read_db(demo_db).advisories

    import_db(older, home, force=True)
    assert [a.id for a in load_db(home).advisories] == ["GHSA-old-0001"]


def test_import_refuses_a_db_older_than_the_seed(tmp_path: Path) -> None:
    stale = write_db(tmp_path / "stale.json", [advisory()], updated="2001-01-01")

    with pytest.raises(Conflict):
        import_db(stale, tmp_path / "home")


def test_import_of_a_corrupt_file_leaves_the_current_db(tmp_path: Path, demo_db: Path) -> None:
    home = tmp_path / "home"
    import_db(demo_db, home)
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"format": "oshal-vulndb/1"')

    with pytest.raises(ConfigError):
        import_db(corrupt, home)
    assert load_db(home).advisories == read_db(demo_db).advisories


def test_import_repairs_a_damaged_home_copy(tmp_path: Path, demo_db: Path) -> None:
    home = tmp_path / "home"
    home_db_path(home).parent.mkdir(parents=True)
    home_db_path(home).write_text("garbage")
    with pytest.raises(ConfigError):
        load_db(home)

    import_db(demo_db, home)

    assert load_db(home).advisories == read_db(demo_db).advisories


# --- OSV dumps ------------------------------------------------------------------------------------------------


def osv(id_: str, ecosystem: str, name: str, events: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    return {"schema_version": "1.4.0", "id": id_, "modified": "2031-02-03T04:05:06Z",
            "summary": f"{name} flaw", "affected": [{"package": {"ecosystem": ecosystem, "name": name},
                                                     "ranges": [{"type": "ECOSYSTEM", "events": events}]}],
            "references": [{"type": "WEB", "url": f"https://example.invalid/{id_}"}], **extra}


def osv_dump() -> list[dict[str, Any]]:
    return [
        osv("GHSA-aaaa-bbbb-cccc", "PyPI", "Demo_Lib", [{"introduced": "0"}, {"fixed": "1.2.0"},
                                                        {"introduced": "2.0.0"}, {"fixed": "2.1.0"}],
            aliases=["CVE-2031-0001"], database_specific={"severity": "MODERATE"}),
        # The PyPA twin of the same flaw: same CVE, no severity; it must not become a second advisory.
        osv("PYSEC-2031-1", "PyPI", "demo-lib", [{"introduced": "0"}, {"fixed": "1.2.0"}],
            aliases=["CVE-2031-0001", "GHSA-aaaa-bbbb-cccc"]),
        osv("GHSA-dddd-eeee-ffff", "PyPI", "other", [{"introduced": "1.0"}, {"last_affected": "1.4"}],
            aliases=["CVE-2031-0002"], database_specific={"severity": "CRITICAL"}),
        osv("GHSA-gggg-hhhh-iiii", "npm", "left-pad", [{"introduced": "0"}, {"fixed": "9.9.9"}]),
        osv("GHSA-jjjj-kkkk-llll", "PyPI", "gone", [{"introduced": "0"}], withdrawn="2031-01-01T00:00:00Z"),
        osv("PYSEC-2031-9", "PyPI", "legacy", [{"introduced": "0"}, {"fixed": "not-a-version!!"}]),
    ]


def write_osv_dir(root: Path) -> Path:
    root.mkdir(parents=True)
    for entry in osv_dump():
        (root / f"{entry['id']}.json").write_text(json.dumps(entry))
    return root


def test_osv_directory_import_converts_pypi_entries_only(tmp_path: Path) -> None:
    dump = write_osv_dir(tmp_path / "osv")

    db = import_db(dump, tmp_path / "home")

    assert sorted((a.package, a.id) for a in db.advisories) == [
        ("demo-lib", "GHSA-aaaa-bbbb-cccc"), ("other", "GHSA-dddd-eeee-ffff")]
    assert db.updated.isoformat() == "2031-02-03T04:05:06+00:00"
    demo = db.for_package("demo_lib")[0]
    assert demo.severity is Severity.MEDIUM
    assert demo.aliases == ("CVE-2031-0001",)
    assert [r.describe() for r in demo.affected] == [">=0,<1.2.0", ">=2.0.0,<2.1.0"]
    assert db.for_package("other")[0].severity is Severity.CRITICAL


def test_imported_osv_db_round_trips_and_scans(tmp_path: Path) -> None:
    home = tmp_path / "home"
    import_db(write_osv_dir(tmp_path / "osv"), home)

    findings = scan_dependencies(load_db(home), {"demo-lib": "2.0.5", "other": "1.4", "left-pad": "1.0"})

    assert {(f.subject, f.remediation) for f in findings} == {
        ("demo-lib:GHSA-aaaa-bbbb-cccc", "upgrade demo-lib to >= 2.1.0"),
        ("other:GHSA-dddd-eeee-ffff", "upgrade other to a release after 1.4; if none exists, remove or isolate it")}


def test_osv_zip_import(tmp_path: Path) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for entry in osv_dump():
            out.writestr(f"{entry['id']}.json", json.dumps(entry))

    db = import_db(archive, tmp_path / "home")

    assert {a.id for a in db.advisories} == {"GHSA-aaaa-bbbb-cccc", "GHSA-dddd-eeee-ffff"}


def test_osv_dump_without_pypi_entries_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "npm-only"
    root.mkdir()
    (root / "x.json").write_text(json.dumps(osv("GHSA-x", "npm", "left-pad", [{"introduced": "0"}])))

    with pytest.raises(ConfigError, match="no PyPI advisories"):
        import_db(root, tmp_path / "home")


def test_osv_dump_with_a_corrupt_file_is_refused(tmp_path: Path) -> None:
    dump = write_osv_dir(tmp_path / "osv")
    (dump / "broken.json").write_text("{")

    with pytest.raises(ConfigError, match=r"broken\.json is not valid JSON"):
        import_db(dump, tmp_path / "home")
    assert not home_db_path(tmp_path / "home").exists()
