"""``--aggregator-runner http``: the tests' runner service as a real process, through the Aggregator handler."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from madara_orchestrator.aggregator.contract import AggregatorRunConfig
from madara_orchestrator.aggregator.http import HttpAggregatorRunner
from madara_orchestrator.domain.errors import BackendUnavailable, JobError, outage_cause
from madara_orchestrator.domain.jobs import AggregatorMetadata
from madara_orchestrator.jobs.artifacts import decode_program_output
from madara_orchestrator.server.background import free_port
from madara_orchestrator.starknet.facts import aggregator_fact_info
from madara_orchestrator.starknet.pie import read_pie
from tests.helpers.aggregator_runner_program import aggregator_program_hash
from tests.helpers.aggregator_runner_service import RunningService, running_service
from tests.integration.aggregator.conftest import Chain, run_aggregator_job


@pytest.fixture(scope="module")
def shared_service() -> Iterator[RunningService]:
    with running_service() as service:
        yield service


@pytest.fixture
def service(shared_service: RunningService) -> Iterator[RunningService]:
    shared_service.set_mode("")
    yield shared_service
    shared_service.set_mode("")


def runner(chain: Chain, url: str, *, timeout_s: float = 60.0) -> HttpAggregatorRunner:
    config = AggregatorRunConfig(rpc_url=chain.url, use_kzg_da=True, timeout_s=timeout_s)
    return HttpAggregatorRunner(url, config, rpc=chain.rpc, connect_timeout_s=2.0)


async def failure(chain: Chain, service: RunningService, tmp_path: Path, mode: str, **kw: float) -> Exception:
    service.set_mode(mode, **({"hang_s": 30.0} if mode == "hang" else {}))
    aggregator = runner(chain, service.url, **kw)
    try:
        with pytest.raises(Exception) as caught:
            await run_aggregator_job(aggregator, chain, tmp_path / mode)
        return caught.value
    finally:
        await aggregator.aclose()


async def test_the_services_answer_is_checked_stored_and_submitted(
    chain: Chain, service: RunningService, tmp_path: Path
) -> None:
    aggregator = runner(chain, service.url)
    try:
        run = await run_aggregator_job(aggregator, chain, tmp_path)
    finally:
        await aggregator.aclose()
    meta = run.processed.specific
    assert isinstance(meta, AggregatorMetadata)
    info = aggregator_fact_info(read_pie(await run.objects.get("artifacts/batch/1/cairo_pie.zip")))
    assert info.program_hash == aggregator_program_hash()
    assert run.processed.external_id == meta.ensure_on_chain_registration == info.fact
    assert decode_program_output(await run.objects.get("artifacts/batch/1/program_output.txt")) == info.program_output
    (received,) = service.runs()
    assert (received["batch_index"], received["start_block"], received["end_block"]) == (1, 0, 3)
    assert (received["layout"], received["use_kzg_da"], received["full_output"]) == ("all_cairo", True, False)
    assert [(c["snos_batch_index"], c["start_block"], c["end_block"]) for c in received["children"]] == [
        (1, 0, 1),
        (2, 2, 3),
    ]


async def test_failures_the_service_reports_fail_or_retry_the_job(
    chain: Chain, service: RunningService, tmp_path: Path
) -> None:
    failed = await failure(chain, service, tmp_path, "failed")
    assert isinstance(failed, JobError) and failed.retryable is False
    assert str(failed) == (
        "the aggregator failed on aggregator batch 1 (blocks 0..3) (HTTP 422, failed): "
        "aggregator execution failed: assertion failed in aggregate_outputs"
    )
    retry = await failure(chain, service, tmp_path, "retryable-exit")
    assert isinstance(retry, JobError) and retry.retryable is True and "(HTTP 422, retryable)" in str(retry)
    too_many = await failure(chain, service, tmp_path, "too-many")
    assert isinstance(too_many, JobError) and too_many.retryable is True
    assert "answered HTTP 429 for aggregator batch 1 (blocks 0..3); it will be retried" in str(too_many)


async def test_a_damaged_answer_fails_the_job_with_the_reason(
    chain: Chain, service: RunningService, tmp_path: Path
) -> None:
    kzg = await failure(chain, service, tmp_path, "wrong-kzg")
    assert isinstance(kzg, JobError) and kzg.retryable is False
    assert f"the aggregator runner {service.url} returned a damaged output for aggregator batch 1" in str(kzg)
    assert "KZG commitment 0 is not the commitment of blob 0 of the DA segment" in str(kzg)
    missing = await failure(chain, service, tmp_path, "no-output")
    assert isinstance(missing, JobError) and missing.retryable is False
    assert "answered 200 for aggregator batch 1 (blocks 0..3) without a program_output" in str(missing)


async def test_an_outage_is_waited_out_and_a_silent_service_is_retried(
    chain: Chain, service: RunningService, tmp_path: Path
) -> None:
    outage = await failure(chain, service, tmp_path, "outage")
    assert isinstance(outage_cause(outage), BackendUnavailable), "503: the service is down, not the run"
    refused = runner(chain, f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(BackendUnavailable, match="is not reachable"):
            await run_aggregator_job(refused, chain, tmp_path / "refused", ready=False)
        assert not await refused.is_ready()
    finally:
        await refused.aclose()
    silent = await failure(chain, service, tmp_path, "hang", timeout_s=2.0)
    assert isinstance(silent, JobError) and silent.retryable is True
    assert "did not answer within 2 s (--aggregator-timeout-seconds) for aggregator batch 1 (blocks 0..3)" in str(
        silent
    )


async def test_readiness_is_the_health_route(chain: Chain, service: RunningService) -> None:
    aggregator = runner(chain, service.url)
    try:
        assert await aggregator.is_ready()
        service.set_mode("unhealthy")
        assert not await aggregator.is_ready()
    finally:
        await aggregator.aclose()
