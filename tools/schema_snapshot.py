"""Dump the schema of a database freshly migrated by this checkout, for upgrade tests.

Starts an embedded Postgres in a temporary folder, creates the roles and the database, runs the migrations and
writes ``pg_dump --inserts`` of the result (schema plus the few rows migrations write, such as
``schema_migrations``) as plain SQL that ``tests/store/test_function_files.py`` loads and migrates further:

    git worktree add /tmp/old <commit> && cd /tmp/old && make dev
    .venv/bin/python tools/schema_snapshot.py <repo>/tests/store/data/schema_<version>.sql
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from oshal.embedded.postgres import EmbeddedPostgres, _bin_dir
from oshal.store.migrate import DATABASE, OWNER_ROLE, bootstrap_embedded, migrate


def snapshot() -> str:
    with tempfile.TemporaryDirectory(prefix="oshal-snapshot-") as home:
        pg = EmbeddedPostgres(Path(home))
        pg.start()
        try:
            bootstrap_embedded(pg.url(), "owner-pw", "api-pw", "report-pw")
            applied = migrate(pg.url(OWNER_ROLE, "owner-pw", DATABASE))
            dump = subprocess.run([str(_bin_dir() / "pg_dump"), "--inserts", "--no-comments",
                                   "--dbname", pg.url(database=DATABASE)],
                                  check=True, capture_output=True, text=True).stdout
        finally:
            pg.stop()
    # psql meta-commands (\restrict) are not SQL: the test loads the file over a plain connection.
    body = "\n".join(line for line in dump.splitlines() if not line.startswith("\\"))
    return f"-- oshal schema after migrations {applied[0]} .. {applied[-1]} (tools/schema_snapshot.py)\n{body}\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the .sql file to write")
    parser.parse_args().out.write_text(snapshot())
