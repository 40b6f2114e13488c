"""ProofRegistration (L3, SPEC §7.9): the SNOS proof goes to the prover wrapped as an L2 verification
query; once done, the bridge proof is stored for StateTransition."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from madara_orchestrator.backends.filesystem import FilesystemObjectStore
from madara_orchestrator.domain.errors import JobError
from madara_orchestrator.domain.jobs import Job, JobType, ProvingMetadata
from madara_orchestrator.domain.proving import AggregationArtifacts, ProverTask, TaskStatus, TaskType
from madara_orchestrator.interfaces import Verification
from madara_orchestrator.jobs.proof_registration import ProofRegistrationJobHandler
from madara_orchestrator.starknet.stone_proof import stone_proof_json


class FakeProver:
    def __init__(self) -> None:
        self.queries: list[tuple[str, str, int | None]] = []
        self.dedup_ids: list[str | None] = []
        self.status_calls: list[tuple[TaskType, str, str | None]] = []
        self.status = TaskStatus.processing()
        self.bridge_proof = stone_proof_json([9, 8, 7])

    async def submit_task(self, task: ProverTask) -> str:  # pragma: no cover
        raise AssertionError("ProofRegistration submits no task")

    async def get_task_status(self, task_type: TaskType, job_key: str, fact: str | None = None) -> TaskStatus:
        self.status_calls.append((task_type, job_key, fact))
        return self.status

    async def get_proof(self, task_id: str) -> str:
        assert task_id == "query-1"
        return self.bridge_proof

    async def submit_l2_query(
        self, task_id: str, proof: str, n_steps: int | None, *, dedup_id: str | None = None
    ) -> str:
        self.queries.append((task_id, proof, n_steps))
        self.dedup_ids.append(dedup_id)
        return "query-1"

    async def get_aggregation_artifacts(
        self, external_id: str, include_proof: bool
    ) -> AggregationArtifacts:  # pragma: no cover
        raise AssertionError


def registration_job(index: int = 4, *, input_path: dict[str, str] | None = None) -> Job:
    meta = ProvingMetadata(
        block_number=10,
        input_path={"Proof": f"{index}/proof.json"} if input_path is None else input_path,
        ensure_on_chain_registration="0x" + "ab" * 32,
        download_proof=f"{index}/proof_part2.json",
        n_steps=123_456,
    )
    return Job.new(JobType.PROOF_REGISTRATION, index, meta, now=0, orchestrator_version="0.1.0")


@pytest.fixture
def objects(tmp_path: Path) -> FilesystemObjectStore:
    return FilesystemObjectStore(tmp_path / "objects")


async def test_the_proof_is_submitted_wrapped_with_the_batch_id_and_steps(objects: FilesystemObjectStore) -> None:
    prover = FakeProver()
    proof = stone_proof_json([1, 2, 3])
    await objects.put("4/proof.json", proof.encode())
    handler = ProofRegistrationJobHandler(prover=prover, objects=objects)
    job = registration_job()
    processed = await handler.process(job)
    assert processed.external_id == "query-1"
    assert prover.dedup_ids == [str(job.id)], "deduplicated on the job: a retry after a crash finds its query"
    [(task_id, wrapped, n_steps)] = prover.queries
    assert task_id == "4" and n_steps == 123_456
    assert wrapped == '{\n\t"proof": ' + proof + "\n}", "the proof text itself, not a re-serialisation"


async def test_an_invalid_proof_fails_at_once_naming_the_file(objects: FilesystemObjectStore) -> None:
    prover = FakeProver()
    await objects.put("4/proof.json", b'{"proof_parameters": {}}')
    handler = ProofRegistrationJobHandler(prover=prover, objects=objects)
    with pytest.raises(JobError, match=r"4/proof\.json") as caught:
        await handler.process(registration_job())
    assert not caught.value.retryable
    assert prover.queries == []


async def test_a_non_proof_input_fails_at_once(objects: FilesystemObjectStore) -> None:
    handler = ProofRegistrationJobHandler(prover=FakeProver(), objects=objects)
    with pytest.raises(JobError, match="proof input") as caught:
        await handler.process(registration_job(input_path={"CairoPie": "4/cairo_pie.zip"}))
    assert not caught.value.retryable


async def test_a_failed_query_is_rejected_with_its_reason(objects: FilesystemObjectStore) -> None:
    prover = FakeProver()
    handler = ProofRegistrationJobHandler(prover=prover, objects=objects)
    job = dataclasses.replace(registration_job(), external_id="query-1")
    assert (await handler.verify(job)).status == Verification.PENDING
    prover.status = TaskStatus.failed("verifier says no")
    result = await handler.verify(job)
    assert result.status == Verification.REJECTED
    assert result.reason == "Proof registration job #4 failed with error: verifier says no"
    assert prover.status_calls[0] == (TaskType.JOB, "query-1", "0x" + "ab" * 32)
    assert not await objects.exists("4/proof_part2.json")


async def test_success_stores_the_bridge_proof(objects: FilesystemObjectStore) -> None:
    prover = FakeProver()
    prover.status = TaskStatus.succeeded()
    handler = ProofRegistrationJobHandler(prover=prover, objects=objects)
    job = dataclasses.replace(registration_job(), external_id="query-1")
    assert (await handler.verify(job)).status == Verification.VERIFIED
    assert await objects.get("4/proof_part2.json") == prover.bridge_proof.encode()
