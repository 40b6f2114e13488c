"""SharpClient against a fake SHARP over HTTPS with mutual TLS (certificates made in the test)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from madara_orchestrator.devnet.fact_registry import InMemoryFactRegistry
from madara_orchestrator.domain.errors import BackendUnavailable, ConfigError
from madara_orchestrator.domain.proving import (
    CreateBucket,
    CreateJob,
    RunAggregationWithPie,
    TaskStatus,
    TaskType,
)
from madara_orchestrator.interfaces import ProverClient
from madara_orchestrator.provers.errors import ProverApiError, RetriesExhausted, TaskInvalid
from madara_orchestrator.provers.http import RetryPolicy
from madara_orchestrator.provers.sharp import SharpClient, SharpConfig
from tests.helpers.sharp import CUSTOMER_ID, FakeSharp, Pki, make_pki, serve_fake_sharp

FAST_RETRY = RetryPolicy(base_delay_s=0.02, max_delay_s=0.1, budget_s=5.0, max_attempts=3)
FACT = "0x" + "12" * 32


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def sharp(pki: Pki) -> AsyncIterator[tuple[FakeSharp, str]]:
    fake = FakeSharp(processing_s=None)  # jobs move on when a test says
    async with serve_fake_sharp(fake, pki) as url:
        yield fake, url


def make_client(pki: Pki, url: str, **overrides: Any) -> SharpClient:
    checker = overrides.pop("fact_checker", None)
    config: dict[str, Any] = {
        "url": url,
        "customer_id": CUSTOMER_ID,
        "user_crt_file": pki.client_crt,
        "user_key_file": pki.client_key,
        "server_crt_file": pki.ca_crt,
        "timeout_s": 2.0,
        "retry": FAST_RETRY,
    }
    config.update(overrides)
    return SharpClient(SharpConfig(**config), fact_checker=checker)


# -- tests -----------------------------------------------------------------------------------------


async def test_child_job_over_mutual_tls(sharp: tuple[FakeSharp, str], pki: Pki) -> None:
    fake, url = sharp
    client = make_client(pki, url)
    assert isinstance(client, ProverClient)
    assert await client.is_alive()
    key = await client.submit_task(CreateJob(cairo_pie_zip=b"PIE", dedup_id=FACT))
    assert key == FACT
    paths = [path for path, _, _ in fake.calls]
    assert paths[-2:] == ["get_status", "add_job"]  # status first: idempotency
    params = fake.calls[-1][1]
    assert params == {
        "customer_id": CUSTOMER_ID,
        "cairo_job_key": FACT,
        "offchain_proof": "true",
        "for_applicative": "true",
        "program_hash_function": "PEDERSEN",
    }
    assert fake.bodies == [{"cairo_pie_encoded": "UElF"}]
    assert await client.get_task_status(TaskType.JOB, key) == TaskStatus.processing()
    fake.jobs[key]["validation_done"] = True
    assert await client.get_task_status(TaskType.JOB, key) == TaskStatus.succeeded()
    assert "public_input" in await client.get_proof(key)
    await client.aclose()


async def test_resubmission_is_idempotent(sharp: tuple[FakeSharp, str], pki: Pki) -> None:
    fake, url = sharp
    client = make_client(pki, url)
    task = CreateJob(cairo_pie_zip=b"PIE", dedup_id=FACT)
    assert await client.submit_task(task) == await client.submit_task(task) == FACT
    assert [path for path, _, _ in fake.calls].count("add_job") == 1
    assert client.idempotency_hits == 1
    await client.aclose()


async def test_applicative_job_and_fact_checked_status(sharp: tuple[FakeSharp, str], pki: Pki) -> None:
    fake, url = sharp
    registry = InMemoryFactRegistry()
    client = make_client(pki, url, fact_checker=registry)
    with pytest.raises(TaskInvalid, match="fact_hash is required"):
        await client.submit_task(RunAggregationWithPie(cairo_pie_zip=b"A", children_cairo_job_keys=["c1"]))
    task = RunAggregationWithPie(cairo_pie_zip=b"A", children_cairo_job_keys=["c1", "c2"], fact_hash="0x1234")
    key = await client.submit_task(task)
    assert key == "0x" + "0" * 60 + "1234"
    path, params, _ = fake.calls[-1]
    assert path == "add_applicative_job" and params["offchain_proof"] == "false" and "for_applicative" not in params
    assert fake.bodies[-1]["children_cairo_job_keys"] == ["c1", "c2"]
    fake.jobs[key] = {"status": "PROCESSED"}
    with pytest.raises(TaskInvalid, match="Fact required"):
        await client.get_task_status(TaskType.AGGREGATION, key)
    assert await client.get_task_status(TaskType.AGGREGATION, key, key) == TaskStatus.processing()
    await registry.register(key)
    assert await client.get_task_status(TaskType.AGGREGATION, key, key) == TaskStatus.succeeded()
    await client.aclose()


async def test_failed_and_unknown_jobs(sharp: tuple[FakeSharp, str], pki: Pki) -> None:
    fake, url = sharp
    client = make_client(pki, url)
    fake.jobs["k"] = {"status": "FAILED", "error_log": "trace too long"}
    assert await client.get_task_status(TaskType.JOB, "k") == TaskStatus.failed("trace too long")
    status = await client.get_task_status(TaskType.JOB, "missing")
    assert status == TaskStatus.failed("Job not found: missing")
    await client.aclose()


async def test_infrastructure_answers_are_retried_and_api_errors_are_not(
    sharp: tuple[FakeSharp, str], pki: Pki
) -> None:
    fake, url = sharp
    client = make_client(pki, url)
    fake.jobs["k"] = {"status": "PROCESSED"}
    fake.fail_next = [(502, "<html>bad gateway</html>"), (404, "404 page not found")]
    assert await client.get_task_status(TaskType.JOB, "k") == TaskStatus.succeeded()
    assert len(fake.calls) == 3
    fake.fail_next = [(400, '{"message": "bad cairo_job_key"}')]
    with pytest.raises(ProverApiError) as info:
        await client.get_task_status(TaskType.JOB, "k")
    assert info.value.status_code == 400 and not info.value.retryable
    fake.fail_next = [(503, "busy")] * 5
    with pytest.raises(RetriesExhausted):
        await client.get_task_status(TaskType.JOB, "k")
    await client.aclose()


async def test_a_client_without_the_right_certificate_is_refused(sharp: tuple[FakeSharp, str], pki: Pki) -> None:
    fake, url = sharp
    stranger = make_client(pki, url, user_crt_file=pki.stranger_crt, user_key_file=pki.stranger_key)
    with pytest.raises(BackendUnavailable):
        await stranger.get_status("k")
    await stranger.aclose()
    assert fake.calls == []


def test_incomplete_or_unreadable_tls_material_is_a_config_error(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="all three PEM files"):
        SharpClient(SharpConfig(url="https://x", customer_id="c", user_crt_file=pki.client_crt))
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(ConfigError, match="cannot be loaded"):
        SharpClient(
            SharpConfig(
                url="https://x",
                customer_id="c",
                user_crt_file=pki.client_crt,
                user_key_file=pki.client_key,
                server_crt_file=missing,
            )
        )


async def test_unsupported_tasks(sharp: tuple[FakeSharp, str], pki: Pki) -> None:
    _, url = sharp
    client = make_client(pki, url)
    with pytest.raises(TaskInvalid):
        await client.submit_task(CreateBucket())
    with pytest.raises(TaskInvalid, match="not supported by SHARP"):
        await client.submit_l2_query("1", "{}", None)
    artifacts = await client.get_aggregation_artifacts("k", include_proof=True)
    assert artifacts.cairo_pie is None and artifacts.da_segment is None and artifacts.proof is not None
    await client.aclose()
