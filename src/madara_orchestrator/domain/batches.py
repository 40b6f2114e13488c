"""SNOS batches and aggregator batches (SPEC §5.1, §5.2): contiguous block ranges, indexed from 1."""

from __future__ import annotations

import dataclasses
import enum
import uuid
from dataclasses import dataclass, field
from typing import Any

from madara_orchestrator.domain.errors import InvalidInput


class SnosBatchStatus(enum.StrEnum):
    OPEN = "Open"
    CLOSED = "Closed"
    SNOS_JOB_CREATED = "SnosJobCreated"
    COMPLETED = "Completed"


class AggregatorBatchStatus(enum.StrEnum):
    OPEN = "Open"
    CLOSED = "Closed"
    PENDING_AGGREGATOR_RUN = "PendingAggregatorRun"
    PENDING_AGGREGATOR_VERIFICATION = "PendingAggregatorVerification"
    READY_FOR_STATE_UPDATE = "ReadyForStateUpdate"
    COMPLETED = "Completed"
    AGGREGATION_FAILED = "AggregationFailed"
    VERIFICATION_FAILED = "VerificationFailed"
    STATE_UPDATE_FAILED = "StateUpdateFailed"


def _batch_to_json(batch: SnosBatch | AggregatorBatch) -> dict[str, Any]:
    body = dataclasses.asdict(batch)
    body["id"] = str(batch.id)
    body["num_blocks"] = batch.num_blocks
    return body


def _batch_fields(data: dict[str, Any], status: type[enum.StrEnum]) -> dict[str, Any]:
    fields = {k: v for k, v in data.items() if k != "num_blocks"}
    fields["id"] = uuid.UUID(fields["id"])
    fields["status"] = status(fields["status"])
    return fields


def parse_batch_status(enum_cls: type[enum.StrEnum], text: str) -> enum.StrEnum:
    """Case-insensitive parse, as the original's API does."""
    for member in enum_cls:
        if member.value.lower() == text.lower():
            return member
    raise InvalidInput(f"unsupported batch status {text!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SnosBatch:
    index: int
    start_block: int
    end_block: int
    status: SnosBatchStatus
    created_at: float
    updated_at: float
    starknet_version: str = ""
    orchestrator_version: str = ""
    aggregator_batch_index: int | None = None
    builtin_weights: dict[str, int] = field(default_factory=dict)
    id: uuid.UUID = field(default_factory=uuid.uuid4)

    @property
    def num_blocks(self) -> int:
        return self.end_block - self.start_block + 1

    @property
    def is_closed(self) -> bool:
        return self.status != SnosBatchStatus.OPEN

    def to_json(self) -> dict[str, Any]:
        return _batch_to_json(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SnosBatch:
        return cls(**_batch_fields(data, SnosBatchStatus))


@dataclass(frozen=True, slots=True, kw_only=True)
class AggregatorBatch:
    index: int
    start_block: int
    end_block: int
    status: AggregatorBatchStatus
    created_at: float
    updated_at: float
    starknet_version: str = ""
    orchestrator_version: str = ""
    bucket_id: str | None = None
    squashed_state_updates_path: str = ""
    blob_path: str = ""
    blob_len: int = 0
    aggregator_input_size_upper_bound: int = 0
    builtin_weights: dict[str, int] = field(default_factory=dict)
    id: uuid.UUID = field(default_factory=uuid.uuid4)

    @property
    def num_blocks(self) -> int:
        return self.end_block - self.start_block + 1

    def to_json(self) -> dict[str, Any]:
        return _batch_to_json(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AggregatorBatch:
        return cls(**_batch_fields(data, AggregatorBatchStatus))
