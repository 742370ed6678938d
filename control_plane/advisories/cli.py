"""``crbroker-server advisories import PATH...``: bring advisory files into the database.

PATH is an OSV record, a directory of them, an osv.dev ``all.zip``, an Alpine secdb file or
the Debian security tracker's JSON (any mix). Prints what changed, and every skipped record
with its reason on stderr; when anything changed, every project's latest scan is matched
again (from its stored SBOM: no image is scanned). :func:`run` takes the arguments after ``advisories`` and returns
the exit status: 0 when the files were read (some records may be skipped), 1 when nothing in
them could be read, 2 on a configuration or database error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError

from control_plane.advisories.advisory_files import read_paths
from control_plane.advisories.matching import AdvisoryIndex
from control_plane.advisories.scan_issues import RematchReport, rematch_latest_scans
from control_plane.advisories.services import ImportReport, import_advisories, load_advisories
from control_plane.db import Database, open_database
from control_plane.settings import SettingsError, load_settings

#: skipped records listed one by one; the rest are counted
SHOWN_SKIPS = 100


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="crbroker-server advisories", description="offline vulnerability advisories"
    )
    commands = top.add_subparsers(dest="action", required=True)
    load = commands.add_parser(
        "import",
        help="import OSV JSON / all.zip, Alpine secdb or Debian tracker JSON files",
    )
    load.add_argument("paths", nargs="+", metavar="PATH", help="file or directory")
    return top


async def import_paths(db: Database, paths: Sequence[str | os.PathLike[str]]) -> ImportReport:
    """Read ``paths`` and store what they hold, in one transaction."""
    outcome = await asyncio.to_thread(read_paths, paths)  # parsing is CPU work: off the loop
    async with db.sessions() as session, session.begin():
        return await import_advisories(session, outcome.advisories, outcome.skipped)


async def rematch(db: Database) -> RematchReport:
    """Match every project's latest scan against the advisories now stored."""
    async with db.sessions() as session, session.begin():
        index = AdvisoryIndex(await load_advisories(session))
        return await rematch_latest_scans(session, index)


async def _import(url: str, paths: Sequence[str]) -> tuple[ImportReport, RematchReport | None]:
    db = await open_database(url, pool_size=1)
    try:
        report = await import_paths(db, paths)
        return report, (await rematch(db) if report.changed else None)
    finally:
        await db.close()


def run(argv: Sequence[str], *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = parser().parse_args(list(argv))
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"crbroker-server: {exc}", file=err)
        return 2
    try:
        report, rematched = asyncio.run(_import(settings.database_url, args.paths))
    except (OSError, SQLAlchemyError) as exc:
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        print(f"crbroker-server: database {where}: {reason}", file=err)
        return 2
    for skip in report.skipped[:SHOWN_SKIPS]:
        print(f"skipped {skip}", file=err)
    if len(report.skipped) > SHOWN_SKIPS:
        print(f"... and {len(report.skipped) - SHOWN_SKIPS} more skipped", file=err)
    print(f"advisories: {report.summary()}", file=out)
    if rematched is not None:
        print(
            f"re-matched {rematched.scans} latest scans: {rematched.issues} issues"
            + (f", {rematched.unreadable} without a readable SBOM" if rematched.unreadable else ""),
            file=out,
        )
    read_any = report.new or report.updated or report.withdrawn or report.unchanged
    return 0 if read_any or not report.skipped else 1
