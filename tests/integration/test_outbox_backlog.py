"""The outbox's backlog (the queue on SQS: a job's next message waits in the job's database until a relay sends
it): the ``orchestrator_outbox_*`` gauges per queue, the DEGRADED line of ``/health`` and the dashboard, and
the ``--outbox-alert-seconds`` alert, on a real PostgreSQL (and SQLite, which has the outbox too)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from madara_orchestrator.backends.alerts import RecordingAlerts
from madara_orchestrator.backends.memory import MemoryObjectStore, MemoryQueue
from madara_orchestrator.backends.outbox import OutboxRelay
from madara_orchestrator.backends.postgres import PostgresStore
from madara_orchestrator.backends.postgres_db import PostgresDatabase
from madara_orchestrator.backends.sql import SqlDatabase
from madara_orchestrator.backends.sqlite import SqliteStore
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.cli.compose import runtime_config
from madara_orchestrator.cli.devnet import devnet_settings
from madara_orchestrator.cli.settings import Settings
from madara_orchestrator.domain.health import OUTBOX_STUCK_AFTER_S, HealthStatus
from madara_orchestrator.domain.jobs import Job, JobStatus, JobType, SnosMetadata, transition
from madara_orchestrator.domain.queues import QueueType
from madara_orchestrator.engine.metrics import Metrics
from madara_orchestrator.engine.outbox import OutboxWatch
from madara_orchestrator.engine.runtime import Adapters, Runtime, RuntimeConfig, Storage
from madara_orchestrator.interfaces import Outgoing
from madara_orchestrator.server.dashboard import overview
from tests.helpers.engine import FakeClock

SNOS = QueueType.SNOS_JOB_PROCESSING
SNOS_CHECK = QueueType.SNOS_JOB_VERIFICATION


class Chain:
    """The sequencer and the settlement layer, answering."""

    async def block_number(self) -> int:
        return 10

    async def last_settled_block(self) -> int | None:
        return 5


@dataclass
class Deployment:
    runtime: Runtime
    store: SqliteStore | PostgresStore
    relay: OutboxRelay
    remote: MemoryQueue
    clock: FakeClock
    metrics: Metrics
    alerts: RecordingAlerts


@pytest.fixture(params=["postgres", "sqlite"])
async def sql_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlDatabase]:
    db: SqlDatabase
    if request.param == "postgres":
        db = PostgresDatabase(request.getfixturevalue("postgres_url"))
    else:
        db = SqliteDatabase(tmp_path / "store.db")
    await db.open()
    yield db
    await db.close()


def deployment(db: SqlDatabase, *, outbox: bool = True, config: RuntimeConfig | None = None) -> Deployment:
    """A runtime whose job writes go to the outbox, relayed to a queue elsewhere; the relay is not running."""
    config = config or RuntimeConfig()
    clock = FakeClock()
    store: SqliteStore | PostgresStore
    if isinstance(db, PostgresDatabase):
        store = PostgresStore(db, clock=clock, outbox=outbox)
    else:
        assert isinstance(db, SqliteDatabase)
        store = SqliteStore(db, clock=clock, outbox=outbox)
    by_name, dead_letters = config.physical_queue_configs()
    remote = MemoryQueue(by_name, dead_letter_names=dead_letters, clock=clock)
    relay = OutboxRelay(db, remote, clock=clock)
    storage = Storage(
        db=store,
        queue=remote,
        objects=MemoryObjectStore(),
        locks=store,
        atomic_writes=store,
        outbox_relay=relay if outbox else None,
    )
    chain, alerts, metrics, any_ = Chain(), RecordingAlerts(), Metrics(), None
    adapters: Any = Adapters(
        storage=storage, alerts=alerts, sequencer=chain, settlement=chain,  # type: ignore[arg-type]
        feeder=any_, batch_rpc=any_, snos=any_, prover=any_,  # type: ignore[arg-type]
    )  # fmt: skip
    runtime = Runtime(config, adapters, clock=clock, metrics=metrics, owner="instance-a")
    return Deployment(runtime, store, relay, remote, clock, metrics, alerts)


def snos_job(i: int, now: float) -> Job:
    meta = SnosMetadata(snos_batch_index=i, start_block=i - 1, end_block=i - 1, num_blocks=1)
    return Job.new(JobType.SNOS_RUN, i, meta, now=now, orchestrator_version="0.1.0")


async def write_jobs(d: Deployment) -> tuple[str, str]:
    """Three jobs created (their processing messages) at t, one of them then locked (a verification message) at
    t + 30: the queues' names."""
    names = d.runtime.config.queue_names
    work, check = names.of(SNOS), names.of(SNOS_CHECK)
    jobs = [snos_job(i, d.clock()) for i in (1, 2, 3)]
    for job in jobs:
        assert await d.store.create_job_and_send(job, work, str(job.id))
    d.clock.advance(30.0)
    locked = transition(jobs[0], JobStatus.LOCKED_FOR_PROCESSING)
    await d.store.update_job_and_send(locked, [Outgoing(check, str(jobs[0].id))], now=d.clock())
    return work, check


def gauge(metrics: Metrics, name: str) -> dict[str, float]:
    return {sample.labels["queue"]: sample.value for sample in metrics.collect(name)}


async def test_rows_waiting_in_the_outbox_show_per_queue_until_the_relay_sends_them(sql_db: SqlDatabase) -> None:
    d = deployment(sql_db)
    work, check = await write_jobs(d)
    d.clock.advance(60.0)
    await d.runtime.refresh_gauges()
    messages = gauge(d.metrics, "orchestrator_outbox_messages")
    oldest = gauge(d.metrics, "orchestrator_outbox_oldest_seconds")
    assert (messages[work], oldest[work]) == (3, 90.0), "three written 90 s ago"
    assert (messages[check], oldest[check]) == (1, 60.0)
    others = set(messages) - {work, check}
    assert others and all(messages[q] == 0 and oldest[q] == 0 for q in others), "every known queue, 0 when none"
    assert "orchestrator_outbox_oldest_seconds{queue=" in d.metrics.render().decode()

    assert await d.relay.relay_once() == 4
    await d.runtime.refresh_gauges()
    assert set(gauge(d.metrics, "orchestrator_outbox_messages").values()) == {0.0}
    assert set(gauge(d.metrics, "orchestrator_outbox_oldest_seconds").values()) == {0.0}
    assert (await d.remote.depth(work)).visible == 3, "sent to the queue"


async def test_an_outbox_not_drained_makes_health_and_the_dashboard_say_degraded(sql_db: SqlDatabase) -> None:
    d = deployment(sql_db)
    await write_jobs(d)
    d.clock.advance(OUTBOX_STUCK_AFTER_S - 31.0)
    report = await d.runtime.health_report()
    assert report.status == HealthStatus.UP, "59 s: a relay that is merely slow"
    d.clock.advance(1.0)
    report = await d.runtime.health_report()
    assert report.status == HealthStatus.DEGRADED
    [line] = report.problems
    assert line.startswith("outbox: 4 message(s) waiting to be sent to the queue, the oldest for 60 s")
    view = await overview(d.runtime, admin_enabled=False)
    assert view["errors"] == [line], "the dashboard's banner"

    await d.relay.relay_once()
    assert (await d.runtime.health_report()).status == HealthStatus.UP
    assert (await overview(d.runtime, admin_enabled=False))["errors"] == []


async def test_without_an_outbox_there_is_no_outbox_series(sql_db: SqlDatabase) -> None:
    d = deployment(sql_db, outbox=False)
    await d.runtime.refresh_gauges()
    assert d.runtime.outbox is None
    assert list(d.metrics.collect("orchestrator_outbox_messages")) == []
    rendered = d.metrics.render().decode()
    assert "orchestrator_outbox_messages{" not in rendered and "orchestrator_outbox_oldest_seconds{" not in rendered


async def test_the_threshold_alerts_once_when_crossed_and_once_when_it_clears(postgres_url: str) -> None:
    db = PostgresDatabase(postgres_url)
    await db.open()
    try:
        d = deployment(db, config=RuntimeConfig(outbox_alert_s=120.0))
        assert d.runtime.outbox is not None
        watch = d.runtime.outbox
        await write_jobs(d)
        await watch.watch_once()
        assert d.alerts.sent == [], "30 s: under the threshold"
        d.clock.advance(90.0)
        await watch.watch_once()
        await watch.watch_once()
        assert [s for s, _ in d.alerts.sent] == ["Outbox not draining"], "once, not at every look"
        assert "4 message(s)" in d.alerts.sent[0][1] and "the oldest for 120 s" in d.alerts.sent[0][1]
        assert "--outbox-alert-seconds 120" in d.alerts.sent[0][1]
        other = OutboxWatch(
            relay=d.relay, locks=d.store, metrics=Metrics(), alerts=d.alerts, owner="instance-b", alert_s=120.0
        )
        await other.watch_once()
        assert len(d.alerts.sent) == 1, "only the instance holding the watch alerts"
        await d.relay.relay_once()
        await watch.watch_once()
        assert [s for s, _ in d.alerts.sent] == ["Outbox not draining", "Outbox draining again"]
    finally:
        await db.close()


def test_the_threshold_flag_reaches_the_runtime(tmp_path: Path) -> None:
    settings = devnet_settings(tmp_path, "http://127.0.0.1:9", port=0)
    assert runtime_config(settings).outbox_alert_s is None
    flagged = Settings({**settings.values, "outbox_alert_seconds": 300.0}, settings.secrets)
    assert runtime_config(flagged).outbox_alert_s == 300.0
