"""One SQLite file (WAL) shared by the job store, the queue and the locks of the embedded default.

All statements of a process go through one connection on one worker thread: SQLite has a single
writer anyway, and this keeps the event loop free. Other processes on the same file wait on the
busy timeout. Transactions take ``BEGIN IMMEDIATE`` so two processes never deadlock on a lock upgrade,
and hold the connection (an asyncio lock) until they end, so no other statement of this process runs
inside them. The settlement transaction store opens its own ``SqliteDatabase`` on the same file, with its
own tables (``setup``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from madara_orchestrator.backends.base import WakeEvents
from madara_orchestrator.backends.sql import Dialect, Params, Row, SqlConnection
from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput

T = TypeVar("T")

SCHEMA: list[str] = [
    # version 1
    """
    CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        internal_id INTEGER NOT NULL,
        job_type TEXT NOT NULL,
        status TEXT NOT NULL,
        external_id TEXT NOT NULL DEFAULT '',
        metadata TEXT NOT NULL,
        version INTEGER NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        lease_owner TEXT,
        lease_expires_at REAL,
        orchestrator_version TEXT NOT NULL DEFAULT '',
        UNIQUE (job_type, internal_id)
    );
    CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, job_type, internal_id);
    CREATE INDEX IF NOT EXISTS jobs_type_internal ON jobs (job_type, internal_id);
    CREATE TABLE IF NOT EXISTS snos_batches (
        idx INTEGER PRIMARY KEY,
        aggregator_batch_index INTEGER,
        start_block INTEGER NOT NULL UNIQUE,
        end_block INTEGER NOT NULL UNIQUE,
        status TEXT NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS snos_batches_agg ON snos_batches (aggregator_batch_index);
    CREATE INDEX IF NOT EXISTS snos_batches_status ON snos_batches (status, idx);
    CREATE TABLE IF NOT EXISTS aggregator_batches (
        idx INTEGER PRIMARY KEY,
        start_block INTEGER NOT NULL UNIQUE,
        end_block INTEGER NOT NULL UNIQUE,
        status TEXT NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS aggregator_batches_status ON aggregator_batches (status, idx);
    CREATE TABLE IF NOT EXISTS locks (
        key TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS queue_messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL UNIQUE,
        queue TEXT NOT NULL,
        body TEXT NOT NULL,
        attributes TEXT NOT NULL DEFAULT '{}',
        sent_at REAL NOT NULL,
        visible_at REAL NOT NULL,
        receive_count INTEGER NOT NULL DEFAULT 0,
        receipt TEXT
    );
    CREATE INDEX IF NOT EXISTS queue_messages_visible ON queue_messages (queue, visible_at, seq);
    """,
    # version 2: prover webhooks find jobs by their external id
    """
    CREATE INDEX IF NOT EXISTS jobs_external_id ON jobs (external_id);
    """,
    # version 3: batch writes are guarded on a version, as job writes are. Existing rows start at 0, and the
    # doc (the full record) carries the same number. Block -> batch lookups need no new index: they probe the
    # UNIQUE index on start_block (the greatest start at or below the block), SPEC §5.12's lookup collection.
    """
    ALTER TABLE snos_batches ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE aggregator_batches ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    UPDATE snos_batches SET doc = json_set(doc, '$.version', version);
    UPDATE aggregator_batches SET doc = json_set(doc, '$.version', version);
    """,
    # version 4: paused stages (domain/pause.py), honoured by every instance and every restart
    """
    CREATE TABLE IF NOT EXISTS pauses (
        stage TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        paused_by TEXT NOT NULL,
        since REAL NOT NULL
    );
    """,
    # version 5: the outbox (backends/outbox.py): messages written in a job's transaction, relayed to SQS
    """
    CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        queue TEXT NOT NULL,
        body TEXT NOT NULL,
        written_at REAL NOT NULL,
        send_at REAL NOT NULL
    );
    """,
    # version 6: a prover's webhook that came before its job waited on it (JobStore.remember_prover_notice)
    """
    CREATE TABLE IF NOT EXISTS prover_notices (
        external_id TEXT NOT NULL,
        job_type TEXT NOT NULL,
        received_at REAL NOT NULL,
        PRIMARY KEY (external_id, job_type)
    );
    """,
]


SQLITE_HEADER = b"SQLite format 3\x00"
COMPANION_TABLES = frozenset({"sqlite_sequence", "settlement_tx_keys", "settlement_tx_attempts"})
"""Tables of ours that other modules may create in the same file before the schema is applied (the
settlement transaction store)."""


def _now() -> tuple[str, list[Any]]:
    return "?", [time.time()]


SQLITE = Dialect(
    name="sqlite",
    for_update="",
    skip_locked="",
    text_order="",
    nulls_first="",
    integrity_errors=(sqlite3.IntegrityError,),
    uuid=str,
    big_int=lambda value: None if value is None else str(value),
    now=_now,
    sender_lock=None,
)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


class _Connection:
    """``SqlConnection`` on the database's one connection (each call one hop to its worker thread)."""

    def __init__(self, db: SqliteDatabase, *, count_writes: bool) -> None:
        self._db = db
        self._count_writes = count_writes

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        row: Row | None = await self._db._call(lambda conn: conn.execute(sql, params).fetchone())
        return row

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        rows: list[Row] = await self._db._call(lambda conn: conn.execute(sql, params).fetchall())
        return rows

    async def execute(self, sql: str, params: Params = ()) -> int:
        if self._count_writes:
            self._db.write_transactions += 1
        rowcount: int = await self._db._call(lambda conn: conn.execute(sql, params).rowcount)
        return rowcount


class SqliteDatabase:
    """One SQLite file. ``setup`` prepares a new connection's file (default: the orchestrator's schema,
    after checking the file is ours)."""

    dialect = SQLITE

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_s: float = 15.0,
        synchronous: str = "NORMAL",
        setup: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        self.path = str(path)
        self._busy_timeout_s = busy_timeout_s
        self._synchronous = synchronous
        self._setup = setup
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._held: asyncio.Lock | None = None
        self._held_loop: asyncio.AbstractEventLoop | None = None
        self.write_transactions = 0
        """Write transactions this process began (an idle orchestrator begins none)."""
        self.clock: Callable[[], float] = time.time
        self.wakeups: WakeEvents[str] = WakeEvents()
        """Receivers of this process waiting on a queue (``notify``; ``SqliteQueue`` fires them all on a commit
        of another process)."""

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path != ":memory:":
                self._check_header()
                try:
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise self._refusal(f"cannot be created ({exc.strerror or exc})") from exc
            try:
                conn = sqlite3.connect(
                    self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
                )
            except sqlite3.Error as exc:
                raise self._refusal(f"cannot be opened ({exc})") from exc
            try:
                conn.row_factory = _dict_row
                conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_s * 1000)}")
                if self._setup is None:
                    self._check_owner(conn)  # before anything writes to the file (WAL mode rewrites its header)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
                (self._setup or self._migrate)(conn)
            except sqlite3.DatabaseError as exc:
                conn.close()
                if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                    raise BackendUnavailable(f"SQLite database {self.path}: {exc}") from exc
                raise self._refusal(f"cannot be opened ({exc})") from exc
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _refusal(self, what: str) -> InvalidInput:
        return InvalidInput(
            f"{self.path} {what}; it is left as it is: move it away, or choose another --data-dir (or --sqlite-path)"
        )

    def _check_header(self) -> None:
        """A file that exists and is not empty must be an SQLite database (its first 16 bytes say so)."""
        try:
            with open(self.path, "rb") as file:
                header = file.read(len(SQLITE_HEADER))
        except FileNotFoundError:
            return
        except IsADirectoryError:
            raise self._refusal("is a directory, not an SQLite database") from None
        except OSError as exc:
            raise self._refusal(f"cannot be read ({exc.strerror or exc})") from exc
        if header and header != SQLITE_HEADER:
            raise self._refusal("is not an SQLite database")

    def _check_owner(self, conn: sqlite3.Connection) -> None:
        """Only read here: a database with tables but no ``schema_version`` belongs to another application,
        and one whose schema is newer than ours to a newer orchestrator; neither is touched."""
        tables = {row["name"] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "schema_version" not in tables:
            tables -= COMPANION_TABLES
            if not tables:
                return
            shown = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
            raise self._refusal(f"is not an orchestrator database (it holds the tables {shown}, no schema_version)")
        version = conn.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()["v"] or 0
        if version > len(SCHEMA):
            raise self._refusal(
                f"has schema version {version}, newer than this orchestrator's {len(SCHEMA)}: "
                "it was written by a newer orchestrator, which is the one to run on it"
            )

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = conn.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()["v"] or 0
            for number, script in enumerate(SCHEMA, start=1):
                if number > current:
                    for statement in script.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            conn = self._connection()
            try:
                return fn(conn)
            except sqlite3.IntegrityError:
                raise  # a constraint the caller tells about
            except sqlite3.OperationalError as exc:
                raise BackendUnavailable(f"SQLite database {self.path}: {exc}") from exc
            except sqlite3.DatabaseError as exc:  # corrupted under us ("database disk image is malformed")
                raise BackendUnavailable(f"SQLite database {self.path} is damaged: {exc}") from exc

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, fn)

    # -- SqlDatabase ------------------------------------------------------------------------------

    def _holder(self) -> asyncio.Lock:
        """The lock that gives the connection to one block at a time (one per event loop using the database)."""
        loop = asyncio.get_running_loop()
        if self._held is None or self._held_loop is not loop:
            self._held, self._held_loop = asyncio.Lock(), loop
        return self._held

    @asynccontextmanager
    async def use(self) -> AsyncIterator[SqlConnection]:
        async with self._holder():
            yield _Connection(self, count_writes=True)

    @asynccontextmanager
    async def atomic(self) -> AsyncIterator[SqlConnection]:
        async with self._holder():
            self.write_transactions += 1
            try:  # BEGIN too: cancelled while it waits on another process, it may still begin
                await self._call(lambda conn: conn.execute("BEGIN IMMEDIATE"))
                yield _Connection(self, count_writes=False)
                await self._call(lambda conn: conn.execute("COMMIT"))
            except BaseException:
                await self._call(_rollback)
                raise

    async def notify(self, conn: SqlConnection, queue: str) -> None:
        """Receivers of this process wake (they wait on this database's lock, so they look after the commit);
        other processes' receivers see the commit move ``data_version`` (``SqliteQueue``)."""
        self.wakeups.fire(queue)

    async def wake_event(self, queue: str) -> asyncio.Event:
        return self.wakeups.event(queue)

    async def data_version(self) -> int:
        """A number that moves when another connection (another process) commits to the file."""
        async with self.use() as conn:
            row = await conn.fetch_one("PRAGMA data_version")
        assert row is not None
        return int(row["data_version"])

    async def open(self) -> None:
        """Create the file and apply the schema now, so that a bad path fails at startup."""
        await self._call(lambda conn: None)

    def open_now(self) -> None:
        """``open``, synchronously (in the calling thread)."""
        self._run(lambda conn: None)

    async def ping(self) -> None:
        async with self.use() as conn:
            await conn.fetch_one("SELECT 1 AS one")

    async def close(self) -> None:
        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self.close_now)
        self._executor.shutdown(wait=True)

    def close_now(self) -> None:
        """Close the connection from any thread (a synchronous close): the database is not used after it."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        self._executor.shutdown(wait=False)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")
