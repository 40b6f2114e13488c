"""The mock prover (SPEC §7.4): instant child jobs, the real aggregator fact registered on a verifier."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from madara_orchestrator.devnet.fact_registry import InMemoryFactRegistry
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
from madara_orchestrator.provers.mock import FactRegistry, MockProverClient
from madara_orchestrator.settlement.contracts import FactRegistryClient
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


class ChainWithARegistry:
    """Just enough of an L1 JSON-RPC for ``FactRegistryClient``: each sent transaction is mined at once and
    registers the fact; ``isValid`` is true once one was sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def chain_id(self) -> int:
        return 31337

    async def latest_block(self) -> dict[str, Any]:
        return {"baseFeePerGas": "0x1"}

    async def transaction_count(self, address: str, block: str = "latest") -> int:
        return len(self.sent)

    async def estimate_gas(self, tx: dict[str, Any]) -> int:
        return 50_000

    async def send_raw_transaction(self, raw: bytes) -> str:
        self.sent.append(raw)
        return "0x" + "ab" * 32

    async def transaction_receipt(self, tx_hash: str) -> dict[str, Any] | None:
        return {"blockNumber": "0x1", "status": "0x1", "transactionHash": tx_hash}

    async def call(self, to: str, data: bytes, block: str = "latest") -> bytes:
        return (1 if self.sent else 0).to_bytes(32, "big")


async def test_a_fact_registration_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    chain = ChainWithARegistry()
    registry = FactRegistryClient(chain, "0x" + "22" * 20, "0x" + "11" * 32)  # type: ignore[arg-type]
    prover = MockProverClient(registry=registry)
    caplog.set_level(logging.DEBUG)
    fact = "0x" + "0" * 61 + "abc"
    tx = await prover.submit_task(RunAggregationWithPie(cairo_pie_zip=b"", children_cairo_job_keys=[], fact_hash=fact))
    assert len(chain.sent) == 1
    lines = [r.getMessage() for r in caplog.records if fact in r.getMessage()]
    assert len(lines) == 1, lines
    assert tx in lines[0] and "registered" in lines[0]
