"""The mock prover (SPEC §7.4): no proving; the aggregator fact is registered on a mock verifier.

``FactRegistry`` (``is_valid`` / ``register``) is injected: an Ethereum ``MockGpsVerifier`` in
production, ``devnet.fact_registry.InMemoryFactRegistry`` in tests. Without one, the fact itself is the external id.
"""

from __future__ import annotations

import asyncio
import logging

from madara_orchestrator.domain.proving import (
    AggregationArtifacts,
    CreateJob,
    RunAggregationWithPie,
    TaskStatus,
    TaskType,
)
from madara_orchestrator.interfaces import FactChecker, FactRegistry
from madara_orchestrator.provers.errors import FactRegistrationFailed, TaskInvalid
from madara_orchestrator.provers.tasks import TaskDispatch
from madara_orchestrator.starknet.facts import fact_hex, fact_info
from madara_orchestrator.starknet.pie import read_pie

__all__ = ["FactChecker", "FactRegistry", "MockProverClient", "pie_fact"]

log = logging.getLogger(__name__)

ZERO_HASH = "0x" + "00" * 32
"""Returned by ``RunAggregationWithPie`` when the fact was already registered (no transaction sent)."""


def pie_fact(cairo_pie_zip: bytes) -> str:
    """The GPS fact of a PIE zip, with the program hash computed from the PIE."""
    return fact_info(read_pie(cairo_pie_zip)).fact


class MockProverClient(TaskDispatch):
    """Implements ``ProverClient`` without a prover: child jobs succeed at once."""

    unsupported_message = "the mock prover has no buckets: it aggregates locally (RunAggregationWithPie)"

    def __init__(self, *, registry: FactRegistry | None = None) -> None:
        self._registry = registry

    async def _submit_job(self, task: CreateJob) -> str:
        return task.dedup_id

    async def _submit_aggregation_pie(self, task: RunAggregationWithPie) -> str:
        """Registers the aggregator fact on the registry (once)."""
        if task.fact_hash is not None:
            fact = fact_hex(task.fact_hash)
        else:  # the program hash of a big program takes seconds: keep the event loop free
            fact = await asyncio.to_thread(pie_fact, task.cairo_pie_zip)
        if self._registry is None:
            return fact
        if await self._registry.is_valid(fact):
            log.info("mock prover: fact %s already registered", fact)
            return ZERO_HASH
        tx_hash = await self._registry.register(fact)
        if not await self._registry.is_valid(fact):
            raise FactRegistrationFailed(
                f"registerFact({fact}) mined in {tx_hash} but isValid(fact) is still false — "
                "wrong contract at the mock verifier address?"
            )
        log.info("mock prover: aggregator fact %s registered in %s (isValid checked)", fact, tx_hash)
        return tx_hash.lower()

    async def get_task_status(self, task_type: TaskType, job_key: str, fact: str | None = None) -> TaskStatus:
        if task_type is TaskType.AGGREGATION and self._registry is not None and fact is not None:
            normalised = fact_hex(fact)
            if await self._registry.is_valid(normalised):
                return TaskStatus.succeeded()
            return TaskStatus.failed(f"fact {normalised} not registered on mock verifier")
        return TaskStatus.succeeded()

    async def get_proof(self, task_id: str) -> str:
        raise TaskInvalid("the mock prover makes no proofs (get_proof)")

    async def submit_l2_query(
        self, task_id: str, proof: str, n_steps: int | None, *, dedup_id: str | None = None
    ) -> str:
        raise TaskInvalid("the mock prover cannot verify proofs on L2 (submit_l2_query)")

    async def get_aggregation_artifacts(self, external_id: str, include_proof: bool) -> AggregationArtifacts:
        return AggregationArtifacts()
