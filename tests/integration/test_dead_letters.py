"""Dead letters on each backend (issue 21, item 5): a job's processing message received past its queue's
``max_receive_count`` is dead-lettered, the dead-letter consumer fails the job and records the dead
letter; ``/admin/dlq`` lists it, shows it and redrives it; the job then completes. Redriving it again, its
job Completed, changes nothing and says so. Every ``/admin/dlq`` route needs the admin token."""

from __future__ import annotations

import contextlib
import dataclasses
import time
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from madara_orchestrator.backends.alerts import RecordingAlerts
from madara_orchestrator.backends.sqlite import SqliteStore
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.backends.sqlite_queue import SqliteQueue
from madara_orchestrator.domain.dead_letters import NOTHING_COMPLETED
from madara_orchestrator.domain.jobs import DEFAULT_POLICIES, JobPolicy, JobStatus, JobType
from madara_orchestrator.domain.queues import MAX_RECEIVE_COUNT, QueueType, parse_job_message
from madara_orchestrator.engine.runtime import RuntimeConfig
from madara_orchestrator.engine.service import ACK, JobService, RetryPolicy, SystemClock
from madara_orchestrator.engine.telemetry import NoTelemetry
from madara_orchestrator.interfaces import Database, QueueClient
from madara_orchestrator.server.app import create_app
from tests.helpers.engine import FakeClock, ScriptedHandler, proving_meta

TOKEN = "d" * 32
PT = JobType.PROOF_CREATION
S = JobStatus


@dataclass
class Setup:
    service: JobService
    queue: QueueClient
    db: Database
    processing: str
    verification: str
    dead_letter_queue: str
    advance: Any


def _config(*, instant: bool) -> tuple[RuntimeConfig, dict[str, Any], dict[str, str]]:
    policies = dict(DEFAULT_POLICIES)
    policies[PT] = JobPolicy(max_process_attempts=2, max_verification_attempts=3, verification_delay_s=0, lease_s=30)
    config = RuntimeConfig(policies=policies)
    by_name, dead_letters = config.physical_queue_configs()
    if instant:  # SQS runs on real time: a received message is visible again at once
        by_name = {name: dataclasses.replace(c, visibility_timeout_s=0) for name, c in by_name.items()}
    return config, by_name, dead_letters


def _service(config: RuntimeConfig, db: Database, queue: QueueClient, clock: Any) -> JobService:
    return JobService(
        db=db,
        queue=queue,
        queue_names=config.queue_names,
        handlers={PT: ScriptedHandler(job_type=PT)},
        alerts=RecordingAlerts(),
        metrics=NoTelemetry(),
        clock=clock,
        policies=config.policies,
        retry=RetryPolicy(base_delay_s=0, max_delay_s=0),
    )


def _setup(config: RuntimeConfig, db: Database, queue: QueueClient, clock: Any, advance: Any) -> Setup:
    names = config.queue_names
    return Setup(
        service=_service(config, db, queue, clock),
        queue=queue,
        db=db,
        processing=names.processing(PT),
        verification=names.verification(PT),
        dead_letter_queue=names.of(QueueType.JOB_HANDLE_FAILURE),
        advance=advance,
    )


@contextlib.asynccontextmanager
async def sqlite_backend(tmp_path: Path) -> AsyncIterator[Setup]:
    config, by_name, dead_letters = _config(instant=False)
    clock = FakeClock()
    db = SqliteDatabase(tmp_path / "orchestrator.db")
    await db.open()
    queue = SqliteQueue(db, by_name, dead_letter_names=dead_letters, clock=clock, poll_interval_s=0.01)
    try:
        yield _setup(config, SqliteStore(db), queue, clock, clock.advance)
    finally:
        await db.close()


@contextlib.asynccontextmanager
async def postgres_backend(url: str) -> AsyncIterator[Setup]:
    from madara_orchestrator.backends.postgres import PostgresStore
    from madara_orchestrator.backends.postgres_db import PostgresDatabase
    from madara_orchestrator.backends.postgres_queue import PostgresQueue

    config, by_name, dead_letters = _config(instant=False)
    clock = FakeClock(time.time())
    database = PostgresDatabase(url)
    await database.open()
    queue = PostgresQueue(database, by_name, dead_letter_names=dead_letters, clock=clock)
    try:
        yield _setup(config, PostgresStore(database), queue, clock, clock.advance)
    finally:
        await database.close()


@contextlib.asynccontextmanager
async def sqs_backend(tmp_path: Path) -> AsyncIterator[Setup]:
    """Queues on SQS (moto), jobs in SQLite: the AWS shape without PostgreSQL."""
    from madara_orchestrator.backends.aws_client import Aws
    from madara_orchestrator.backends.aws_names import QueueAddressing
    from madara_orchestrator.backends.aws_sqs import SqsQueue
    from tests.helpers.moto import create_sqs_queues

    config, by_name, dead_letters = _config(instant=True)
    aws = Aws()
    create_sqs_queues(aws, by_name, dead_letters)
    db = SqliteDatabase(tmp_path / "orchestrator.db")
    await db.open()
    queue = SqsQueue(aws, QueueAddressing.parse(), by_name)
    try:
        yield _setup(config, SqliteStore(db), queue, SystemClock(), lambda seconds: None)
    finally:
        await db.close()
        aws.close()


@pytest.fixture(params=["sqlite", "postgres", "sqs"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Setup]:
    if request.param == "sqlite":
        context = sqlite_backend(tmp_path)
    elif request.param == "postgres":
        context = postgres_backend(request.getfixturevalue("postgres_url"))
    else:
        request.getfixturevalue("moto_reset")
        context = sqs_backend(tmp_path)
    async with context as setup:
        yield setup


async def dead_letter(setup: Setup) -> str:
    """Receive the job's processing message ``max_receive_count`` times without handling it (a worker that
    dies on it each time): the next receive moves it to the dead-letter queue. Returns its message id."""
    ids = set()
    for _ in range(MAX_RECEIVE_COUNT):
        message = await setup.queue.receive(setup.processing)
        assert message is not None
        ids.add(message.message_id)
        await setup.queue.nack(message)
    assert await setup.queue.receive(setup.processing) is None, "dead-lettered on the receive past the count"
    assert len(ids) == 1
    return ids.pop()


async def handle_dead_letters(setup: Setup) -> int:
    """What the dead-letter consumer does (``Runtime._on_dead_letter``)."""
    handled = 0
    while (message := await setup.queue.receive(setup.dead_letter_queue)) is not None:
        decision = await setup.service.handle_job_failure(parse_job_message(message.body), message)
        assert decision == ACK
        await setup.queue.ack(message)
        handled += 1
    return handled


async def run_queue(setup: Setup, queue: str, *, verification: bool) -> None:
    message = await setup.queue.receive(queue)
    assert message is not None, f"a message on {queue}"
    job_id = parse_job_message(message.body)
    if verification:
        decision = await setup.service.verify_job(job_id)
    else:
        decision = await setup.service.process_job(job_id, receive_count=message.receive_count)
    assert decision == ACK
    await setup.queue.ack(message)


@contextlib.asynccontextmanager
async def client(setup: Setup) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        types.SimpleNamespace(service=setup.service, metrics=types.SimpleNamespace(tracer=None)),
        admin_enabled=True,
        admin_token=TOKEN,
    )  # type: ignore[arg-type]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api", headers=headers
    ) as http:
        yield http


async def test_dead_letter_listed_shown_redriven_to_completion(backend: Setup) -> None:
    setup = backend
    job = await setup.service.create_job(PT, 7, proving_meta(7))
    assert job is not None
    message_id = await dead_letter(setup)
    assert await handle_dead_letters(setup) == 1
    failed = await setup.db.get_job(job.id)
    assert failed is not None and failed.status == S.FAILED

    async with client(setup) as http:
        listed = (await http.get("/admin/dlq")).json()
        assert listed["success"], listed
        data = listed["data"]
        assert data["count"] == 1 and data["waiting"] == 0
        assert [q["queue"] for q in data["queues"]] == [setup.processing]
        item = data["queues"][0]["messages"][0]
        assert item["message_id"] == message_id
        assert (item["job_id"], item["job_type"], item["internal_id"]) == (str(job.id), PT.value, 7)
        assert item["last_status"] == S.CREATED and item["job_status"] == S.FAILED
        assert item["receive_count"] >= MAX_RECEIVE_COUNT
        assert item["first_receive_at"] is not None and item["sent_at"] is not None
        assert item["first_receive_at"] <= item["dead_lettered_at"]

        shown = (await http.get(f"/admin/dlq/{message_id}")).json()
        assert shown["success"], shown
        assert parse_job_message(shown["data"]["body"]) == job.id
        assert "exhausting retries" in shown["data"]["failure_reason"]
        assert (await http.get(f"/admin/dlq/{job.id}")).json()["data"]["message_id"] == message_id

        redriven = (await http.post(f"/admin/dlq/{message_id}/redrive")).json()
        assert redriven["success"], redriven
        assert redriven["data"]["redriven"] == 1
        result = redriven["data"]["results"][0]
        assert result["changed"] and result["queue"] == setup.processing
        assert result["job_status"] == S.PENDING_RETRY

        setup.advance(1)
        await run_queue(setup, setup.processing, verification=False)
        await run_queue(setup, setup.verification, verification=True)
        done = await setup.db.get_job(job.id)
        assert done is not None and done.status == S.COMPLETED

        after = (await http.get("/admin/dlq")).json()["data"]
        assert after["count"] == 0 and after["queues"] == []

        again = (await http.post(f"/admin/dlq/{job.id}/redrive")).json()
        assert again["success"], again
        assert again["data"]["redriven"] == 0
        assert again["data"]["results"][0]["note"] == NOTHING_COMPLETED
        assert NOTHING_COMPLETED in again["message"]
        unchanged = await setup.db.get_job(job.id)
        assert unchanged is not None and unchanged.status == S.COMPLETED and unchanged.version == done.version
        assert await setup.queue.receive(setup.processing) is None, "no message sent for a completed job"


async def test_redrive_all_and_admin_token(tmp_path: Path) -> None:
    async with sqlite_backend(tmp_path) as setup:
        jobs = []
        for n in (1, 2):
            job = await setup.service.create_job(PT, n, proving_meta(n))
            assert job is not None
            jobs.append(job)
        for _ in range(MAX_RECEIVE_COUNT):  # both messages are received past the count
            for _job in jobs:
                message = await setup.queue.receive(setup.processing)
                assert message is not None
                await setup.queue.nack(message)
        assert await setup.queue.receive(setup.processing) is None
        app = create_app(
            types.SimpleNamespace(service=setup.service, metrics=types.SimpleNamespace(tracer=None)),
            admin_enabled=True,
            admin_token=TOKEN,
        )  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as anonymous:
            for method, path in (
                ("GET", "/admin/dlq"),
                ("GET", f"/admin/dlq/{jobs[0].id}"),
                ("POST", f"/admin/dlq/{jobs[0].id}/redrive"),
                ("POST", "/admin/dlq/redrive"),
            ):
                answer = await anonymous.request(method, path, headers={"Authorization": "Bearer wrong"})
                assert answer.status_code == 401, (method, path)
                assert (await anonymous.request(method, path)).status_code == 401
        async with client(setup) as http:
            waiting = (await http.get("/admin/dlq")).json()["data"]
            assert waiting["count"] == 0 and waiting["waiting"] == 2, "in the dead-letter queue, not handled yet"
            assert await handle_dead_letters(setup) == 2
            listed = (await http.get("/admin/dlq")).json()["data"]
            assert listed["count"] == 2 and listed["waiting"] == 0
            answer = (await http.post("/admin/dlq/redrive")).json()
            assert answer["data"]["redriven"] == 2, answer
            assert {r["job_status"] for r in answer["data"]["results"]} == {S.PENDING_RETRY}
            assert (await http.get("/admin/dlq")).json()["data"]["count"] == 0
            none = (await http.post("/admin/dlq/redrive")).json()
            assert none["data"]["redriven"] == 0 and none["message"] == "No dead letters to redrive"
            missing = await http.get("/admin/dlq/not-a-message")
            assert missing.status_code == 404 and "orchestrator dlq list" in missing.json()["message"]
