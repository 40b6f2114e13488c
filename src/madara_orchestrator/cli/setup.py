"""``orchestrator setup``: create what the embedded backends need (SPEC §18 provisions AWS instead)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from madara_orchestrator.backends.filesystem import FilesystemObjectStore
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.cli.settings import RUN_OPTIONS, add_options, resolve
from madara_orchestrator.domain.errors import ConfigError

SETUP_OPTIONS = tuple(o for o in RUN_OPTIONS if o.name in ("data_dir", "sqlite_path", "storage_dir", "layer"))


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "setup", help="create the embedded database and object store (idempotent)"
    )
    add_options(parser, SETUP_OPTIONS)
    parser.add_argument("--aws", action="store_true", help="provision AWS resources (not built yet)")
    parser.set_defaults(handler=setup_command)


def setup_command(args: argparse.Namespace) -> int:
    values, problems = resolve(args, SETUP_OPTIONS)
    if args.aws:
        problems.append("--aws: provisioning S3, SQS, SNS and EventBridge is not built yet; omit it for embedded")
    if problems:
        raise ConfigError(problems)
    data_dir = Path(values["data_dir"])
    sqlite_path = Path(values["sqlite_path"] or data_dir / "orchestrator.db")
    storage_dir = Path(values["storage_dir"] or data_dir / "objects")

    async def create() -> None:
        """A file that is not our database (corrupt, another application's) is refused and left untouched."""
        database = SqliteDatabase(sqlite_path)
        try:
            await database.open()
        finally:
            await database.close()

    try:
        asyncio.run(create())
        FilesystemObjectStore(storage_dir)
    except OSError as exc:
        raise ConfigError([f"cannot create {exc.filename}: {exc.strerror}"]) from exc
    print(f"database: {sqlite_path} (schema up to date)")
    print(f"object store: {storage_dir}")
    return 0
