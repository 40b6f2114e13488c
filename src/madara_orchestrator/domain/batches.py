"""SNOS batches and aggregator batches (SPEC §5.1, §5.2): contiguous block ranges, indexed from 1.

A batch's status changes only through ``transition_snos_batch`` / ``transition_aggregator_batch``,
which consult the tables below; stores persist the result with a write guarded on ``version`` (as
jobs are), so two writers can never both move a batch.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Self, TypeVar, cast

from madara_orchestrator.domain.errors import InvalidInput, InvalidTransition

U64_MAX = 2**64 - 1

# --------------------------------------------------------------------------------------------------
# Bouncer weights (blockifier's BouncerWeights, as Madara's feeder gateway serves them)

WEIGHT_FIELDS: tuple[str, ...] = (
    "l1_gas",
    "message_segment_length",
    "n_events",
    "state_diff_size",
    "sierra_gas",
    "n_txs",
    "proving_gas",
    "receipt_l2_gas",
)
AGGREGATOR_WEIGHT_FIELDS: tuple[str, ...] = ("l1_gas", "message_segment_length")


@dataclass(frozen=True, slots=True, kw_only=True)
class BouncerWeights:
    """The resources a block (or a batch of blocks) uses; each component is a u64."""

    l1_gas: int = 0
    message_segment_length: int = 0
    n_events: int = 0
    state_diff_size: int = 0
    sierra_gas: int = 0
    n_txs: int = 0
    proving_gas: int = 0
    receipt_l2_gas: int = 0

    def __post_init__(self) -> None:
        for name in WEIGHT_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= U64_MAX:
                raise InvalidInput(f"bouncer weight {name} must be a whole number from 0 to 2^64-1, got {value!r}")

    def values(self) -> tuple[int, ...]:
        return tuple(getattr(self, name) for name in WEIGHT_FIELDS)

    def checked_add(self, other: BouncerWeights) -> BouncerWeights | None:
        """Component-wise sum, or None when a component overflows a u64 (as blockifier's ``checked_add``)."""
        sums = {name: getattr(self, name) + getattr(other, name) for name in WEIGHT_FIELDS}
        if any(v > U64_MAX for v in sums.values()):
            return None
        return BouncerWeights(**sums)

    def exceeding(self, limit: BouncerWeights, names: tuple[str, ...] = WEIGHT_FIELDS) -> tuple[str, ...]:
        """The components (of ``names``) above ``limit``; empty when it fits."""
        return tuple(name for name in names if getattr(self, name) > getattr(limit, name))

    def only(self, names: tuple[str, ...]) -> BouncerWeights:
        return BouncerWeights(**{name: getattr(self, name) for name in names})

    def to_json(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in WEIGHT_FIELDS}

    @classmethod
    def from_json(
        cls, data: object, *, where: str = "bouncer weights", defaults: BouncerWeights | None = None
    ) -> BouncerWeights:
        """Parse the JSON object (numbers, or ``0x`` hex strings). A missing component takes ``defaults``'
        value (0 without defaults); an unknown one is an error, so a typo in a limits file is caught."""
        if not isinstance(data, Mapping):
            raise InvalidInput(f"{where}: expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(WEIGHT_FIELDS))
        if unknown:
            raise InvalidInput(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(WEIGHT_FIELDS)}")
        values: dict[str, int] = {}
        for name in WEIGHT_FIELDS:
            if name not in data:
                values[name] = getattr(defaults, name) if defaults is not None else 0
                continue
            values[name] = _weight(data[name], f"{where}: {name}")
        return cls(**values)


def _weight(raw: object, where: str) -> int:
    if isinstance(raw, bool):
        raise InvalidInput(f"{where} must be a whole number, got {raw!r}")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str):
        try:
            value = int(raw, 16) if raw.lower().startswith("0x") else int(raw)
        except ValueError:
            raise InvalidInput(f"{where} must be a whole number, got {raw!r}") from None
    else:
        raise InvalidInput(f"{where} must be a whole number, got {raw!r}")
    if not 0 <= value <= U64_MAX:
        raise InvalidInput(f"{where} must be from 0 to 2^64-1, got {value}")
    return value


DEFAULT_BOUNCER_WEIGHT_LIMITS = BouncerWeights(
    l1_gas=4_400_000,
    message_segment_length=3_700,
    n_events=50_000,
    state_diff_size=24_556,
    sierra_gas=4_000_000_000,
    n_txs=10_000,
    proving_gas=5_000_000_000,
    receipt_l2_gas=2_500_000_000,
)
"""SPEC §5.3: the limits used without ``--bouncer-weights-limit-file``."""

# --------------------------------------------------------------------------------------------------
# Statuses and their transition tables


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


_S = SnosBatchStatus
SNOS_BATCH_TRANSITIONS: dict[SnosBatchStatus, frozenset[SnosBatchStatus]] = {
    # Open grows (same-status writes) until batching or an operator closes it.
    _S.OPEN: frozenset({_S.CLOSED}),
    # The Snos trigger marks the batch once its SnosRun job exists (the original never does: SPEC §4.5).
    _S.CLOSED: frozenset({_S.SNOS_JOB_CREATED, _S.COMPLETED}),
    _S.SNOS_JOB_CREATED: frozenset({_S.COMPLETED}),
    _S.COMPLETED: frozenset(),
}

_A = AggregatorBatchStatus
AGGREGATOR_BATCH_TRANSITIONS: dict[AggregatorBatchStatus, frozenset[AggregatorBatchStatus]] = {
    _A.OPEN: frozenset({_A.CLOSED}),
    _A.CLOSED: frozenset({_A.PENDING_AGGREGATOR_RUN}),
    _A.PENDING_AGGREGATOR_RUN: frozenset({_A.PENDING_AGGREGATOR_VERIFICATION, _A.AGGREGATION_FAILED}),
    _A.PENDING_AGGREGATOR_VERIFICATION: frozenset(
        {_A.READY_FOR_STATE_UPDATE, _A.VERIFICATION_FAILED, _A.AGGREGATION_FAILED}
    ),
    # An operator's retry of the Aggregator job processes (or verifies) it again.
    _A.AGGREGATION_FAILED: frozenset({_A.PENDING_AGGREGATOR_VERIFICATION, _A.PENDING_AGGREGATOR_RUN}),
    _A.VERIFICATION_FAILED: frozenset(
        {_A.PENDING_AGGREGATOR_VERIFICATION, _A.READY_FOR_STATE_UPDATE, _A.PENDING_AGGREGATOR_RUN}
    ),
    _A.READY_FOR_STATE_UPDATE: frozenset({_A.COMPLETED, _A.STATE_UPDATE_FAILED}),
    _A.STATE_UPDATE_FAILED: frozenset({_A.READY_FOR_STATE_UPDATE, _A.COMPLETED}),
    _A.COMPLETED: frozenset(),
}


def parse_batch_status(enum_cls: type[enum.StrEnum], text: str) -> enum.StrEnum:
    """Case-insensitive parse, as the original's API does."""
    for member in enum_cls:
        if member.value.lower() == text.lower():
            return member
    raise InvalidInput(f"unsupported batch status {text!r}")


# --------------------------------------------------------------------------------------------------
# Records


def _batch_to_json(batch: SnosBatch | AggregatorBatch) -> dict[str, Any]:
    body = dataclasses.asdict(batch)
    body["id"] = str(batch.id)
    body["num_blocks"] = batch.num_blocks
    body["builtin_weights"] = batch.builtin_weights.to_json()
    return body


def _batch_fields(data: Mapping[str, Any], status: type[enum.StrEnum]) -> dict[str, Any]:
    fields = {k: v for k, v in data.items() if k != "num_blocks"}
    fields["id"] = uuid.UUID(fields["id"])
    fields["status"] = status(fields["status"])
    fields["builtin_weights"] = BouncerWeights.from_json(fields.get("builtin_weights") or {})
    fields.setdefault("version", 0)
    return fields


S = TypeVar("S", SnosBatchStatus, AggregatorBatchStatus)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Batch(Generic[S]):
    """What SNOS and aggregator batches share: a block range and its status; a kind adds its fields after."""

    STATUS: ClassVar[type[enum.StrEnum]]
    index: int
    start_block: int
    end_block: int
    status: S
    created_at: float
    updated_at: float
    starknet_version: str = ""
    orchestrator_version: str = ""

    @property
    def num_blocks(self) -> int:
        return self.end_block - self.start_block + 1

    @property
    def is_closed(self) -> bool:
        return self.status != self.STATUS("Open")

    def to_json(self) -> dict[str, Any]:
        assert isinstance(self, SnosBatch | AggregatorBatch)
        return _batch_to_json(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(**_batch_fields(data, cls.STATUS))

    @classmethod
    def opened(
        cls, *, index: int, block: int, now: float, starknet_version: str, orchestrator_version: str, **fields: Any
    ) -> Self:
        """A new Open batch of the one block ``block``; ``fields``: the kind's own."""
        return cls(
            index=index,
            start_block=block,
            end_block=block,
            status=cast(S, cls.STATUS("Open")),
            created_at=now,
            updated_at=now,
            starknet_version=starknet_version,
            orchestrator_version=orchestrator_version,
            **fields,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SnosBatch(_Batch[SnosBatchStatus]):
    STATUS: ClassVar[type[enum.StrEnum]] = SnosBatchStatus
    aggregator_batch_index: int | None = None
    builtin_weights: BouncerWeights = field(default_factory=BouncerWeights)
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    version: int = 0
    """Bumped by every stored write; a write from a stale copy is refused."""


DEFAULT_AGGREGATOR_INPUT_SIZE_BOUND = 750_000
"""What a stored aggregator batch without a bound reads as (SPEC §5.2)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AggregatorBatch(_Batch[AggregatorBatchStatus]):
    STATUS: ClassVar[type[enum.StrEnum]] = AggregatorBatchStatus
    bucket_id: str | None = None
    squashed_state_updates_path: str = ""
    blob_path: str = ""
    blob_len: int = 0
    """Felts of the squashed, compressed state diff (what the blobs carry)."""
    aggregator_input_size_upper_bound: int = DEFAULT_AGGREGATOR_INPUT_SIZE_BOUND
    builtin_weights: BouncerWeights = field(default_factory=BouncerWeights)
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    version: int = 0


def ready_to_aggregate(batch: AggregatorBatch, children: Sequence[SnosBatch]) -> bool:
    """Whether ``children``, the aggregator batch's SNOS batches in order, are all closed and cover its blocks
    exactly, without a gap (what its Aggregator job waits for, besides their proofs)."""
    if not children or children[0].start_block != batch.start_block or children[-1].end_block != batch.end_block:
        return False
    if not all(c.is_closed for c in children):
        return False
    return all(b.start_block == a.end_block + 1 for a, b in itertools.pairwise(children))


B = TypeVar("B", SnosBatch, AggregatorBatch)


def _transition(batch: B, table: Mapping[Any, frozenset[Any]], target: Any, now: float, changes: dict[str, Any]) -> B:
    if batch.status != target and target not in table[batch.status]:
        kind = "SNOS" if isinstance(batch, SnosBatch) else "aggregator"
        raise InvalidTransition(f"{kind} batch {batch.index} cannot move from {batch.status} to {target}")
    return dataclasses.replace(batch, status=target, updated_at=now, **changes)


def transition_snos_batch(batch: SnosBatch, target: SnosBatchStatus, *, now: float, **changes: Any) -> SnosBatch:
    """The only way a SNOS batch's status changes. Same-status writes (a growing Open batch) are allowed."""
    return _transition(batch, SNOS_BATCH_TRANSITIONS, target, now, changes)


def transition_aggregator_batch(
    batch: AggregatorBatch, target: AggregatorBatchStatus, *, now: float, **changes: Any
) -> AggregatorBatch:
    """The only way an aggregator batch's status changes."""
    return _transition(batch, AGGREGATOR_BATCH_TRANSITIONS, target, now, changes)


def next_batch(batch: B, target: SnosBatchStatus | AggregatorBatchStatus, *, now: float) -> B | None:
    """``batch`` moved to ``target``, or None when it is there already (nothing to write).

    ``InvalidTransition`` when its table forbids the move from its current status."""
    if batch.status == target:
        return None
    table = SNOS_BATCH_TRANSITIONS if isinstance(batch, SnosBatch) else AGGREGATOR_BATCH_TRANSITIONS
    return _transition(batch, table, target, now, {})
