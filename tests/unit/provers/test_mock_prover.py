"""The mock prover (SPEC §7.4): instant child jobs, the real aggregator fact registered on a verifier."""

from __future__ import annotations

from pathlib import Path

import pytest

from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.domain.proving import (
    CreateBucket,
    CreateJob,
    RunAggregation,
    RunAggregationWithPie,
    TaskStatus,
    TaskType,
)
from madara_orchestrator.interfaces import ProverClient
from madara_orchestrator.provers.errors import FactRegistrationFailed, TaskInvalid
from madara_orchestrator.provers.mock import FactRegistry, InMemoryFactRegistry, MockProverClient
from tests.conftest import require

FIBONACCI_FACT = "0xca15503f02f8406b599cb220879e842394f5cf2cef753f3ee430647b5981b782"


@pytest.fixture
def fibonacci(vectors_dir: Path) -> bytes:
    path = vectors_dir / "pie" / "fibonacci.zip"
    require(path.is_file(), f"PIE vector {path}")
    return path.read_bytes()


def test_clients_implement_the_protocols() -> None:
    assert isinstance(MockProverClient(), ProverClient)
    assert isinstance(InMemoryFactRegistry(), FactRegistry)


async def test_create_job_returns_the_dedup_id() -> None:
    prover = MockProverClient()
    assert await prover.submit_task(CreateJob(cairo_pie_zip=b"", dedup_id="0xfact")) == "0xfact"
    assert await prover.get_task_status(TaskType.JOB, "0xfact") == TaskStatus.succeeded()


async def test_without_a_registry_the_computed_fact_is_the_id(fibonacci: bytes) -> None:
    prover = MockProverClient()
    task = RunAggregationWithPie(cairo_pie_zip=fibonacci, children_cairo_job_keys=["a"])
    assert await prover.submit_task(task) == FIBONACCI_FACT


async def test_a_given_fact_is_registered_once(fibonacci: bytes) -> None:
    registry = InMemoryFactRegistry()
    prover = MockProverClient(registry=registry)
    task = RunAggregationWithPie(cairo_pie_zip=b"unused", children_cairo_job_keys=[], fact_hash="0xABC")
    tx = await prover.submit_task(task)
    assert tx.startswith("0x") and len(tx) == 66 and tx == tx.lower()
    assert registry.registrations == ["0x" + "0" * 61 + "abc"]
    assert await prover.submit_task(task) == "0x" + "00" * 32  # already valid: no second transaction
    assert len(registry.registrations) == 1


async def test_aggregation_status_follows_the_registry(fibonacci: bytes) -> None:
    registry = InMemoryFactRegistry()
    prover = MockProverClient(registry=registry)
    pending = await prover.get_task_status(TaskType.AGGREGATION, "k", FIBONACCI_FACT)
    assert pending == TaskStatus.failed(f"fact {FIBONACCI_FACT} not registered on mock verifier")
    await prover.submit_task(RunAggregationWithPie(cairo_pie_zip=fibonacci, children_cairo_job_keys=[]))
    assert await registry.is_valid(FIBONACCI_FACT)
    assert await prover.get_task_status(TaskType.AGGREGATION, "k", FIBONACCI_FACT) == TaskStatus.succeeded()


async def test_a_registration_that_does_not_take_is_an_error() -> None:
    class WrongContract(InMemoryFactRegistry):
        async def register(self, fact: str) -> str:
            return "0x" + "11" * 32

    prover = MockProverClient(registry=WrongContract())
    task = RunAggregationWithPie(cairo_pie_zip=b"", children_cairo_job_keys=[], fact_hash="0x1")
    with pytest.raises(FactRegistrationFailed, match="still false"):
        await prover.submit_task(task)


async def test_a_damaged_pie_without_a_fact_is_invalid_input() -> None:
    prover = MockProverClient()
    with pytest.raises(InvalidInput):
        await prover.submit_task(RunAggregationWithPie(cairo_pie_zip=b"nope", children_cairo_job_keys=[]))


@pytest.mark.parametrize("task", [CreateBucket(), RunAggregation(bucket_id="b")])
async def test_buckets_are_not_supported(task: CreateBucket | RunAggregation) -> None:
    with pytest.raises(TaskInvalid):
        await MockProverClient().submit_task(task)


async def test_proofs_and_l2_queries_are_not_supported() -> None:
    prover = MockProverClient()
    with pytest.raises(TaskInvalid):
        await prover.get_proof("x")
    with pytest.raises(TaskInvalid):
        await prover.submit_l2_query("x", "{}", None)
    artifacts = await prover.get_aggregation_artifacts("x", include_proof=True)
    assert (artifacts.cairo_pie, artifacts.da_segment, artifacts.proof) == (None, None, None)
