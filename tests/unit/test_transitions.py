"""The transition table, checked exhaustively: every pair of statuses is either allowed or refused."""

from __future__ import annotations

import itertools
import json

import pytest

from madara_orchestrator.domain.errors import InvalidInput, InvalidTransition
from madara_orchestrator.domain.jobs import (
    ALLOWED,
    Job,
    JobMetadata,
    JobStatus,
    JobType,
    ProvingMetadata,
    SettlementContext,
    SnosMetadata,
    StateUpdateMetadata,
    transition,
)

S = JobStatus

# Written out independently of ALLOWED, from SPEC §2.6 and our two deliberate changes
# (Completed is terminal; re-verification needs a processed job).
EXPECTED = {
    (S.CREATED, S.LOCKED_FOR_PROCESSING),
    (S.CREATED, S.FAILED),
    (S.VERIFICATION_FAILED, S.LOCKED_FOR_PROCESSING),
    (S.PENDING_RETRY, S.LOCKED_FOR_PROCESSING),
    (S.LOCKED_FOR_PROCESSING, S.PENDING_VERIFICATION),
    (S.LOCKED_FOR_PROCESSING, S.CREATED),
    (S.LOCKED_FOR_PROCESSING, S.VERIFICATION_FAILED),
    (S.LOCKED_FOR_PROCESSING, S.PENDING_RETRY),
    (S.LOCKED_FOR_PROCESSING, S.FAILED),
    (S.PENDING_VERIFICATION, S.COMPLETED),
    (S.PENDING_VERIFICATION, S.VERIFICATION_FAILED),
    (S.PENDING_VERIFICATION, S.VERIFICATION_TIMEOUT),
    (S.PENDING_VERIFICATION, S.FAILED),
    (S.VERIFICATION_TIMEOUT, S.COMPLETED),
    (S.VERIFICATION_TIMEOUT, S.VERIFICATION_FAILED),
    (S.VERIFICATION_TIMEOUT, S.FAILED),
    (S.VERIFICATION_TIMEOUT, S.PENDING_VERIFICATION),
    (S.VERIFICATION_FAILED, S.COMPLETED),
    (S.VERIFICATION_FAILED, S.VERIFICATION_TIMEOUT),
    (S.VERIFICATION_FAILED, S.FAILED),
    (S.VERIFICATION_FAILED, S.PENDING_VERIFICATION),
    (S.FAILED, S.PENDING_RETRY),
    (S.FAILED, S.PENDING_VERIFICATION),
    (S.PENDING_RETRY, S.FAILED),
}


def make_job(status: JobStatus) -> Job:
    job = Job.new(
        JobType.SNOS_RUN,
        3,
        SnosMetadata(snos_batch_index=3, start_block=2, end_block=2, num_blocks=1),
        now=100.0,
        orchestrator_version="0.1.0",
    )
    return job if status == S.CREATED else _force(job, status)


def _force(job: Job, status: JobStatus) -> Job:
    import dataclasses

    return dataclasses.replace(job, status=status)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_every_status_pair_is_allowed_or_refused_as_specified(current: JobStatus, target: JobStatus) -> None:
    job = _force(make_job(S.CREATED), current)
    if current == target or (current, target) in EXPECTED:
        moved = transition(job, target)
        assert moved.status == target
        assert moved.version == job.version, "the store, not transition(), bumps the version"
    else:
        with pytest.raises(InvalidTransition, match=f"cannot move from {current} to {target}"):
            transition(job, target)


def test_table_has_no_transition_beyond_the_specification() -> None:
    table = {(a, b) for a, targets in ALLOWED.items() for b in targets}
    assert table == EXPECTED
    assert ALLOWED[S.COMPLETED] == frozenset()


def test_metadata_round_trips_with_the_original_field_names() -> None:
    meta = JobMetadata.from_json(
        {
            "common": {"process_attempt_no": 2, "failure_reason": "x", "previous_failure_reasons": ["a"]},
            "specific": {
                "type": "StateUpdate",
                "context": {"type": "Batch", "to_settle": 7, "last_failed": None},
                "tx_hash": "0x00",
            },
        }
    )
    assert isinstance(meta.specific, StateUpdateMetadata)
    assert meta.specific.context == SettlementContext(type="Batch", to_settle=7)
    dumped = json.loads(json.dumps(meta.to_json()))
    assert dumped["specific"]["type"] == "StateUpdate"
    assert dumped["specific"]["context"] == {"type": "Batch", "to_settle": 7, "last_failed": None}
    assert dumped["common"]["previous_failure_reasons"] == ["a"]
    assert JobMetadata.from_json(dumped) == meta


def test_proving_metadata_omits_null_bucket_fields() -> None:
    body = ProvingMetadata(block_number=4, input_path={"CairoPie": "4/cairo_pie.zip"}).to_json()
    assert body["type"] == "Proving"
    assert body["input_path"] == {"CairoPie": "4/cairo_pie.zip"}
    assert "bucket_id" not in body and "bucket_job_index" not in body
    assert ProvingMetadata(block_number=4, bucket_id="b", bucket_job_index=2).to_json()["bucket_job_index"] == 2


def test_unknown_metadata_type_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="unknown specific type 'Nope'"):
        JobMetadata.from_json({"common": {}, "specific": {"type": "Nope"}})


def test_failure_history_keeps_previous_reasons_oldest_first() -> None:
    common = make_job(S.CREATED).common.with_failure("first").with_failure("second").with_failure("third")
    assert common.failure_reason == "third"
    assert common.previous_failure_reasons == ["first", "second"]


def test_negative_internal_id_is_refused() -> None:
    with pytest.raises(InvalidInput):
        Job.new(
            JobType.SNOS_RUN,
            -1,
            SnosMetadata(snos_batch_index=1, start_block=0, end_block=0, num_blocks=1),
            now=0,
            orchestrator_version="0.1.0",
        )
