"""The layer as one plan: which jobs, triggers, hand-offs and handlers a pipeline has (SPEC §1.2, §3.7, §4.2).

An L2 settles aggregator batches on Ethereum; an L3 settles SNOS batches on Starknet, each proof verified
on the L2 (ProofRegistration) and its state diff encoded for DA (DataSubmission). The engine reads the plan
it is given and never tests the layer itself; the composition root (``cli/``) picks the plan for
``--layer``. A plan is plain data plus one factory per job type, which builds the job's handler from the
process's adapters (``HandlerContext``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from madara_orchestrator.domain.jobs import JobType
from madara_orchestrator.domain.queues import Layer
from madara_orchestrator.interfaces import (
    AggregatorRunner,
    AlertSink,
    BatchRpc,
    Clock,
    Database,
    ObjectStore,
    ProverClient,
    SequencerRpc,
    SettlementClient,
    SettlementFigures,
    SnosRunner,
)
from madara_orchestrator.jobs.aggregator import AggregatorJobHandler
from madara_orchestrator.jobs.base import JobHandler
from madara_orchestrator.jobs.data_submission import DataSubmissionJobHandler
from madara_orchestrator.jobs.proof_registration import ProofRegistrationJobHandler
from madara_orchestrator.jobs.proving import ProvingJobHandler
from madara_orchestrator.jobs.snos import SnosJobHandler
from madara_orchestrator.jobs.state_update import BatchKind, StateUpdateJobHandler


class TriggerName(enum.StrEnum):
    SNOS = "Snos"
    PROVING = "Proving"
    PROOF_REGISTRATION = "ProofRegistration"
    DATA_SUBMISSION = "DataSubmission"
    UPDATE_STATE = "UpdateState"
    AGGREGATOR = "Aggregator"
    AGGREGATOR_BATCHING = "AggregatorBatching"
    SNOS_BATCHING = "SnosBatching"
    STORAGE_CLEANUP = "StorageCleanup"

    @classmethod
    def parse(cls, text: str) -> TriggerName:
        """The bare name, surrounding double quotes allowed (SPEC §3.3)."""
        return cls(text.strip().strip('"'))


@dataclass(frozen=True, slots=True, kw_only=True)
class HandlerContext:
    """What a job handler may be built from: the process's adapters and a few settings."""

    db: Database
    objects: ObjectStore
    sequencer: SequencerRpc
    batch_rpc: BatchRpc
    snos: SnosRunner
    prover: ProverClient
    settlement: SettlementClient
    alerts: AlertSink
    clock: Clock
    metrics: SettlementFigures
    aggregator_runner: AggregatorRunner | None
    dedup_proofs_by_job_id: bool
    settlement_fee_wait_s: float
    max_settlements_in_flight: int = 1


HandlerFactory = Callable[[HandlerContext], JobHandler[Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerPlan:
    layer: Layer
    job_types: tuple[JobType, ...]
    """The job types, hence the processing and verification queues (SPEC §3.7)."""
    triggers: tuple[TriggerName, ...]
    """The triggers that run, in the order a start-up runs them (SPEC §4.2)."""
    successors: Mapping[JobType, tuple[TriggerName, ...]]
    """Which triggers to kick when a job of a type completes (event-driven hand-off)."""
    after_batching: tuple[TriggerName, ...]
    """Which triggers to kick when batching made progress."""
    settles: BatchKind
    """What a StateTransition's internal id indexes: an aggregator batch (L2) or a SNOS batch (L3)."""
    settlement_parent: JobType
    """The job whose completion makes a batch ready to settle (UpdateState trigger, SPEC §4.11)."""
    registers_snos_proofs: bool
    """Each SNOS proof is downloaded and its fact must be registered on chain (L3, SPEC §4.6)."""
    handlers: Mapping[JobType, HandlerFactory]

    def __post_init__(self) -> None:
        missing = [t for t in self.job_types if t not in self.handlers]
        if missing:
            raise ValueError(f"layer plan {self.layer}: no handler for {', '.join(missing)}")

    @property
    def aggregator_batches(self) -> bool:
        """Whether batching builds aggregator batches (and SNOS batches inside them)."""
        return self.settles == BatchKind.AGGREGATOR

    def build_handlers(self, context: HandlerContext) -> dict[JobType, JobHandler[Any]]:
        return {job_type: self.handlers[job_type](context) for job_type in self.job_types}

    def stages(self, names: Mapping[JobType, str]) -> tuple[tuple[str, JobType], ...]:
        """The pipeline's stages in order, each named from ``names`` (how a report or a page calls them)."""
        return tuple((names[job_type], job_type) for job_type in self.job_types)


def _snos(c: HandlerContext) -> JobHandler[Any]:
    return SnosJobHandler(snos=c.snos, objects=c.objects)


def _proving(c: HandlerContext) -> JobHandler[Any]:
    return ProvingJobHandler(prover=c.prover, objects=c.objects, jobs=c.db, dedup_by_job_id=c.dedup_proofs_by_job_id)


def _aggregator(c: HandlerContext) -> JobHandler[Any]:
    return AggregatorJobHandler(prover=c.prover, objects=c.objects, db=c.db, clock=c.clock, runner=c.aggregator_runner)


def _proof_registration(c: HandlerContext) -> JobHandler[Any]:
    return ProofRegistrationJobHandler(prover=c.prover, objects=c.objects)


def _data_submission(c: HandlerContext) -> JobHandler[Any]:
    return DataSubmissionJobHandler(sequencer=c.sequencer, objects=c.objects, db=c.db, rpc=c.batch_rpc)


def _state_update(settles: BatchKind) -> HandlerFactory:
    def build(c: HandlerContext) -> JobHandler[Any]:
        return StateUpdateJobHandler(
            settlement=c.settlement,
            objects=c.objects,
            db=c.db,
            clock=c.clock,
            alerts=c.alerts,
            fee_wait_s=c.settlement_fee_wait_s,
            figures=c.metrics,
            settles=settles,
            max_in_flight=c.max_settlements_in_flight,
        )

    return build


L2_PLAN = LayerPlan(
    layer=Layer.L2,
    job_types=(JobType.SNOS_RUN, JobType.PROOF_CREATION, JobType.AGGREGATOR, JobType.STATE_TRANSITION),
    triggers=(
        TriggerName.AGGREGATOR_BATCHING,
        TriggerName.SNOS,
        TriggerName.PROVING,
        TriggerName.AGGREGATOR,
        TriggerName.UPDATE_STATE,
        TriggerName.STORAGE_CLEANUP,
    ),
    successors={
        JobType.SNOS_RUN: (TriggerName.PROVING,),
        JobType.PROOF_CREATION: (TriggerName.AGGREGATOR,),
        JobType.AGGREGATOR: (TriggerName.UPDATE_STATE,),
        JobType.STATE_TRANSITION: (TriggerName.UPDATE_STATE, TriggerName.SNOS, TriggerName.AGGREGATOR),
    },
    after_batching=(TriggerName.SNOS, TriggerName.AGGREGATOR),
    settles=BatchKind.AGGREGATOR,
    settlement_parent=JobType.AGGREGATOR,
    registers_snos_proofs=False,
    handlers={
        JobType.SNOS_RUN: _snos,
        JobType.PROOF_CREATION: _proving,
        JobType.AGGREGATOR: _aggregator,
        JobType.STATE_TRANSITION: _state_update(BatchKind.AGGREGATOR),
    },
)
"""Settle on Ethereum: aggregator batches, one blob transaction each."""

L3_PLAN = LayerPlan(
    layer=Layer.L3,
    job_types=(
        JobType.SNOS_RUN,
        JobType.PROOF_CREATION,
        JobType.PROOF_REGISTRATION,
        JobType.DATA_SUBMISSION,
        JobType.STATE_TRANSITION,
    ),
    triggers=(
        TriggerName.SNOS_BATCHING,
        TriggerName.SNOS,
        TriggerName.PROVING,
        TriggerName.PROOF_REGISTRATION,
        TriggerName.DATA_SUBMISSION,
        TriggerName.UPDATE_STATE,
        TriggerName.STORAGE_CLEANUP,
    ),
    successors={
        JobType.SNOS_RUN: (TriggerName.PROVING,),
        JobType.PROOF_CREATION: (TriggerName.PROOF_REGISTRATION,),
        JobType.PROOF_REGISTRATION: (TriggerName.DATA_SUBMISSION,),
        JobType.DATA_SUBMISSION: (TriggerName.UPDATE_STATE,),
        JobType.STATE_TRANSITION: (TriggerName.UPDATE_STATE, TriggerName.SNOS),
    },
    after_batching=(TriggerName.SNOS,),
    settles=BatchKind.SNOS,
    settlement_parent=JobType.DATA_SUBMISSION,
    registers_snos_proofs=True,
    handlers={
        JobType.SNOS_RUN: _snos,
        JobType.PROOF_CREATION: _proving,
        JobType.PROOF_REGISTRATION: _proof_registration,
        JobType.DATA_SUBMISSION: _data_submission,
        JobType.STATE_TRANSITION: _state_update(BatchKind.SNOS),
    },
)
"""Settle on Starknet: SNOS batches, each proof verified on the L2, one ``update_state`` invoke each."""

PLANS: Mapping[Layer, LayerPlan] = {Layer.L2: L2_PLAN, Layer.L3: L3_PLAN}
