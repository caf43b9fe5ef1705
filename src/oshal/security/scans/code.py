"""Code and dependencies: bandit over the platform and installed connector code, and installed packages against
the offline vulnerability database (refreshed with `oshal security vulndb import`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from oshal.security.codescan import platform_roots, scan_code
from oshal.security.findings import Finding
from oshal.security.scans import ScanContext
from oshal.security.vulndb import installed_packages, load_db, scan_dependencies


async def scan(ctx: ScanContext) -> list[Finding]:
    roots = [*platform_roots(), *(Path(p) for p in ctx.connector_code)]
    code = await asyncio.to_thread(lambda: scan_code([r for r in roots if r.exists()]))
    db = await asyncio.to_thread(load_db, ctx.settings.home)
    return code + scan_dependencies(db, installed_packages())
