"""PostgreSQL for several orchestrator processes: one connection pool per process, shared by the job store,
the queue, the locks and the settlement transaction store; versioned schema migrations applied at open;
the database server's clock; one LISTEN connection per process for queue wake-ups.

Times are stored as epoch seconds (``double precision``), as the SQLite backend stores them. Leases, lock
expiry and message visibility are reckoned on the database server's clock, so that processes on machines
whose clocks disagree still agree: see ``DatabaseClock``.

Errors at the edge: an unreachable server is ``BackendUnavailable`` (wait and retry); a malformed URL, a
refused login or a missing database is ``InvalidInput`` (fix the configuration). Messages name the server
by its masked URL: the password is never printed nor logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from madara_orchestrator.backends.base import WakeEvents
from madara_orchestrator.backends.sql import Dialect, Params, Row, SqlConnection
from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput

log = logging.getLogger(__name__)
# The pool's own warnings (each failed reconnection, several lines each) repeat what this module and the
# engine already say once, in one line; its errors still show.
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)

Connection = AsyncConnection[DictRow]
"""A pooled connection: autocommit (a transaction is ``async with conn.transaction()``), rows as dicts."""

MIGRATION_LOCK = 0x6D61_6461_7261_0001
"""``pg_advisory_xact_lock`` key held while migrating: processes starting together migrate one at a time."""

MIGRATIONS: tuple[str, ...] = (
    # version 1: the SQLite schema (version 3) in PostgreSQL types, plus the settlement transaction store.
    # Block ranges of a kind of batch are disjoint: the explicit checks give the error message, the exclusion
    # constraints hold even against two writers racing.
    """
    CREATE TABLE jobs (
        id uuid PRIMARY KEY,
        internal_id bigint NOT NULL,
        job_type text NOT NULL,
        status text NOT NULL,
        external_id text NOT NULL DEFAULT '',
        metadata jsonb NOT NULL,
        version integer NOT NULL,
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL,
        lease_owner text,
        lease_expires_at double precision,
        orchestrator_version text NOT NULL DEFAULT '',
        UNIQUE (job_type, internal_id)
    );
    CREATE INDEX jobs_status ON jobs (status, job_type, internal_id);
    CREATE INDEX jobs_external_id ON jobs (external_id);
    CREATE INDEX jobs_updated_at ON jobs (status, updated_at);

    CREATE TABLE snos_batches (
        idx bigint PRIMARY KEY,
        aggregator_batch_index bigint,
        start_block bigint NOT NULL UNIQUE,
        end_block bigint NOT NULL UNIQUE,
        status text NOT NULL,
        version integer NOT NULL DEFAULT 0,
        doc jsonb NOT NULL,
        CONSTRAINT snos_batches_disjoint EXCLUDE USING gist (int8range(start_block, end_block, '[]') WITH &&)
    );
    CREATE INDEX snos_batches_agg ON snos_batches (aggregator_batch_index);
    CREATE INDEX snos_batches_status ON snos_batches (status, idx);

    CREATE TABLE aggregator_batches (
        idx bigint PRIMARY KEY,
        start_block bigint NOT NULL UNIQUE,
        end_block bigint NOT NULL UNIQUE,
        status text NOT NULL,
        version integer NOT NULL DEFAULT 0,
        doc jsonb NOT NULL,
        CONSTRAINT aggregator_batches_disjoint EXCLUDE USING gist (int8range(start_block, end_block, '[]') WITH &&)
    );
    CREATE INDEX aggregator_batches_status ON aggregator_batches (status, idx);

    CREATE TABLE locks (
        key text PRIMARY KEY,
        owner text NOT NULL,
        expires_at double precision NOT NULL
    );

    CREATE TABLE queue_messages (
        seq bigserial PRIMARY KEY,
        message_id text NOT NULL UNIQUE,
        queue text NOT NULL,
        body text NOT NULL,
        attributes jsonb NOT NULL DEFAULT '{}',
        sent_at double precision NOT NULL,
        visible_at double precision NOT NULL,
        receive_count integer NOT NULL DEFAULT 0,
        receipt text
    );
    CREATE INDEX queue_messages_visible ON queue_messages (queue, visible_at, seq);
    CREATE INDEX queue_messages_sent ON queue_messages (queue, sent_at);

    CREATE TABLE settlement_tx_keys (
        key text PRIMARY KEY,
        sender text NOT NULL,
        nonce bigint,
        status text NOT NULL,
        final_tx_hash text,
        fee_paid_wei numeric(78, 0),
        block_number bigint,
        error text,
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL
    );
    CREATE INDEX settlement_tx_keys_sender ON settlement_tx_keys (sender, status, nonce);
    CREATE TABLE settlement_tx_attempts (
        key text NOT NULL REFERENCES settlement_tx_keys (key),
        attempt_no integer NOT NULL,
        nonce bigint NOT NULL,
        tx_hash text,
        gas_multiplier double precision NOT NULL,
        max_fee_per_gas numeric(78, 0) NOT NULL,
        max_priority_fee_per_gas numeric(78, 0) NOT NULL,
        max_fee_per_blob_gas numeric(78, 0) NOT NULL,
        status text NOT NULL,
        error text,
        raw bytea,
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL,
        PRIMARY KEY (key, attempt_no)
    );
    """,
    # version 2: paused stages (domain/pause.py), honoured by every instance and every restart
    """
    CREATE TABLE pauses (
        stage text PRIMARY KEY,
        reason text NOT NULL,
        paused_by text NOT NULL,
        since double precision NOT NULL
    );
    """,
    # version 3: the outbox (backends/outbox.py): messages written in a job's transaction, relayed to SQS
    """
    CREATE TABLE outbox (
        seq bigserial PRIMARY KEY,
        queue text NOT NULL,
        body text NOT NULL,
        written_at double precision NOT NULL,
        send_at double precision NOT NULL
    );
    """,
    # version 4: a prover's webhook that came before its job waited on it (JobStore.remember_prover_notice)
    """
    CREATE TABLE prover_notices (
        external_id text NOT NULL,
        job_type text NOT NULL,
        received_at double precision NOT NULL,
        PRIMARY KEY (external_id, job_type)
    );
    """,
)

SERVER_EPOCH_SQL = "SELECT extract(epoch FROM clock_timestamp())::double precision AS t"
"""The server's wall clock now (``clock_timestamp``, not the transaction's start ``now()``), epoch seconds."""

SQL_NOW = "extract(epoch FROM clock_timestamp())"
"""The same, as an expression to put in a statement."""

CHANNEL = "orchestrator_queue"
"""The NOTIFY channel of the queue; the payload is the name of the queue that has a new or returned message."""


def _now() -> tuple[str, list[Any]]:
    return SQL_NOW, []


POSTGRES = Dialect(
    name="postgres",
    for_update=" FOR UPDATE",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    text_order=' COLLATE "C"',
    nulls_first=" NULLS FIRST",
    integrity_errors=(psycopg.IntegrityError,),
    uuid=lambda value: value,
    big_int=lambda value: value,
    now=_now,
    sender_lock="SELECT pg_advisory_xact_lock(?, hashtext(?))",
)


@functools.lru_cache(maxsize=512)
def _placeholders(statement: str) -> str:
    return statement.replace("%", "%%").replace("?", "%s")


class _Statements:
    """``SqlConnection`` on a pooled psycopg connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        return await (await self._conn.execute(_placeholders(sql), list(params))).fetchone()

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        rows: list[Row] = list(await (await self._conn.execute(_placeholders(sql), list(params))).fetchall())
        return rows

    async def execute(self, sql: str, params: Params = ()) -> int:
        return (await self._conn.execute(_placeholders(sql), list(params))).rowcount


_URL_PASSWORD = re.compile(r"(://[^:/?#@]*:)[^/?#]*@")  # to the last @ of the authority: "p@ss" is hidden whole
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*")


def mask_url(url: str) -> str:
    """The URL without its password (``postgresql://user:***@host:port/db``), for messages and logs."""
    return _QUERY_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", url))


class DatabaseClock:
    """The database server's clock, read without a round trip: ``time.time()`` plus an offset measured
    against the server at open and again every ``sync_every_s`` (at the next use of the pool after that).

    Callable (``clock()``) and a ``Clock`` (``clock.now()``): pass it wherever a clock is taken.
    """

    def __init__(self, *, sync_every_s: float = 5.0) -> None:
        self.sync_every_s = sync_every_s
        self.offset_s = 0.0
        """Server clock minus ours, as last measured (half the round trip taken off)."""
        self._synced_at: float | None = None

    def __call__(self) -> float:
        return time.time() + self.offset_s

    def now(self) -> float:
        return self()

    @property
    def due(self) -> bool:
        return self._synced_at is None or time.monotonic() - self._synced_at >= self.sync_every_s

    async def sync(self, conn: Connection) -> None:
        before = time.time()
        server = await server_epoch(conn)
        after = time.time()
        self.offset_s = server - (before + after) / 2
        self._synced_at = time.monotonic()


async def server_epoch(conn: Connection) -> float:
    row = await (await conn.execute(SERVER_EPOCH_SQL)).fetchone()
    assert row is not None
    return float(row["t"])


class PostgresDatabase:
    """A pool of connections to one PostgreSQL database, its schema brought up to date by ``open()``.

    ``url`` is a ``postgresql://user:password@host:port/dbname?options`` URL (libpq's). ``open()`` first
    connects once on its own, so that a wrong URL or an unreachable server is told in one line, then migrates
    and fills the pool. ``close()`` closes the pool and the LISTEN connection.
    """

    dialect = POSTGRES

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 20,
        connect_timeout_s: float = 10.0,
        acquire_timeout_s: float = 30.0,
        clock_sync_s: float = 5.0,
    ) -> None:
        self.display_url = mask_url(url)
        self._password = _check_url(url, self.display_url)
        self._conninfo = url
        if "connect_timeout" not in conninfo_to_dict(url):  # libpq waits forever by default
            self._conninfo = make_conninfo(url, connect_timeout=max(1, round(connect_timeout_s)))
        self._min_size = min_size
        self._max_size = max(min_size, max_size)
        self._acquire_timeout_s = acquire_timeout_s
        self.clock = DatabaseClock(sync_every_s=clock_sync_s)
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._open_lock = asyncio.Lock()
        self._closed = False
        self.notifications = Notifications(self)

    # -- opening and closing ---------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, migrate the schema, fill the pool and read the server's clock. Idempotent; a try that
        fails (``BackendUnavailable``: the server is down) closes what it opened, so it may be called again."""
        async with self._open_lock:
            if self._closed:
                raise BackendUnavailable(f"PostgreSQL {self.display_url}: this handle was closed")
            if self._pool is not None:
                return
            conn = await self.connect()
            try:
                await self._migrate(conn)
                await self.clock.sync(conn)
            except psycopg.Error as exc:
                raise self._error(exc) from exc
            finally:
                await conn.close()
            pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
                self._conninfo,
                connection_class=Connection,
                kwargs={"autocommit": True, "row_factory": dict_row},
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=self._acquire_timeout_s,
                check=AsyncConnectionPool.check_connection,
                name=f"orchestrator {self.display_url}",
                open=False,
            )
            try:
                await pool.open(wait=True, timeout=self._acquire_timeout_s)
            except BaseException as exc:  # a failed or cancelled try leaves no pool behind: open() may run again
                await pool.close()
                if isinstance(exc, PoolTimeout):
                    raise BackendUnavailable(
                        f"PostgreSQL {self.display_url}: the connection pool could not be filled in"
                        f" {self._acquire_timeout_s:g} s"
                    ) from exc
                raise
            self._pool = pool

    async def close(self) -> None:
        self._closed = True
        await self.notifications.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def connect(self) -> Connection:
        """A new connection outside the pool (autocommit, dict rows); the caller closes it. Connection
        failures are told in one line: ``BackendUnavailable`` or ``InvalidInput`` (see the module doc)."""
        if self._closed:
            raise BackendUnavailable(f"PostgreSQL {self.display_url}: this handle was closed")
        try:
            return await Connection.connect(self._conninfo, autocommit=True, row_factory=dict_row)
        except psycopg.Error as exc:
            raise self._connect_error(exc) from None

    # -- using ------------------------------------------------------------------------------------

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A pooled connection for the block. Driver errors of the block that mean the server is gone
        (connection lost, pool exhausted, server shutting down) become ``BackendUnavailable``."""
        pool = self._pool
        if pool is None:
            await self.open()
            pool = self._pool
            assert pool is not None
        try:
            async with pool.connection() as conn:
                if self.clock.due:
                    await self.clock.sync(conn)
                yield conn
        except PoolTimeout as exc:
            raise BackendUnavailable(
                f"PostgreSQL {self.display_url}: no connection free or reachable within {self._acquire_timeout_s:g} s"
            ) from exc
        except (psycopg.OperationalError, psycopg.InterfaceError, psycopg.DataError) as exc:
            raise self._error(exc) from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A pooled connection inside one transaction: committed when the block ends, rolled back if it raises."""
        async with self.connection() as conn, conn.transaction():
            yield conn

    @asynccontextmanager
    async def use(self) -> AsyncIterator[SqlConnection]:
        """``SqlDatabase``: a pooled connection, each statement committed on its own."""
        async with self.connection() as conn:
            yield _Statements(conn)

    @asynccontextmanager
    async def atomic(self) -> AsyncIterator[SqlConnection]:
        """``SqlDatabase``: a pooled connection inside one transaction."""
        async with self.transaction() as conn:
            yield _Statements(conn)

    async def notify(self, conn: SqlConnection, queue: str) -> None:
        """NOTIFY the queue's receivers in every process (delivered when ``conn``'s transaction commits)."""
        await conn.execute("SELECT pg_notify(?, ?)", (CHANNEL, queue))

    async def wake_event(self, queue: str) -> asyncio.Event:
        return await self.notifications.event(CHANNEL, queue)

    async def ping(self) -> None:
        async with self.connection() as conn:
            await conn.execute("SELECT 1")

    async def server_time(self) -> float:
        """The database server's clock now, in epoch seconds (one round trip; ``clock`` needs none)."""
        async with self.connection() as conn:
            return await server_epoch(conn)

    # -- migrations --------------------------------------------------------------------------------

    async def schema_version(self) -> int:
        async with self.connection() as conn:
            return await _current_version(conn)

    async def _migrate(self, conn: Connection) -> None:
        """Apply the migrations this database lacks, in one transaction under an advisory lock: a second
        process opening at the same time waits, then finds them applied."""
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version integer PRIMARY KEY,"
                    " applied_at timestamptz NOT NULL DEFAULT clock_timestamp())"
                )
                current = await _current_version(conn)
                if current > len(MIGRATIONS):
                    raise InvalidInput(
                        f"PostgreSQL {self.display_url} has schema version {current}, newer than this orchestrator's"
                        f" {len(MIGRATIONS)}: it was written by a newer orchestrator, which is the one to run on it"
                    )
                for number, script in enumerate(MIGRATIONS, start=1):
                    if number > current:
                        await conn.execute(script)  # several statements: allowed without parameters
                        await conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (number,))
                        log.info("PostgreSQL %s: applied schema migration %d", self.display_url, number)
        except (psycopg.errors.DuplicateTable, psycopg.errors.DuplicateObject) as exc:
            raise InvalidInput(
                f"PostgreSQL {self.display_url} already holds tables this orchestrator did not create"
                f" ({_first_line(exc)}): give it a database of its own"
            ) from None
        except psycopg.errors.InsufficientPrivilege as exc:
            raise InvalidInput(
                f"PostgreSQL {self.display_url}: the user may not create the orchestrator's tables"
                f" ({_first_line(exc)}): grant it CREATE on the database's schema, or use the database's owner"
            ) from None

    # -- errors ------------------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        text = mask_url(text)
        return text.replace(self._password, "***") if self._password else text

    def _connect_error(self, exc: psycopg.Error) -> InvalidInput | BackendUnavailable:
        reason = self._redact(_first_line(exc).removeprefix("connection failed: "))
        if any(marker in reason for marker in _REFUSALS):
            return InvalidInput(f"PostgreSQL {self.display_url} refused the connection: {reason}")
        return BackendUnavailable(f"PostgreSQL {self.display_url} is unreachable: {reason}")

    def _error(self, exc: psycopg.Error) -> BackendUnavailable | InvalidInput:
        if isinstance(exc, psycopg.DataError):
            return InvalidInput(f"PostgreSQL {self.display_url} refused a value: {self._redact(_first_line(exc))}")
        return BackendUnavailable(f"PostgreSQL {self.display_url}: {self._redact(_first_line(exc))}")


_REFUSALS = (
    "password authentication failed",
    "authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
    "password is required",
    "no password supplied",
    "permission denied",
    "SSL is not enabled",
    "server does not support SSL",
    "invalid",
)
"""Connection failures the server or libpq explained: a wrong user, password, database or option; fix the
URL. Anything else (refused, timed out, name not resolved, server starting) is an outage."""


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _check_url(url: str, display: str) -> str:
    """Refuse what is not a PostgreSQL URL libpq can use; the password in it (to redact from messages)."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise InvalidInput(f"PostgreSQL URL {display!r} must start with postgresql:// (postgresql://user:pass@host/db)")
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error as exc:
        raise InvalidInput(f"PostgreSQL URL {display!r} is malformed: {mask_url(_first_line(exc))}") from None
    for port in str(params.get("port", "")).split(","):
        if port and not port.isdigit():
            raise InvalidInput(f"PostgreSQL URL {display!r}: the port {port!r} is not a number")
    return str(params.get("password") or "")


async def _current_version(conn: Connection) -> int:
    row = await (await conn.execute("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")).fetchone()
    return 0 if row is None else int(row["v"])


class Notifications:
    """One LISTEN connection per database handle (so per process), shared by every waiter.

    ``event(channel, payload)`` returns the asyncio.Event that the next notification with that payload sets:
    take it BEFORE looking for work, then wait on it, and a notification that arrives in between is not
    missed. The connection is made on first use; if it is lost, every waiter is woken (notifications may
    have been missed) and it is made again in the background.
    """

    def __init__(self, db: PostgresDatabase, *, reconnect_max_s: float = 10.0) -> None:
        self._db = db
        self._reconnect_max_s = reconnect_max_s
        self._channels: set[str] = set()
        self._events: WakeEvents[tuple[str, str]] = WakeEvents()
        self._conn: Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def event(self, channel: str, payload: str) -> asyncio.Event:
        if self._task is None or self._task.done() or channel not in self._channels:
            async with self._lock:
                await self._listen(channel)
        return self._events.event((channel, payload))

    async def _listen(self, channel: str) -> None:
        if self._conn is None:
            await self._connect()
        if channel not in self._channels:
            assert self._conn is not None
            await self._conn.execute(_listen(channel))
            self._channels.add(channel)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="postgres-notifications")

    async def _run(self) -> None:
        pause = 0.5
        while True:
            try:
                if self._conn is None:
                    async with self._lock:
                        if self._conn is None:
                            await self._connect()
                    self._events.fire_all()  # what was sent while no one listened
                    pause = 0.5
                conn = self._conn
                assert conn is not None
                async for notify in conn.notifies():
                    self._events.fire((notify.channel, notify.payload))
            except (psycopg.Error, BackendUnavailable, InvalidInput) as exc:
                log.warning(
                    "PostgreSQL %s: the LISTEN connection is lost (%s); reconnecting", self._db.display_url, exc
                )
                await self._drop()
                self._events.fire_all()
                await asyncio.sleep(pause)
                pause = min(pause * 2, self._reconnect_max_s)

    async def _connect(self) -> None:
        conn = await self._db.connect()
        try:
            for channel in self._channels:
                await conn.execute(_listen(channel))
        except psycopg.Error:
            await conn.close()
            raise
        self._conn = conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._drop()
        self._channels.clear()
        self._events.fire_all()


def _listen(channel: str) -> sql.Composed:
    return sql.SQL("LISTEN {}").format(sql.Identifier(channel))
