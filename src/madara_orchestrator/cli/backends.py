"""The backends an instance runs on, chosen from the settings (the composition root's half for storage).

Three shapes (README, "Deploying"):

- **embedded** (default): one SQLite file holds jobs, batches, locks, the queue and the settlement
  transactions; artifacts are files. One machine; several processes may share the file.
- **self-hosted**: ``--postgres-url`` moves all of that (the queue included) to PostgreSQL, shared by
  any number of instances; artifacts are files on a shared directory, or S3 with ``--aws --aws-s3``.
- **AWS**: ``--postgres-url --aws --aws-sqs --aws-s3 --aws-sns``: jobs and batches in PostgreSQL, the
  queues on SQS, artifacts on S3, alerts to SNS (resources made by ``orchestrator setup --aws ...``).

Nothing below the composition root knows which it got.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from madara_orchestrator.backends.filesystem import FilesystemObjectStore
from madara_orchestrator.backends.outbox import OutboxRelay
from madara_orchestrator.backends.sql import SqlDatabase
from madara_orchestrator.backends.sqlite import SqliteStore
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.backends.sqlite_queue import SqliteQueue
from madara_orchestrator.backends.tx_store import SqliteTxStore
from madara_orchestrator.cli.owning import own, own_sync
from madara_orchestrator.cli.run import wait_until_answered
from madara_orchestrator.cli.settings import Settings
from madara_orchestrator.engine.runtime import RuntimeConfig, Storage
from madara_orchestrator.engine.service import SystemClock
from madara_orchestrator.interfaces import (
    AlertSink,
    AtomicJobWrites,
    Clock,
    Database,
    ExpiringStore,
    LockService,
    ObjectStore,
    PauseStore,
    QueueClient,
    TxStore,
)

if TYPE_CHECKING:
    from madara_orchestrator.backends.postgres_db import PostgresDatabase


@dataclass(slots=True, kw_only=True)
class Backends:
    shape: str
    """What was chosen, for the start-up log line (no secrets)."""
    storage: Storage
    """What the engine keeps its state in (``engine/runtime.py``)."""
    tx_store: TxStore
    clock: Clock
    """The clock leases are measured on: the database server's when there is one."""
    alert_sinks: list[AlertSink] = field(default_factory=list)


def sqlite_path(values: Mapping[str, Any]) -> Path:
    """The embedded database: ``--sqlite-path``, else ``orchestrator.db`` in ``--data-dir``."""
    return Path(values["sqlite_path"] or Path(values["data_dir"]) / "orchestrator.db")


def storage_dir(values: Mapping[str, Any]) -> Path:
    """The files object store: ``--storage-dir``, else ``objects`` in ``--data-dir``."""
    return Path(values["storage_dir"] or Path(values["data_dir"]) / "objects")


async def open_postgres(url: str, exits: contextlib.AsyncExitStack) -> PostgresDatabase:
    """The database of ``--postgres-url``, open, its close on ``exits``. A server that is down or starting is
    waited for as the sequencer and the L1 are (every 5 s, up to 300 s; one line, then one a minute); one
    that refuses (a wrong password, a database that does not exist) stops the start at once."""
    from madara_orchestrator.backends.postgres_db import PostgresDatabase

    database = PostgresDatabase(url)
    own(exits, database.close)  # before the first try: closed however the wait ends (SIGTERM included)
    await wait_until_answered("PostgreSQL", database.display_url, database.open)
    return database


async def open_backends(settings: Settings, config: RuntimeConfig, exits: contextlib.AsyncExitStack) -> Backends:
    """Open what the settings choose; each close goes on ``exits`` (the composition root's one stack) as soon
    as its resource is open, so a failure half-way leaves that stack to close what was already opened."""
    by_name, dead_letters = config.physical_queue_configs()
    aws = None
    if settings.aws:
        from madara_orchestrator.backends.aws_client import Aws

        aws = Aws()
        own_sync(exits, aws.close)

    db: Database
    locks: LockService
    pauses: PauseStore
    queue: QueueClient | None = None
    tx_store: TxStore
    clock: Clock
    atomic: AtomicJobWrites
    sql: SqlDatabase
    relay: OutboxRelay | None = None
    parts: list[str] = []
    if settings.postgres_url:
        from madara_orchestrator.backends.postgres import PostgresStore
        from madara_orchestrator.backends.postgres_queue import PostgresQueue
        from madara_orchestrator.backends.tx_store import PostgresTxStore

        database = await open_postgres(settings.postgres_url, exits)
        store = PostgresStore(database, outbox=settings.aws_sqs)
        db, locks, pauses, clock, atomic, sql = store, store, store, database.clock, store, database
        tx_store = PostgresTxStore(database)
        parts.append(f"PostgreSQL {database.display_url}")
        if not settings.aws_sqs:
            queue = PostgresQueue(database, by_name, dead_letter_names=dead_letters)
            parts.append("queues in PostgreSQL")
    else:
        db_path = sqlite_path(settings.values)
        sqlite = SqliteDatabase(db_path)
        await sqlite.open()
        own(exits, sqlite.close)
        sqlite_store = SqliteStore(sqlite, outbox=settings.aws_sqs)
        db, locks, pauses, atomic = sqlite_store, sqlite_store, sqlite_store, sqlite_store
        clock, sql = SystemClock(), sqlite
        sqlite_tx = SqliteTxStore(db_path)
        own_sync(exits, sqlite_tx.close)
        tx_store = sqlite_tx
        parts.append(f"SQLite {db_path}")
        if not settings.aws_sqs:
            queue = SqliteQueue(sqlite, by_name, dead_letter_names=dead_letters, poll_interval_s=0.1)
            parts.append("queues in SQLite")

    if settings.aws_sqs:
        from madara_orchestrator.backends.aws_names import QueueAddressing
        from madara_orchestrator.backends.aws_sqs import SqsQueue

        assert aws is not None
        addressing = QueueAddressing.parse(settings.queue_identifier, settings.aws_prefix)
        queue = SqsQueue(aws, addressing, by_name)
        relay = OutboxRelay(sql, queue)
        parts.append("queues on SQS (through the outbox)")
    assert queue is not None

    objects: ObjectStore
    expiring: ExpiringStore
    if settings.aws_s3:
        from madara_orchestrator.backends.aws_names import bucket_name
        from madara_orchestrator.backends.aws_s3 import S3ObjectStore

        assert aws is not None
        s3 = S3ObjectStore(aws, bucket_name(settings.bucket_identifier, settings.aws_prefix))
        objects, expiring = s3, s3
        parts.append(f"artifacts in S3 bucket {s3.bucket}")
    else:
        files_dir = storage_dir(settings.values)
        files = FilesystemObjectStore(files_dir, expiration_days=settings.storage_expiration_days)
        objects, expiring = files, files
        parts.append(f"artifacts in {files_dir}")

    sinks: list[AlertSink] = []
    if settings.aws_sns:
        from madara_orchestrator.backends.aws_names import TopicRef
        from madara_orchestrator.backends.aws_sns import SnsAlerts

        assert aws is not None
        sinks.append(SnsAlerts(aws, TopicRef.parse(settings.topic_identifier, settings.aws_prefix)))
        parts.append("alerts to SNS")

    storage = Storage(
        db=db, locks=locks, queue=queue, objects=objects, expiring=expiring, atomic_writes=atomic, outbox_relay=relay
    )
    storage.pauses = pauses  # the store again: the paused stages every instance honours
    return Backends(
        shape=", ".join(parts),
        storage=storage,
        tx_store=tx_store,
        clock=clock,
        alert_sinks=sinks,
    )
