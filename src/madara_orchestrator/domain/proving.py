"""Prover task kinds and results (SPEC §7.1): pure values shared by the jobs and every prover client."""

from __future__ import annotations

import enum
from dataclasses import dataclass

DEFAULT_ARTIFACTS_BASE_URL = "https://storage.googleapis.com/hero-atlantic-bucket"
"""Where Atlantic serves the artifacts of a proof (``--atlantic-artifacts-url``'s default)."""


class TaskType(enum.StrEnum):
    JOB = "Job"
    AGGREGATION = "Aggregation"


class TaskState(enum.StrEnum):
    PROCESSING = "Processing"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskStatus:
    state: TaskState
    message: str = ""

    @classmethod
    def processing(cls) -> TaskStatus:
        return cls(state=TaskState.PROCESSING)

    @classmethod
    def succeeded(cls) -> TaskStatus:
        return cls(state=TaskState.SUCCEEDED)

    @classmethod
    def failed(cls, message: str) -> TaskStatus:
        return cls(state=TaskState.FAILED, message=message)


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateJob:
    """Prove one SNOS PIE. ``dedup_id`` makes resubmission idempotent."""

    cairo_pie_zip: bytes
    dedup_id: str
    bucket_id: str | None = None
    bucket_job_index: int | None = None
    num_steps: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateBucket:
    """Open an aggregation bucket (Atlantic applicative recursion)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunAggregation:
    """Close an Atlantic bucket, which starts the aggregator run on the prover's side."""

    bucket_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunAggregationWithPie:
    """Submit an aggregator PIE produced locally (SHARP applicative job, or the mock prover)."""

    cairo_pie_zip: bytes
    children_cairo_job_keys: list[str]
    fact_hash: str | None = None


ProverTask = CreateJob | CreateBucket | RunAggregation | RunAggregationWithPie


@dataclass(frozen=True, slots=True, kw_only=True)
class AggregationArtifacts:
    cairo_pie: bytes | None = None
    da_segment: bytes | None = None
    proof: bytes | None = None
