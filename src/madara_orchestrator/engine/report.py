"""Pipeline figures read back from the job store: per-stage durations and hand-off latencies."""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass

from madara_orchestrator.domain.jobs import Job, JobStatus, JobType
from madara_orchestrator.engine.plan import L2_PLAN
from madara_orchestrator.interfaces import Database


@dataclass(frozen=True, slots=True)
class Percentiles:
    count: int
    p50: float
    p95: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Percentiles:
        if not values:
            return cls(0, 0.0, 0.0, 0.0)
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
        return cls(len(ordered), statistics.median(ordered), p95, ordered[-1])


@dataclass(frozen=True, slots=True)
class PipelineReport:
    stage: dict[JobType, Percentiles]
    """Created to Completed, per job type."""
    handoff: dict[JobType, Percentiles]
    """From the moment a job of this type became possible (its predecessor completed; for settlement
    also the previous batch settled) to its creation."""
    all_handoffs: Percentiles


async def pipeline_report(db: Database, stages: tuple[JobType, ...] = L2_PLAN.job_types) -> PipelineReport:
    """Hand-off = a job's creation minus the moment it became possible: for ProofCreation its SnosRun done
    (same SNOS batch); for Aggregator the last proof of its SNOS batches done; for StateTransition its
    Aggregator done and the previous batch settled (settlement is sequential)."""
    completed: dict[JobType, dict[int, Job]] = {}
    for job_type in stages:
        jobs = await db.list_jobs(job_types=[job_type], statuses=[JobStatus.COMPLETED])
        completed[job_type] = {j.internal_id: j for j in jobs}
    stage = {t: Percentiles.of([j.updated_at - j.created_at for j in completed[t].values()]) for t in stages}
    children: dict[int, list[int]] = {}
    if JobType.AGGREGATOR in stages:
        for batch in await db.list_snos_batches():
            if batch.aggregator_batch_index is not None:
                children.setdefault(batch.aggregator_batch_index, []).append(batch.index)
    handoff: dict[JobType, Percentiles] = {}
    everything: list[float] = []
    settlement = JobType.STATE_TRANSITION
    for parent_type, child_type in itertools.pairwise(stages):
        values = []
        for i, child in completed[child_type].items():
            if child_type == JobType.AGGREGATOR and parent_type == JobType.PROOF_CREATION:
                proofs = [completed[parent_type].get(j) for j in children.get(i, [])]
                if not proofs or any(p is None for p in proofs):
                    continue
                ready = max(p.updated_at for p in proofs if p is not None)
            else:
                parent = completed[parent_type].get(i)
                if parent is None:
                    continue
                ready = parent.updated_at
            if child_type == settlement and i - 1 in completed[settlement]:
                ready = max(ready, completed[settlement][i - 1].updated_at)
            values.append(max(0.0, child.created_at - ready))
        handoff[child_type] = Percentiles.of(values)
        everything += values
    return PipelineReport(stage, handoff, Percentiles.of(everything))
