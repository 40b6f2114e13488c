"""SHARP status mapping (SPEC §7.2 table) and which answers are worth asking again."""

from __future__ import annotations

import pytest

from madara_orchestrator.domain.proving import TaskState, TaskStatus, TaskType
from madara_orchestrator.provers.sharp import (
    InvalidReason,
    SharpJobStatus,
    SharpStatus,
    is_infrastructure_response,
    is_retryable_status,
    map_sharp_status,
)

JOB, AGG = TaskType.JOB, TaskType.AGGREGATION
KEY = "0xkey"


@pytest.mark.parametrize(
    ("task_type", "job", "fact_valid", "expected"),
    [
        (JOB, SharpJobStatus(status=SharpStatus.FAILED, error_log="boom"), None, TaskStatus.failed("boom")),
        (AGG, SharpJobStatus(status=SharpStatus.FAILED), None, TaskStatus.failed("")),
        (
            JOB,
            SharpJobStatus(
                status=SharpStatus.INVALID, invalid_reason=InvalidReason.INVALID_CAIRO_PIE_FILE_FORMAT, error_log="x"
            ),
            None,
            TaskStatus.failed("Job is invalid: INVALID_CAIRO_PIE_FILE_FORMAT. error_log: x"),
        ),
        (
            AGG,
            SharpJobStatus(status=SharpStatus.INVALID),
            None,
            TaskStatus.failed("Applicative job is invalid: UNKNOWN. error_log: none"),
        ),
        (JOB, SharpJobStatus(status=SharpStatus.UNKNOWN), None, TaskStatus.failed(f"Job not found: {KEY}")),
        (AGG, SharpJobStatus(status=SharpStatus.UNKNOWN), None, TaskStatus.failed(f"Applicative job not found: {KEY}")),
        (JOB, SharpJobStatus(status=SharpStatus.PROCESSED), None, TaskStatus.succeeded()),
        (AGG, SharpJobStatus(status=SharpStatus.PROCESSED), True, TaskStatus.succeeded()),
        (AGG, SharpJobStatus(status=SharpStatus.PROCESSED), False, TaskStatus.processing()),
        (JOB, SharpJobStatus(status=SharpStatus.IN_PROGRESS, validation_done=True), None, TaskStatus.succeeded()),
        (JOB, SharpJobStatus(status=SharpStatus.IN_PROGRESS, validation_done=False), None, TaskStatus.processing()),
        (JOB, SharpJobStatus(status=SharpStatus.IN_PROGRESS), None, TaskStatus.processing()),
        (AGG, SharpJobStatus(status=SharpStatus.IN_PROGRESS, validation_done=True), None, TaskStatus.processing()),
        (JOB, SharpJobStatus(status=SharpStatus.NOT_CREATED), None, TaskStatus.processing()),
        (AGG, SharpJobStatus(status=SharpStatus.NOT_CREATED), None, TaskStatus.processing()),
    ],
)
def test_status_mapping_table(
    task_type: TaskType, job: SharpJobStatus, fact_valid: bool | None, expected: TaskStatus
) -> None:
    assert map_sharp_status(task_type, job, KEY, is_fact_valid=fact_valid) == expected


def test_every_sharp_status_is_mapped_for_both_task_types() -> None:
    for status in SharpStatus:
        for task_type in TaskType:
            result = map_sharp_status(task_type, SharpJobStatus(status=status), KEY)
            assert result.state in TaskState


def test_status_json_reads_unknown_invalid_reasons_as_unknown() -> None:
    job = SharpJobStatus.from_json({"status": "INVALID", "invalid_reason": "SOMETHING_NEW", "error_log": "e"})
    assert job.invalid_reason is InvalidReason.UNKNOWN
    job = SharpJobStatus.from_json({"status": "IN_PROGRESS", "validation_done": True})
    assert job.validation_done is True and job.invalid_reason is None


@pytest.mark.parametrize(
    ("status", "body", "retryable"),
    [
        (502, "", True),
        (503, "Service Unavailable", True),
        (504, "<html>gateway timeout</html>", True),
        (500, '{"message": "internal"}', True),
        (404, "404 page not found", True),
        (404, "<!DOCTYPE html><html><body>Not Found</body></html>", True),
        (404, "nothing here", True),
        (404, '{"message": "job not found"}', False),
        (404, "unknown cairo_job_key", False),
        (400, '{"0": "4", "1": "0", "2": "0"}', True),
        (400, '{"code": "BAD_REQUEST", "message": "bad pie"}', False),
        (401, '{"message": "unauthorized"}', False),
        (429, "slow down", True),
    ],
)
def test_retry_classification(status: int, body: str, retryable: bool) -> None:
    assert is_retryable_status(status, body) is retryable


def test_a_json_answer_is_not_infrastructure() -> None:
    assert not is_infrastructure_response(200, '{"status": "PROCESSED"}')
    assert is_infrastructure_response(200, "<html><body>maintenance</body></html>")
