"""``orchestrator cost [--since INDEX|ISO-TIME]``: the cost ledger, per batch and in total, read from the
orchestrator's database (the same ``--data-dir`` / ``--sqlite-path`` / ``--postgres-url`` settings and
``MADARA_ORCHESTRATOR_*`` variables as ``run``). It writes nothing: a missing database is an error, not a
new one, and the object store is only read (for the bytes; not on S3).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from madara_orchestrator.cli.settings import add_options, resolve
from madara_orchestrator.cli.settings.model import option_named
from madara_orchestrator.domain.errors import ConfigError, InvalidInput
from madara_orchestrator.engine.cost import MAX_LEDGER_BATCHES, CostLedger, ledger_json
from madara_orchestrator.interfaces import Database, ObjectStore

OPTIONS = tuple(option_named(name) for name in ("layer", "data_dir", "sqlite_path", "storage_dir", "postgres_url"))
"""``run``'s options that say where the database and the artifacts are, and what a settlement covers."""

COLUMNS = (
    ("batch", "index"),
    ("blocks", None),
    ("felts", "felts"),
    ("blobs", "blobs"),
    ("fill", "fill"),
    ("exec gas", "gas_used"),
    ("exec fee", "execution_fee_wei"),
    ("blob gas", "blob_gas_used"),
    ("blob fee", "blob_fee_wei"),
    ("fee", "fee_wei"),
    ("fee/block", "fee_per_block_wei"),
    ("tries", "attempts"),
    ("to settle", "seconds_to_settle"),
    ("bytes", "bytes_stored"),
)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "cost",
        help="what each batch cost to settle, and the totals (reads the database; writes nothing)",
        description=(
            "Prints the cost ledger: per batch (an aggregator batch on an L2, a SNOS batch on an L3) its blocks, "
            "felts, blobs and fill, execution and blob gas and fees (from the final receipt), attempts, the time "
            "from its first block to settled and the bytes of its artifacts in storage; then the totals. Reads "
            "the database run uses (same flags and MADARA_ORCHESTRATOR_* variables); writes nothing. Fees are in "
            "wei (fri on an L3)."
        ),
    )
    parser.add_argument(
        "--since", default=None, help="from this batch index, or this ISO 8601 time (batches settled then or later)"
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=MAX_LEDGER_BATCHES,
        help=f"the latest batches covered (default and most: {MAX_LEDGER_BATCHES})",
    )
    parser.add_argument("--json", action="store_true", help="print the ledger as JSON (as GET /cost answers it)")
    add_options(parser, OPTIONS)
    parser.set_defaults(handler=cost_command)


def cost_command(args: argparse.Namespace) -> int:
    values, problems = resolve(args, OPTIONS)
    if problems:
        raise ConfigError(problems)
    if not 1 <= args.limit <= MAX_LEDGER_BATCHES:
        raise InvalidInput(f"--limit must be from 1 to {MAX_LEDGER_BATCHES}, got {args.limit}")
    data = asyncio.run(read_ledger(values, since=args.since, limit=args.limit))
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print("\n".join(render(data)))
    return 0


async def read_ledger(values: dict[str, Any], *, since: str | None, limit: int) -> dict[str, Any]:
    aggregated = values["layer"] != "l3"
    sqlite_path = None if values["postgres_url"] else _sqlite_path(values)
    async with contextlib.AsyncExitStack() as exits:
        db = await _open_database(values, sqlite_path, exits)
        ledger = CostLedger(db, _object_store(values), settles_snos=not aggregated)
        return await ledger_json(ledger, since=since, limit=limit, aggregated=aggregated)


def _sqlite_path(values: dict[str, Any]) -> Path:
    path = Path(values["sqlite_path"] or Path(values["data_dir"]) / "orchestrator.db")
    if not path.is_file():
        raise InvalidInput(
            f"no orchestrator database at {path}: give cost the --data-dir, --sqlite-path or --postgres-url run uses"
        )
    return path


async def _open_database(values: dict[str, Any], path: Path | None, exits: contextlib.AsyncExitStack) -> Database:
    if path is None:
        from madara_orchestrator.backends.postgres import PostgresStore
        from madara_orchestrator.backends.postgres_db import PostgresDatabase

        database = PostgresDatabase(values["postgres_url"])
        await database.open()
        exits.push_async_callback(database.close)
        return PostgresStore(database)
    from madara_orchestrator.backends.sqlite import SqliteStore
    from madara_orchestrator.backends.sqlite_db import SqliteDatabase

    sqlite = SqliteDatabase(path)
    await sqlite.open()
    exits.push_async_callback(sqlite.close)
    return SqliteStore(sqlite)


def _object_store(values: dict[str, Any]) -> ObjectStore | None:
    """The filesystem object store run uses, when it exists (never created here)."""
    from madara_orchestrator.backends.filesystem import FilesystemObjectStore

    path = Path(values["storage_dir"] or Path(values["data_dir"]) / "objects")
    return FilesystemObjectStore(path) if path.is_dir() else None


def _cell(line: dict[str, Any], key: str | None) -> str:
    if key is None:
        return f"{line['start_block']}-{line['end_block']} ({line['blocks']})"
    value = line.get(key)
    if value is None:
        return "-"
    if key == "fill":
        return f"{value:.1%}"
    if key == "seconds_to_settle":
        return f"{value:.0f} s"
    return str(value)


def render(data: dict[str, Any]) -> list[str]:
    """The ledger as a table (one row a batch, ``-``: not recorded or does not apply), then the totals."""
    unit = "wei" if data["unit"] == "ETH" else "fri"
    rows = [[title for title, _ in COLUMNS]]
    for line in data["batches"]:
        rows.append([_cell(line, key) for _, key in COLUMNS] + ([] if line["settled"] else ["(not settled)"]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    out = ["  ".join(cell.rjust(widths[i]) if i < len(widths) else cell for i, cell in enumerate(row)) for row in rows]
    out.append("")
    out.extend(totals(data["totals"], unit, data["batch_kind"]))
    return out


def totals(t: dict[str, Any], unit: str, kind: str) -> Sequence[str]:
    def amount(key: str) -> str:
        return "-" if t[key] is None else f"{t[key]} {unit}"

    fill = "-" if t["fill"] is None else f"{t['fill']:.1%}"
    mean = "-" if t["mean_seconds_to_settle"] is None else f"{t['mean_seconds_to_settle']:.0f} s"
    return [
        f"{kind} batches: {t['batches']} ({t['settled']} settled, {t['with_fee']} with a recorded fee)",
        f"blocks settled: {t['blocks']}  felts: {t['felts'] if t['felts'] is not None else '-'}  "
        f"blobs: {t['blobs'] if t['blobs'] is not None else '-'}  fill: {fill}",
        f"execution gas: {t['gas_used'] if t['gas_used'] is not None else '-'}  execution fee: "
        f"{amount('execution_fee_wei')}",
        f"blob gas: {t['blob_gas_used'] if t['blob_gas_used'] is not None else '-'}  "
        f"blob fee: {amount('blob_fee_wei')}",
        f"fee: {amount('fee_wei')}  per block: {amount('fee_per_block_wei')}",
        f"attempts: {t['attempts']} ({t['replacements']} replacements)  mean time to settle: {mean}  "
        f"bytes stored: {t['bytes_stored'] if t['bytes_stored'] is not None else '-'}",
    ]
