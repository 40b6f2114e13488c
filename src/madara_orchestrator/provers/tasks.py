"""``ProverClient.submit_task`` for every prover: the task's kind picks the method that runs it.

A prover overrides the methods of the kinds it runs; a kind it does not run raises ``unsupported(task)``.
"""

from __future__ import annotations

from madara_orchestrator.domain.proving import (
    CreateBucket,
    CreateJob,
    ProverTask,
    RunAggregation,
    RunAggregationWithPie,
)
from madara_orchestrator.provers.errors import TaskInvalid


class TaskDispatch:
    """The base of the prover clients: ``submit_task`` written once."""

    unsupported_message = "this prover cannot run the task"
    """What ``unsupported`` says: why the prover does not run the kind, and what to submit instead."""

    async def submit_task(self, task: ProverTask) -> str:
        if isinstance(task, CreateJob):
            return await self._submit_job(task)
        if isinstance(task, CreateBucket):
            return await self._submit_bucket(task)
        if isinstance(task, RunAggregation):
            return await self._submit_aggregation(task)
        if isinstance(task, RunAggregationWithPie):
            return await self._submit_aggregation_pie(task)
        raise TaskInvalid(f"unknown prover task {type(task).__name__}")

    def unsupported(self, task: ProverTask) -> Exception:
        """The error for a kind of task this prover does not run."""
        return TaskInvalid(self.unsupported_message)

    async def _submit_job(self, task: CreateJob) -> str:
        raise self.unsupported(task)

    async def _submit_bucket(self, task: CreateBucket) -> str:
        raise self.unsupported(task)

    async def _submit_aggregation(self, task: RunAggregation) -> str:
        raise self.unsupported(task)

    async def _submit_aggregation_pie(self, task: RunAggregationWithPie) -> str:
        raise self.unsupported(task)
