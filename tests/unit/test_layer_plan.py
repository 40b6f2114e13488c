"""The layer as one plan (engine/plan.py): what each layer runs, read by the engine instead of layer tests."""

from __future__ import annotations

import dataclasses

import pytest

from madara_orchestrator.domain.jobs import JobType
from madara_orchestrator.domain.queues import Layer, QueueType
from madara_orchestrator.engine.plan import L2_PLAN, L3_PLAN, PLANS, TriggerName
from madara_orchestrator.engine.runtime import RuntimeConfig
from madara_orchestrator.jobs.state_update import BatchKind


def test_the_l2_plan_is_the_pipeline_of_spec_1_2() -> None:
    assert L2_PLAN.job_types == (
        JobType.SNOS_RUN,
        JobType.PROOF_CREATION,
        JobType.AGGREGATOR,
        JobType.STATE_TRANSITION,
    )
    assert L2_PLAN.triggers[0] == TriggerName.AGGREGATOR_BATCHING and TriggerName.SNOS_BATCHING not in L2_PLAN.triggers
    assert L2_PLAN.settles == BatchKind.AGGREGATOR and L2_PLAN.aggregator_batches
    assert L2_PLAN.settlement_parent == JobType.AGGREGATOR
    assert L2_PLAN.successors[JobType.PROOF_CREATION] == (TriggerName.AGGREGATOR,)


def test_the_l3_plan_settles_snos_batches_after_l2_verification_and_da() -> None:
    assert JobType.AGGREGATOR not in L3_PLAN.job_types
    assert {JobType.PROOF_REGISTRATION, JobType.DATA_SUBMISSION} <= set(L3_PLAN.job_types)
    assert L3_PLAN.settles == BatchKind.SNOS and not L3_PLAN.aggregator_batches
    assert L3_PLAN.settlement_parent == JobType.DATA_SUBMISSION and L3_PLAN.registers_snos_proofs
    chain = [JobType.SNOS_RUN, JobType.PROOF_CREATION, JobType.PROOF_REGISTRATION, JobType.DATA_SUBMISSION]
    expected = [TriggerName.PROVING, TriggerName.PROOF_REGISTRATION, TriggerName.DATA_SUBMISSION]
    assert [L3_PLAN.successors[t][0] for t in chain] == [*expected, TriggerName.UPDATE_STATE]


def test_every_successor_and_batching_follower_is_one_of_the_plans_triggers() -> None:
    for plan in PLANS.values():
        followers = {t for names in plan.successors.values() for t in names} | set(plan.after_batching)
        assert followers <= set(plan.triggers), plan.layer
        assert set(plan.successors) <= set(plan.job_types)


def test_the_queues_follow_the_plan() -> None:
    l2 = RuntimeConfig().queue_configs()
    l3 = RuntimeConfig(layer=Layer.L3).queue_configs()
    assert QueueType.AGGREGATOR_JOB_PROCESSING in l2 and QueueType.PROOF_REGISTRATION_JOB_PROCESSING not in l2
    assert QueueType.AGGREGATOR_JOB_PROCESSING not in l3
    for queue in (QueueType.PROOF_REGISTRATION_JOB_VERIFICATION, QueueType.DATA_SUBMISSION_JOB_PROCESSING):
        assert queue in l3
    assert RuntimeConfig(plan=L3_PLAN).job_types() == L3_PLAN.job_types


def test_a_plan_without_a_handler_for_one_of_its_jobs_is_refused() -> None:
    handlers = dict(L3_PLAN.handlers)
    del handlers[JobType.DATA_SUBMISSION]
    with pytest.raises(ValueError, match="no handler for DataSubmission"):
        dataclasses.replace(L3_PLAN, handlers=handlers)
