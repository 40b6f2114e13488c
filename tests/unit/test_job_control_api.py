"""Job control changes state only through POST with the admin token (a GET there is read-only), and the
Atlantic webhook is authenticated, spends no verification attempt and cannot flood a job into
VerificationTimeout or raise alerts (issue 17, items 1 and 2)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from madara_orchestrator.cli.compose import EmbeddedStack, build_embedded_stack, runtime_config
from madara_orchestrator.cli.devnet import devnet_settings
from madara_orchestrator.cli.settings import RUN_OPTIONS, Settings, add_options, load_run_settings
from madara_orchestrator.domain.errors import ConfigError
from madara_orchestrator.domain.jobs import Job, JobStatus, JobType
from madara_orchestrator.domain.queues import JobMessage, read_job_message
from madara_orchestrator.engine.service import WAKE_COALESCE_S
from madara_orchestrator.jobs.base import Processed, Verified
from madara_orchestrator.provers.atlantic import atlantic_webhook_signature
from madara_orchestrator.provers.atlantic_webhook import atlantic_webhook
from madara_orchestrator.server.app import create_app
from tests.helpers.engine import FakeClock, proving_meta

TOKEN = "t" * 32
SECRET = "s3cret-webhook-key-0123456789"
QUERY_ID = "01JATLANTICQUERY"
S = JobStatus
PT = JobType.PROOF_CREATION


@dataclass
class Api:
    stack: EmbeddedStack
    http: httpx.AsyncClient

    async def job(self, job: Job) -> Job:
        fresh = await self.stack.store.get_job(job.id)
        assert fresh is not None
        return fresh

    async def make_job(self, status: JobStatus, internal_id: int = 1, **common: object) -> Job:
        job = await self.stack.runtime.service.create_job(PT, internal_id, proving_meta(internal_id))
        assert job is not None
        await self.drain(self.stack.runtime.config.queue_names.processing(PT))
        forced = dataclasses.replace(job, status=status, external_id=QUERY_ID).with_common(**common)
        return await self.stack.store.update_job(forced, now=time.time())

    async def drain(self, queue: str) -> list[str]:
        bodies = []
        while (message := await self.stack.queue.receive(queue)) is not None:
            await self.stack.queue.ack(message)
            bodies.append(message.body)
        return bodies


async def _api(tmp_path: Path, **app_options: object) -> AsyncIterator[Api]:
    settings = devnet_settings(tmp_path / "data", "http://127.0.0.1:9", port=0)
    if app_options.get("webhook") is not None:  # as `run` with --atlantic-webhook-secret
        settings = Settings({**settings.values, "atlantic_webhook_secret": SECRET}, settings.secrets)
    stack = await build_embedded_stack(settings)
    app = create_app(stack.runtime, **app_options)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        yield Api(stack, http)
    await stack.close()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async for value in _api(tmp_path, admin_enabled=True, admin_token=TOKEN, webhook=atlantic_webhook(SECRET)):
        yield value


@pytest.fixture
async def plain_api(tmp_path: Path) -> AsyncIterator[Api]:
    """No --admin-enabled, no webhook secret: what `run` serves by default."""
    async for value in _api(tmp_path):
        yield value


AUTH = {"Authorization": f"Bearer {TOKEN}"}
PREFIXES = ("", "/api/v1")
ACTIONS = ("process", "verify", "retry")


# -- item 1: no state change without the admin token ------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("action", ACTIONS)
async def test_a_state_changing_get_is_refused_and_changes_nothing(api: Api, prefix: str, action: str) -> None:
    failed = await api.make_job(S.FAILED)
    path = f"{prefix}/jobs/{failed.id}/{action}"
    for headers in ({}, AUTH):  # not even with the token: a GET never changes anything
        reply = await api.http.get(path, headers=headers)
        assert reply.status_code == 405, reply.text
        assert reply.headers["allow"] == "POST"
        body = reply.json()
        assert body["success"] is False and set(body) == {"success", "message"}
        assert f"use POST {path}" in body["message"] and "Authorization: Bearer <admin token>" in body["message"]
    assert await api.job(failed) == failed, "the Failed job was not re-run"
    names = api.stack.runtime.config.queue_names
    assert await api.drain(names.processing(PT)) == [] and await api.drain(names.verification(PT)) == []


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_retry_is_a_post_with_the_admin_token(api: Api, prefix: str) -> None:
    failed = await api.make_job(S.FAILED)
    path = f"{prefix}/jobs/{failed.id}/retry"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        reply = await api.http.post(path, headers=headers)
        assert reply.status_code == 401, reply.text
        assert "Authorization: Bearer <admin token>" in reply.json()["message"]
        assert TOKEN not in reply.text
    assert await api.job(failed) == failed
    reply = await api.http.post(path, headers=AUTH)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"success": True, "message": f"Job with id {failed.id} queued for normal retry"}
    assert (await api.job(failed)).status == S.PENDING_RETRY


@pytest.mark.parametrize("action", ACTIONS)
async def test_without_admin_enabled_job_control_refuses_saying_how_to_enable(plain_api: Api, action: str) -> None:
    failed = await plain_api.make_job(S.FAILED)
    reply = await plain_api.http.post(f"/jobs/{failed.id}/{action}", headers=AUTH)
    assert reply.status_code == 400, reply.text
    assert "--admin-enabled" in reply.json()["message"] and "\n" not in reply.json()["message"]
    assert await plain_api.job(failed) == failed


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (S.COMPLETED, "it is Completed; nothing is left to do"),
        (S.FAILED, "it is Failed; use retry"),
        (S.PENDING_VERIFICATION, "it is PendingVerification; it was processed and waits for verification"),
        (S.VERIFICATION_TIMEOUT, "it is VerificationTimeout; it was processed and its verification timed out"),
    ],
)
async def test_process_refuses_a_job_processing_would_drop_saying_what_to_do(
    api: Api, status: JobStatus, says: str
) -> None:
    job = await api.make_job(status)
    reply = await api.http.post(f"/jobs/{job.id}/process", headers=AUTH)
    assert reply.status_code == 400, reply.text
    message = reply.json()["message"]
    assert message.startswith(f"Processing error: Cannot process job {job.id}: {says}"), message
    assert await api.drain(api.stack.runtime.config.queue_names.processing(PT)) == [], "nothing was queued"


async def test_process_queues_a_job_processing_takes_up(api: Api) -> None:
    job = await api.make_job(S.CREATED)
    reply = await api.http.post(f"/jobs/{job.id}/process", headers=AUTH)
    assert reply.status_code == 200, reply.text
    assert reply.json()["message"] == f"Job with id {job.id} queued for normal processing"
    bodies = await api.drain(api.stack.runtime.config.queue_names.processing(PT))
    assert [read_job_message(b).id for b in bodies] == [job.id]


# -- item 2: the Atlantic webhook -------------------------------------------------------------------


def hook(status: str = "DONE", query_id: str = QUERY_ID) -> bytes:
    return f'{{"atlanticQueryId": "{query_id}", "status": "{status}"}}'.encode()


async def test_without_a_secret_the_webhook_is_off(plain_api: Api) -> None:
    job = await plain_api.make_job(S.PENDING_VERIFICATION)
    for path in ("/webhooks/atlantic", "/webhooks/atlantic/anything-at-all-here"):
        reply = await plain_api.http.post(path, content=hook())
        assert reply.status_code == 404, reply.text
        assert "--atlantic-webhook-secret" in reply.json()["message"]
    assert await plain_api.drain(plain_api.stack.runtime.config.queue_names.verification(PT)) == []
    assert await plain_api.job(job) == job


async def test_the_webhook_needs_the_secret_in_its_path_or_a_signature(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await api.make_job(S.PENDING_VERIFICATION)
    body = hook()
    wrong = "not-the-secret-but-long-enough"
    refused = [
        await api.http.post("/webhooks/atlantic", content=body),
        await api.http.post(f"/webhooks/atlantic/{wrong}", content=body),
        await api.http.post(
            "/webhooks/atlantic",
            content=body,
            headers={"X-Atlantic-Signature": atlantic_webhook_signature(wrong, body)},
        ),
        await api.http.post(  # signed for another body
            "/webhooks/atlantic",
            content=body,
            headers={"X-Atlantic-Signature": atlantic_webhook_signature(SECRET, hook("FAILED"))},
        ),
    ]
    for reply in refused:
        assert reply.status_code == 401, reply.text
        assert wrong not in reply.text and SECRET not in reply.text
    assert await api.drain(api.stack.runtime.config.queue_names.verification(PT)) == []
    in_path = await api.http.post(f"/webhooks/atlantic/{SECRET}", content=body)
    assert in_path.status_code == 200 and len(in_path.json()["data"]["woken_job_ids"]) == 1, in_path.text
    signed = await api.http.post(
        "/webhooks/atlantic", content=body, headers={"X-Atlantic-Signature": atlantic_webhook_signature(SECRET, body)}
    )
    assert signed.status_code == 200, signed.text
    # The path's secret is never echoed: a wrong method on it answers without the path.
    reply = await api.http.get(f"/webhooks/atlantic/{SECRET}")
    assert reply.status_code == 405 and SECRET not in reply.text, reply.text
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("madara_orchestrator")]
    assert ours and not [line for line in ours if SECRET in line]


class AlwaysPending:
    """Atlantic says the query is still running, whatever the webhook claimed."""

    def __init__(self) -> None:
        self.calls = 0

    async def check_ready(self, job: Job) -> float | None:
        return None

    async def process(self, job: Job) -> object:
        raise AssertionError("not processed in this test")

    async def verify(self, job: Job) -> Verified:
        self.calls += 1
        return Verified.pending()


FLOOD = 1000


async def test_a_webhook_flood_leaves_the_jobs_attempts_and_alerts_unchanged(api: Api) -> None:
    """The issue's case, worse: 1,000 authenticated webhooks with status FAILED and the job's real query id,
    against a ProofCreation job one attempt short of its budget (899 of 900)."""
    service = api.stack.runtime.service
    prover = AlwaysPending()
    service.handlers[PT] = prover
    budget = service.policy(PT).max_verification_attempts
    job = await api.make_job(S.PENDING_VERIFICATION, verification_attempt_no=budget - 1)
    alerts_before = list(api.stack.recorded_alerts.sent)
    body = hook("FAILED")
    headers = {"X-Atlantic-Signature": atlantic_webhook_signature(SECRET, body)}
    # The service's clock, stepped by the test: the flood spans three coalescing windows, each a third of
    # the flood, so exactly three wake-ups may pass (one per window), whatever the machine's speed.
    clock = FakeClock(time.time())
    service.clock = clock
    windows = 3
    woken = 0
    for n in range(FLOOD):
        if n and n % (FLOOD // windows + 1) == 0:
            clock.advance(WAKE_COALESCE_S)
        reply = await api.http.post("/webhooks/atlantic", content=body, headers=headers)
        assert reply.status_code == 200, reply.text
        woken += len(reply.json()["data"]["woken_job_ids"])
    assert woken == windows, f"{woken} wake-ups in {windows} coalescing window(s)"
    # Every wake-up the flood queued is handled as the consumer would.
    queue = api.stack.runtime.config.queue_names.verification(PT)
    handled = 0
    while (message := await api.stack.queue.receive(queue)) is not None:
        assert read_job_message(message.body).wake
        decision = await api.stack.runtime._on_verify(message)
        assert decision.ack
        await api.stack.queue.ack(message)
        handled += 1
    assert handled == woken and prover.calls == woken, "one status request per wake-up"
    after = await api.job(job)
    assert after.status == S.PENDING_VERIFICATION
    assert after.common.verification_attempt_no == budget - 1, "a wake-up spends no attempt"
    assert api.stack.recorded_alerts.sent == alerts_before, "no alert"
    assert await api.drain(queue) == [], "and no new poll chain: the job's own next poll is all there is"


async def test_a_webhook_for_a_job_that_is_done_completes_it_without_an_attempt(api: Api) -> None:
    job = await api.make_job(S.VERIFICATION_TIMEOUT, verification_attempt_no=900)
    reply = await api.http.post(f"/webhooks/atlantic/{SECRET}", content=hook())
    assert reply.json()["data"]["woken_job_ids"] == [str(job.id)]
    queue = api.stack.runtime.config.queue_names.verification(PT)
    message = await api.stack.queue.receive(queue)
    assert message is not None
    api.stack.runtime.service.handlers[PT] = _Done()
    await api.stack.runtime._on_verify(message)
    done = await api.job(job)
    assert done.status == S.COMPLETED and done.common.verification_attempt_no == 900


class _Done(AlwaysPending):
    async def verify(self, job: Job) -> Verified:
        return Verified.verified()


class _ProvedAtOnce(_Done):
    """Atlantic proves so fast that its webhook comes before the processing step has stored the job as
    waiting on the query (the mock proves in a second)."""

    def __init__(self, api: Api) -> None:
        super().__init__()
        self.api = api
        self.replies: list[httpx.Response] = []

    async def process(self, job: Job) -> Processed:
        self.replies.append(await self.api.http.post(f"/webhooks/atlantic/{SECRET}", content=hook()))
        return Processed(external_id=QUERY_ID)


async def test_a_webhook_that_comes_while_its_job_is_processed_wakes_it_once_it_waits(api: Api) -> None:
    """Before, such a webhook woke nothing and the job waited for its first poll."""
    service = api.stack.runtime.service
    prover = _ProvedAtOnce(api)
    service.handlers[PT] = prover
    job = await service.create_job(PT, 1, proving_meta(1))
    assert job is not None
    await api.drain(api.stack.runtime.config.queue_names.processing(PT))
    await service.process_job(job.id)
    [reply] = prover.replies
    assert reply.status_code == 200 and reply.json()["data"]["woken_job_ids"] == [], "nothing waited on it yet"
    assert (await api.job(job)).status == S.PENDING_VERIFICATION
    # The first poll is seconds away (--verification-poll-seconds): a message now can only be the webhook's.
    message = await api.stack.queue.receive(api.stack.runtime.config.queue_names.verification(PT))
    assert message is not None and read_job_message(message.body) == JobMessage(job.id, wake=True)
    assert (await api.stack.runtime._on_verify(message)).ack
    done = await api.job(job)
    assert done.status == S.COMPLETED and done.common.verification_attempt_no == 0, "no attempt spent"


# -- the option -------------------------------------------------------------------------------------


def test_the_webhook_secret_is_read_from_a_file_masked_and_must_fit_a_url_path(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_options(parser, RUN_OPTIONS)
    p = "MADARA_ORCHESTRATOR_"
    good = {
        p + "MADARA_RPC_URL": "http://127.0.0.1:9944",
        p + "PROVER": "devnet",
        p + "SNOS_RUNNER": "devnet",
        p + "AGGREGATOR_RUNNER": "devnet",
        p + "SETTLE_ON_DEVNET": "true",
    }
    (tmp_path / "secret").write_text(SECRET + "\n")
    settings = load_run_settings(
        parser.parse_args([]), {**good, p + "ATLANTIC_WEBHOOK_SECRET_FILE": str(tmp_path / "secret")}
    )
    assert settings.atlantic_webhook_secret == SECRET
    assert SECRET not in repr(settings.describe())
    assert load_run_settings(parser.parse_args([]), good).atlantic_webhook_secret is None, "off by default"
    assert runtime_config(settings).prover_webhooks, "with the route, early webhooks are looked for"
    assert not runtime_config(load_run_settings(parser.parse_args([]), good)).prover_webhooks
    for bad in ("short", "has/a/slash-in-it-0123456789", "has a space in it 0123456789"):
        with pytest.raises(ConfigError) as refused:
            load_run_settings(parser.parse_args(["--atlantic-webhook-secret", bad]), good)
        text = "\n".join(refused.value.problems)
        assert "--atlantic-webhook-secret must be 16 or more URL-safe characters" in text and bad not in text
