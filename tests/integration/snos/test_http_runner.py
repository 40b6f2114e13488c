"""``--snos-runner http``: the tests' runner service as a real process, through the SnosRun handler."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from madara_orchestrator.domain.errors import BackendUnavailable, JobError, outage_cause
from madara_orchestrator.domain.jobs import SnosMetadata
from madara_orchestrator.jobs.artifacts import decode_felts_json
from madara_orchestrator.server.background import free_port
from madara_orchestrator.snos.contract import SnosRunConfig
from madara_orchestrator.snos.http import HttpSnosRunner
from madara_orchestrator.starknet.facts import l2_fact
from madara_orchestrator.starknet.os_output import parse_os_output
from madara_orchestrator.starknet.pie import read_pie
from tests.helpers.snos_runner_service import RunningService, running_service
from tests.integration.snos.conftest import Chain, run_snos_job


@pytest.fixture(scope="module")
def shared_service() -> Iterator[RunningService]:
    with running_service() as service:
        yield service


@pytest.fixture
def service(shared_service: RunningService) -> Iterator[RunningService]:
    shared_service.set_mode("")
    yield shared_service
    shared_service.set_mode("")


def runner(chain: Chain, url: str, *, timeout_s: float = 60.0) -> HttpSnosRunner:
    config = SnosRunConfig(rpc_url=chain.url, layout="dynamic", timeout_s=timeout_s)
    return HttpSnosRunner(url, config, rpc=chain.rpc, connect_timeout_s=2.0)


async def test_the_services_answer_is_checked_and_stored_by_the_job(
    chain: Chain, service: RunningService, tmp_path: Path
) -> None:
    snos = runner(chain, service.url)
    try:
        assert await snos.is_ready()
        run = await run_snos_job(snos, tmp_path, 0, 2, index=1)
    finally:
        await snos.aclose()
    meta = run.processed.specific
    assert isinstance(meta, SnosMetadata) and run.meta.cairo_pie_path and run.meta.snos_output_path
    pie = read_pie(await run.objects.get(run.meta.cairo_pie_path))
    os_output = decode_felts_json(await run.objects.get(run.meta.snos_output_path))
    assert pie.output_segment() == os_output
    assert meta.snos_fact == l2_fact(os_output) and meta.snos_n_steps == pie.n_steps
    assert parse_os_output(os_output).header.new_block_number == 2
    # The request as docs/snos-runner.md writes it.
    assert service.runs()[-1] == {
        "version": 1,
        "rpc_url": chain.url,
        "start_block": 0,
        "end_block": 2,
        "layout": "dynamic",
        "full_output": True,
        "use_kzg_da": False,
    }


FAILURES = {
    "retryable-exit": (True, "the SNOS runner failed (HTTP 422, retryable): rpc error"),
    "os-failure": (False, "the SNOS runner failed (HTTP 422, os_failed): OS execution failed"),
    "stderr-retryable": (True, "the SNOS runner failed (HTTP 422, unknown): Block processing failed"),
    "stderr-fatal": (False, "the SNOS runner failed (HTTP 422, unknown): Block processing failed"),
    "corrupt-pie": (False, "returned a damaged output for blocks 1..2: the Cairo PIE is unreadable"),
    "mismatched-output": (False, "is not the PIE's output segment"),
    "wrong-blocks": (False, "moves the chain from block 0 to 3, the batch from 0 to 2"),
    "no-output": (False, "answered 200 for blocks 1..2 without a cairo_pie (base64)"),
    "wrong-n-steps": (False, "the runner reports n_steps="),
}


@pytest.mark.parametrize("mode", list(FAILURES))
async def test_each_failure_is_classified(chain: Chain, service: RunningService, tmp_path: Path, mode: str) -> None:
    retryable, expected = FAILURES[mode]
    service.set_mode(mode)
    snos = runner(chain, service.url)
    try:
        with pytest.raises(JobError) as caught:
            await run_snos_job(snos, tmp_path, 1, 2)
    finally:
        await snos.aclose()
    message = str(caught.value)
    assert expected in message
    assert caught.value.retryable is retryable, message
    assert outage_cause(caught.value) is None, "the run's own failure, not an outage"


async def test_a_5xx_is_an_outage_waited_out(chain: Chain, service: RunningService, tmp_path: Path) -> None:
    service.set_mode("outage")
    snos = runner(chain, service.url)
    try:
        with pytest.raises(JobError) as caught:
            await run_snos_job(snos, tmp_path, 1, 2)
    finally:
        await snos.aclose()
    outage = outage_cause(caught.value)
    assert isinstance(outage, BackendUnavailable), "no attempt spent"
    assert f"SNOS runner {service.url} answered HTTP 503: runner overloaded" in str(outage)


async def test_an_unreachable_service_is_an_outage_and_not_ready(chain: Chain, tmp_path: Path) -> None:
    url = f"http://user:secret@127.0.0.1:{free_port()}"
    snos = runner(chain, url)
    try:
        assert await snos.is_ready() is False
        with pytest.raises(JobError) as caught:
            await run_snos_job(snos, tmp_path, 1, 2)
    finally:
        await snos.aclose()
    outage = outage_cause(caught.value)
    assert isinstance(outage, BackendUnavailable)
    assert "is not reachable: ConnectError" in str(outage)
    assert "secret" not in str(caught.value), "credentials in the URL are never shown"


async def test_an_unhealthy_service_is_not_ready(chain: Chain, service: RunningService) -> None:
    snos = runner(chain, service.url)
    try:
        service.set_mode("unhealthy")
        assert await snos.is_ready() is False
        service.set_mode("")
        assert await snos.is_ready() is True
    finally:
        await snos.aclose()


async def test_no_answer_within_the_timeout_is_retried(chain: Chain, service: RunningService) -> None:
    service.set_mode("hang", hang_s=5)
    snos = runner(chain, service.url, timeout_s=1.0)
    try:
        async with asyncio.timeout(10):
            with pytest.raises(JobError) as caught:
                await snos.run(1, 2)
    finally:
        await snos.aclose()
    assert caught.value.retryable is True
    assert "did not answer within 1 s (--snos-timeout-seconds) for blocks 1..2; it will be retried" in str(caught.value)
