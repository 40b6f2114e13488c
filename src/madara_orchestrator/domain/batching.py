"""The batching policy (SPEC §5.3, §5.4): may the next block join the open batch?

Pure functions, no I/O: the batching trigger gathers the facts (versions, bouncer weights, state-diff
sizes, compressed lengths) and asks. Every rule of the original is here, in the original's order, with
two changes (README, "Where this differs"):

- an open batch whose age passed closes even when no new block arrives (``expired``); the original
  only looks at the age when a next block is evaluated;
- a batch that has its maximum number of blocks closes at once (``*_batch_full``), not when the next
  block comes;
- a block too big for any batch on its own (aggregator input bound or blob size) gets a batch of its
  own, closed at once, and an alert (``Decision.oversized``), where the original stalls on it forever.

``max_snos_batches_per_aggregator_batch`` is enforced (the original parses it and never uses it): the
trigger builds SNOS and aggregator batches in one pass and tells the aggregator rule whether this
block would start another SNOS batch.

Before a block is looked at, two gates may stop batching in front of it (``Hold``): a Starknet version
this orchestrator does not know (SPEC §5.3: the original halts there too) and, with a reference node,
a block hash that differs from the reference's (§5.9, replay bounds).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from madara_orchestrator.domain.batches import (
    AGGREGATOR_WEIGHT_FIELDS,
    DEFAULT_BOUNCER_WEIGHT_LIMITS,
    AggregatorBatch,
    BouncerWeights,
    SnosBatch,
)
from madara_orchestrator.domain.chain import FELTS_PER_BLOB, MAX_BLOBS_PER_TXN
from madara_orchestrator.domain.errors import BackendUnavailable, OrchestratorError
from madara_orchestrator.domain.redaction import cut_urls


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchLimits:
    """The batching settings (SPEC §16.2), with the original's defaults."""

    max_batch_time_s: float
    """``--max-batch-time-seconds``: a batch this old closes."""
    max_blocks_per_snos_batch: int = 10
    fixed_blocks_per_snos_batch: int | None = None
    """When set, SNOS batches have exactly this many blocks and no other SNOS rule applies."""
    max_batch_size: int = 100
    """``--max-batch-size``: blocks per aggregator batch."""
    max_snos_batches_per_aggregator_batch: int = 50
    max_num_blobs: int = MAX_BLOBS_PER_TXN
    blob_size_buffer: int = 15
    max_aggregator_input_size: int = 750_000
    default_empty_block_proving_gas: int = 1_500_000
    bouncer_weight_limits: BouncerWeights = DEFAULT_BOUNCER_WEIGHT_LIMITS

    @property
    def max_blob_size(self) -> int:
        """Felts the compressed state diff of an aggregator batch may take (6·4096 − 15 by default)."""
        return self.max_num_blobs * FELTS_PER_BLOB - self.blob_size_buffer

    @property
    def aggregator_weight_limits(self) -> BouncerWeights:
        return self.bouncer_weight_limits.only(AGGREGATOR_WEIGHT_FIELDS)

    def problems(self) -> list[str]:
        """What is wrong with these limits, one sentence per problem (empty when they are usable)."""
        found: list[str] = []
        if self.max_batch_time_s <= 0:
            found.append(f"max batch time must be positive, got {self.max_batch_time_s:g} s")
        for name, value in (
            ("max blocks per SNOS batch", self.max_blocks_per_snos_batch),
            ("max batch size", self.max_batch_size),
            ("max SNOS batches per aggregator batch", self.max_snos_batches_per_aggregator_batch),
            ("max number of blobs", self.max_num_blobs),
            ("max aggregator input size", self.max_aggregator_input_size),
        ):
            if value <= 0:
                found.append(f"{name} must be a positive integer, got {value}")
        if self.fixed_blocks_per_snos_batch is not None and self.fixed_blocks_per_snos_batch <= 0:
            found.append(
                f"fixed blocks per SNOS batch must be a positive integer, got {self.fixed_blocks_per_snos_batch}"
            )
        if self.blob_size_buffer < 0:
            found.append(f"blob size buffer must not be negative, got {self.blob_size_buffer}")
        elif self.max_num_blobs > 0 and self.max_blob_size <= 0:
            found.append(
                f"blob size buffer {self.blob_size_buffer} leaves no room in {self.max_num_blobs} blob(s) "
                f"of {FELTS_PER_BLOB} felts"
            )
        if self.default_empty_block_proving_gas < 0:
            found.append(
                f"default empty block proving gas must not be negative, got {self.default_empty_block_proving_gas}"
            )
        return found


class Action(enum.StrEnum):
    START = "start"
    """No open batch: start one with this block."""
    ADD = "add"
    """Add the block to the open batch."""
    CLOSE_AND_START = "close_and_start"
    """Close the open batch; start a new one with this block."""
    NEEDS_BLOB_LEN = "needs_blob_len"
    """Every other rule passed: compute the compressed length with the block and ask again."""


class Reason(enum.StrEnum):
    NO_OPEN_BATCH = "no open batch"
    FITS = "fits"
    FIXED_SIZE_NOT_REACHED = "below the fixed SNOS batch size"
    GAP = "the block does not follow the batch's last block"
    FIXED_SIZE_REACHED = "fixed SNOS batch size reached"
    BATCH_CLOSED = "the batch is closed"
    ORCHESTRATOR_VERSION = "the batch was made by another orchestrator version"
    STARKNET_VERSION = "the block's Starknet version differs from the batch's"
    UNKNOWN_VERSION = "the next block's Starknet version is neither known nor allowed"
    MAX_BLOCKS = "the batch has its maximum number of blocks"
    MAX_AGE = "the batch reached its maximum age"
    AGGREGATOR_BATCH = "the block belongs to another aggregator batch"
    WEIGHT_OVERFLOW = "the combined bouncer weights overflow"
    WEIGHT_LIMIT = "the combined bouncer weights exceed the limit"
    INPUT_SIZE = "the aggregator input would exceed its size bound"
    MAX_SNOS_BATCHES = "the aggregator batch has its maximum number of SNOS batches"
    BLOB_SIZE = "the compressed state diff would not fit the blobs"
    MISSING_BLOB_LEN = "the compressed length with the block is not known yet"


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    action: Action
    reason: Reason
    weights: BouncerWeights
    """The batch's weights after the decision (combined on ADD, the block's own on a new batch)."""
    input_size_bound: int = 0
    """Aggregator batches: the input size bound after the decision."""
    detail: str = ""
    oversized: bool = False
    """The block alone is over a limit: its new batch is closed at once, and an alert is due."""

    @property
    def closes_open_batch(self) -> bool:
        return self.action == Action.CLOSE_AND_START

    def describe(self) -> str:
        return f"{self.action}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


def expired(created_at: float, now: float, limits: BatchLimits) -> bool:
    """Whether a batch created at ``created_at`` is past ``--max-batch-time-seconds`` (whole seconds)."""
    return int(abs(now - created_at)) >= limits.max_batch_time_s


def snos_batch_full(batch: SnosBatch, limits: BatchLimits) -> bool:
    """No further block can join: the batch has its (fixed or maximum) number of blocks. Such a batch is
    closed at once instead of when a next block comes (the original waits for the next block)."""
    size = limits.fixed_blocks_per_snos_batch or limits.max_blocks_per_snos_batch
    return batch.num_blocks >= size


def aggregator_batch_full(batch: AggregatorBatch, limits: BatchLimits) -> bool:
    return batch.num_blocks >= limits.max_batch_size


def block_weights(reported: BouncerWeights, limits: BatchLimits) -> BouncerWeights:
    """An empty block reports zero proving gas; every block costs some (``--default-empty-block-proving-gas``)."""
    if reported.proving_gas == 0:
        return BouncerWeights(**{**reported.to_json(), "proving_gas": limits.default_empty_block_proving_gas})
    return reported


# --------------------------------------------------------------------------------------------------
# SNOS batches (SPEC §5.3)


@dataclass(frozen=True, slots=True, kw_only=True)
class SnosBlock:
    number: int
    starknet_version: str
    weights: BouncerWeights
    """As reported, with ``block_weights`` already applied."""
    aggregator_batch_index: int | None = None
    """L2: the aggregator batch the block belongs to."""


def decide_snos(
    open_batch: SnosBatch | None,
    block: SnosBlock,
    limits: BatchLimits,
    *,
    now: float,
    orchestrator_version: str,
) -> Decision:
    def new(reason: Reason, action: Action = Action.CLOSE_AND_START, detail: str = "") -> Decision:
        return Decision(action=action, reason=reason, weights=block.weights, detail=detail)

    if open_batch is None:
        return new(Reason.NO_OPEN_BATCH, Action.START)
    if block.number != open_batch.end_block + 1:
        return new(Reason.GAP, detail=f"block {block.number} after {open_batch.end_block}")
    if open_batch.is_closed:
        return new(Reason.BATCH_CLOSED, Action.START)
    # A SNOS batch never spans two aggregator batches, not even in fixed-size mode (which in the
    # original overrides every rule, so a fixed batch could straddle aggregator batches and stall both).
    crosses = open_batch.aggregator_batch_index is not None and (
        block.aggregator_batch_index != open_batch.aggregator_batch_index
    )
    fixed = limits.fixed_blocks_per_snos_batch
    if fixed is not None:
        if crosses:
            return new(
                Reason.AGGREGATOR_BATCH,
                detail=f"{block.aggregator_batch_index} != {open_batch.aggregator_batch_index}",
            )
        if open_batch.num_blocks >= fixed:
            return new(Reason.FIXED_SIZE_REACHED, detail=f"{open_batch.num_blocks} of {fixed} blocks")
        return Decision(action=Action.ADD, reason=Reason.FIXED_SIZE_NOT_REACHED, weights=BouncerWeights())
    if open_batch.orchestrator_version != orchestrator_version:
        return new(Reason.ORCHESTRATOR_VERSION, detail=f"{open_batch.orchestrator_version} != {orchestrator_version}")
    if block.starknet_version != open_batch.starknet_version:
        return new(Reason.STARKNET_VERSION, detail=f"{block.starknet_version} != {open_batch.starknet_version}")
    if open_batch.num_blocks >= limits.max_blocks_per_snos_batch:
        return new(Reason.MAX_BLOCKS, detail=f"{open_batch.num_blocks} of {limits.max_blocks_per_snos_batch}")
    if expired(open_batch.created_at, now, limits):
        return new(Reason.MAX_AGE, detail=f"{limits.max_batch_time_s:g} s")
    if crosses:
        return new(
            Reason.AGGREGATOR_BATCH,
            detail=f"{block.aggregator_batch_index} != {open_batch.aggregator_batch_index}",
        )
    combined = open_batch.builtin_weights.checked_add(block.weights)
    if combined is None:
        return new(Reason.WEIGHT_OVERFLOW)
    over = combined.exceeding(limits.bouncer_weight_limits)
    if over:
        return new(Reason.WEIGHT_LIMIT, detail=", ".join(over))
    return Decision(action=Action.ADD, reason=Reason.FITS, weights=combined)


# --------------------------------------------------------------------------------------------------
# Aggregator batches (SPEC §5.4)


@dataclass(frozen=True, slots=True, kw_only=True)
class StateDiffSize:
    """The counts of a state update the aggregator input bound is made of."""

    modified_contracts: int
    """Distinct addresses in storage diffs, nonces, deployed contracts and replaced classes."""
    storage_updates: int
    declared_classes: int
    """Declared + deprecated declared + migrated compiled classes."""


CHILD_HEADER_FELTS = 2 + 14
"""Per child of the aggregator input: length and program hash, plus the OS output header."""


def input_size_bound(*, n_children: int, message_segment_length: int, size: StateDiffSize) -> int:
    """A conservative felt count of the aggregator bootloader input (SPEC §5.4)."""
    return (
        1
        + n_children * CHILD_HEADER_FELTS
        + message_segment_length
        + 6 * size.modified_contracts
        + 3 * size.storage_updates
        + 3 * size.declared_classes
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class AggregatorBlock:
    number: int
    starknet_version: str
    weights: BouncerWeights
    size: StateDiffSize

    @property
    def initial_input_bound(self) -> int:
        """The bound of a batch of this block alone."""
        return input_size_bound(
            n_children=1, message_segment_length=self.weights.message_segment_length, size=self.size
        )

    @property
    def input_bound_increment(self) -> int:
        """What adding the block to a batch adds to its bound (the initial bound less the leading 1)."""
        return self.initial_input_bound - 1


def decide_aggregator(
    open_batch: AggregatorBatch | None,
    block: AggregatorBlock,
    limits: BatchLimits,
    *,
    now: float,
    orchestrator_version: str,
    snos_batches: int = 1,
    starts_snos_batch: bool = False,
    blob_len_with_block: int | None = None,
) -> Decision:
    """``snos_batches``: SNOS batches of the open batch so far; ``starts_snos_batch``: whether the block
    would start another one. ``blob_len_with_block``: the compressed length of the open batch's squashed
    diff with the block; when every other rule passes without it, the answer is NEEDS_BLOB_LEN."""
    own = block.weights.only(AGGREGATOR_WEIGHT_FIELDS)

    def new(reason: Reason, action: Action = Action.CLOSE_AND_START, detail: str = "") -> Decision:
        bound = block.initial_input_bound
        oversized = bound > limits.max_aggregator_input_size
        if oversized:
            detail = (detail + "; " if detail else "") + (
                f"block {block.number} alone has an input bound of {bound} > {limits.max_aggregator_input_size}"
            )
        return Decision(
            action=action, reason=reason, weights=own, input_size_bound=bound, detail=detail, oversized=oversized
        )

    if open_batch is None:
        return new(Reason.NO_OPEN_BATCH, Action.START)
    if block.number != open_batch.end_block + 1:
        return new(Reason.GAP, detail=f"block {block.number} after {open_batch.end_block}")
    bound = open_batch.aggregator_input_size_upper_bound + block.input_bound_increment
    if bound > limits.max_aggregator_input_size:
        return new(Reason.INPUT_SIZE, detail=f"{bound} > {limits.max_aggregator_input_size}")
    if open_batch.is_closed:
        return new(Reason.BATCH_CLOSED, Action.START)
    if open_batch.orchestrator_version != orchestrator_version:
        return new(Reason.ORCHESTRATOR_VERSION, detail=f"{open_batch.orchestrator_version} != {orchestrator_version}")
    if block.starknet_version != open_batch.starknet_version:
        return new(Reason.STARKNET_VERSION, detail=f"{block.starknet_version} != {open_batch.starknet_version}")
    if open_batch.num_blocks >= limits.max_batch_size:
        return new(Reason.MAX_BLOCKS, detail=f"{open_batch.num_blocks} of {limits.max_batch_size}")
    if expired(open_batch.created_at, now, limits):
        return new(Reason.MAX_AGE, detail=f"{limits.max_batch_time_s:g} s")
    combined = open_batch.builtin_weights.only(AGGREGATOR_WEIGHT_FIELDS).checked_add(own)
    if combined is None:
        return new(Reason.WEIGHT_OVERFLOW)
    over = combined.exceeding(limits.aggregator_weight_limits, AGGREGATOR_WEIGHT_FIELDS)
    if over:
        return new(Reason.WEIGHT_LIMIT, detail=", ".join(over))
    if starts_snos_batch and snos_batches >= limits.max_snos_batches_per_aggregator_batch:
        return new(Reason.MAX_SNOS_BATCHES, detail=f"{snos_batches} of {limits.max_snos_batches_per_aggregator_batch}")
    if blob_len_with_block is None:
        return Decision(action=Action.NEEDS_BLOB_LEN, reason=Reason.MISSING_BLOB_LEN, weights=combined)
    if blob_len_with_block > limits.max_blob_size:
        return new(Reason.BLOB_SIZE, detail=f"{blob_len_with_block} felts > {limits.max_blob_size}")
    return Decision(action=Action.ADD, reason=Reason.FITS, weights=combined, input_size_bound=bound)


def blob_len_fits_alone(blob_len: int, limits: BatchLimits) -> bool:
    """Whether one block's compressed state diff fits the blobs of a batch; a block that does not is
    given a batch of its own anyway (closed at once, with an alert), so the pipeline does not stall."""
    return blob_len <= limits.max_blob_size


# --------------------------------------------------------------------------------------------------
# Gates: what stops batching before a block (SPEC §5.3 version gate, §5.9 replay bounds)

KNOWN_STARKNET_VERSIONS: tuple[str, ...] = ("0.13.2", "0.13.3", "0.13.4", "0.13.5", "0.14.0", "0.14.1", "0.14.2")
"""The versions the original knows and batches (SPEC §5.3), oldest first."""

_VERSION = re.compile(r"^\d+(\.\d+){1,3}$")


def version_numbers(text: str) -> tuple[int, ...] | None:
    """``"0.14.2"`` → ``(0, 14, 2)``: two to four dotted numbers (a leading ``v`` allowed), padded to three
    and without zeros past the third (``0.14`` = ``0.14.0`` = ``0.14.0.0``); None for anything else."""
    cleaned = text.strip().removeprefix("v") if isinstance(text, str) else ""
    if not _VERSION.match(cleaned):
        return None
    numbers = tuple(int(p) for p in cleaned.split("."))
    numbers += (0,) * (3 - len(numbers))
    while len(numbers) > 3 and numbers[-1] == 0:
        numbers = numbers[:-1]
    return numbers


_KNOWN_NUMBERS = tuple((numbers, text) for text in KNOWN_STARKNET_VERSIONS if (numbers := version_numbers(text)))


def encoded_as(version: str) -> str | None:
    """The known version whose encoding (DA words, compression, aliasing) a block of ``version`` gets: itself
    when known, else the nearest lower known one (the oldest known for an older version); None when
    ``version`` is not a version. The encoders compare versions with the known versions where encoding
    changes (0.13.3, 0.13.4), so this is what they do with an allowed unknown version."""
    numbers = version_numbers(version)
    if numbers is None:
        return None
    lower = [text for known, text in _KNOWN_NUMBERS if known <= numbers]
    return lower[-1] if lower else KNOWN_STARKNET_VERSIONS[0]


@dataclass(frozen=True, slots=True)
class StarknetVersions:
    """The Starknet versions batching takes: the known ones, and those the operator allows on top
    (``--allow-starknet-versions``)."""

    allowed: tuple[str, ...] = ()
    _accepted: frozenset[tuple[int, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        texts = (*KNOWN_STARKNET_VERSIONS, *self.allowed)
        accepted = frozenset(n for t in texts if (n := version_numbers(t)) is not None)
        object.__setattr__(self, "_accepted", accepted)

    @classmethod
    def parse(cls, text: str | None) -> StarknetVersions:
        """From ``0.14.3,0.15.0`` (commas or spaces); see ``problems``."""
        return cls(tuple(p for p in re.split(r"[,\s]+", text or "") if p))

    def problems(self) -> list[str]:
        return [
            f"{v!r} is not a Starknet version (expected e.g. 0.14.3)" for v in self.allowed if not version_numbers(v)
        ]

    def admits(self, version: str) -> bool:
        numbers = version_numbers(version)
        return numbers is not None and numbers in self._accepted

    def check(self, block: int, version: str) -> Hold | None:
        """SPEC §5.3: a block of a version neither known nor allowed is not batched."""
        if self.admits(version):
            return None
        detail = "known: " + ", ".join(KNOWN_STARKNET_VERSIONS)
        if self.allowed:
            detail += "; allowed: " + ", ".join(self.allowed)
        return Hold(kind=HoldKind.UNKNOWN_VERSION, block=block, version=version, detail=detail)


class HoldKind(enum.StrEnum):
    UNKNOWN_VERSION = "unknown_starknet_version"
    HASH_MISMATCH = "block_hash_mismatch"
    REFERENCE_UNAVAILABLE = "reference_unavailable"


@dataclass(frozen=True, slots=True, kw_only=True)
class Hold:
    """Batching stops before ``block``: the blocks before it stay batched, it and those after wait."""

    kind: HoldKind
    block: int
    detail: str = ""
    version: str = ""
    """UNKNOWN_VERSION: the block's version."""
    hashes: tuple[str, str] = ("", "")
    """HASH_MISMATCH: the block's hash at the sequencer and at the reference."""

    @property
    def waits(self) -> bool:
        """The reference node cannot tell (unreachable, or not at the block yet): an outage, waited out and
        tried again with the trigger's back-off; no alert. The others need the operator: alerted once."""
        return self.kind == HoldKind.REFERENCE_UNAVAILABLE

    @property
    def closes_open_batches(self) -> bool:
        """An unknown version: the open batches close now (a block of another version would close them
        anyway), so their blocks are proven and settled while the operator decides (the original's intent)."""
        return self.kind == HoldKind.UNKNOWN_VERSION

    def describe(self) -> str:
        """One line: ``batching stopped before block 12: ...``."""
        if self.kind == HoldKind.UNKNOWN_VERSION:
            why = f"unknown Starknet version {self.version!r} ({self.detail})"
        elif self.kind == HoldKind.HASH_MISMATCH:
            why = f"replay bounds: block hash {self.hashes[0]} at the sequencer, {self.hashes[1]} at the reference"
        else:
            why = f"replay bounds: the reference node cannot give block {self.block} ({self.detail})"
        return f"batching stopped before block {self.block}: {why}"

    def alert(self) -> tuple[str, str]:
        """The alert's subject and message (for the holds that need the operator)."""
        n = self.block
        if self.kind == HoldKind.UNKNOWN_VERSION:
            encoding = encoded_as(self.version)
            allow = (
                f"or allow it with --allow-starknet-versions {self.version.strip()} and restart (its blocks are then "
                f"encoded like {encoding} blocks)"
                if encoding is not None
                else "(it is not a version: the sequencer's answer needs looking at)"
            )
            return (
                f"Batching stopped before block {n}: unknown Starknet version {self.version!r}",
                f"Block {n} announces Starknet version {self.version!r}, which this orchestrator does not know "
                f"({self.detail}): its batches and blobs could disagree with SNOS. Batching stops before block {n}; "
                f"the blocks before it are batched and their open batches closed. To go on, upgrade the "
                f"orchestrator {allow}.",
            )
        madara, reference = self.hashes
        return (
            f"Batching stopped before block {n}: block hash differs from the reference node",
            f"Replay bounds: block {n} has hash {madara} at the sequencer and {reference} at the reference node "
            f"(--replay-bounds-rpc-url). Batching stops before block {n}; the blocks before it stay batched. "
            "It is checked again on every batching run and resumes by itself once the two agree; if the "
            "reference is wrong or no longer wanted, remove --replay-bounds-rpc-url and restart.",
        )

    def error(self, *, progressed: bool) -> BatchingStopped:
        return (BatchingWaits if self.waits else BatchingStopped)(self, progressed=progressed)


def _hash_text(value: object) -> str | None:
    """A block hash as ``0x`` + lowercase hex without leading zeros; None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        number = int(value, 16) if value.lower().startswith("0x") else int(value)
    except ValueError:
        return None
    return hex(number)


def check_block_hash(block: int, madara_header: Mapping[str, object], reference_header: object) -> Hold | None:
    """SPEC §5.9: the block's hash at the sequencer against the reference node's ``getBlockWithTxHashes``
    answer. A reference block that is not final yet (or an answer without a hash) waits; a different hash
    stops batching before the block."""
    madara = _hash_text(madara_header.get("block_hash"))
    if not isinstance(reference_header, Mapping):
        return reference_unavailable(block, f"it answered {type(reference_header).__name__}, not a block")
    status = str(reference_header.get("status", "")).upper()
    reference = _hash_text(reference_header.get("block_hash"))
    if reference is None or status in ("PENDING", "PRE_CONFIRMED"):
        return reference_unavailable(block, f"block {block} is not final there yet")
    if madara == reference:
        return None
    return Hold(kind=HoldKind.HASH_MISMATCH, block=block, hashes=(madara or "none", reference))


def reference_unavailable(block: int, why: str) -> Hold:
    """The reference node could not be asked (or did not answer with the block): wait (``Hold.waits``)."""
    return Hold(kind=HoldKind.REFERENCE_UNAVAILABLE, block=block, detail=cut_urls(why))


class BatchingStopped(OrchestratorError):
    """A batching run stopped before ``hold.block``; what it did before that was saved (``progressed``:
    a batch was created, grown or closed)."""

    def __init__(self, hold: Hold, *, progressed: bool) -> None:
        super().__init__(hold.describe())
        self.hold = hold
        self.progressed = progressed


class BatchingWaits(BatchingStopped, BackendUnavailable):
    """A stop that is an outage to wait out (the reference node cannot tell yet)."""
