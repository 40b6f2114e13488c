"""The batching policy driven over generated block streams: whatever the blocks, limits and clock, the
batches tile the chain and each respects the limits it should (SPEC §5.3, §5.4).

The driver below is a reference batcher, not the trigger: it keeps the open batches as values, asks
``decide_aggregator`` first (told by a trial ``decide_snos`` whether the block would start a SNOS batch),
then ``decide_snos`` with the block's final aggregator batch. Like the trigger it may close a batch
early, when its age passed (``expired``) or it is full (``*_batch_full``), and it closes a batch of a
single block too big for any batch at once. The checks recompute everything from the blocks.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from madara_orchestrator.domain.batches import (
    U64_MAX,
    WEIGHT_FIELDS,
    AggregatorBatch,
    AggregatorBatchStatus,
    BouncerWeights,
    SnosBatch,
    SnosBatchStatus,
)
from madara_orchestrator.domain.batching import (
    Action,
    AggregatorBlock,
    BatchLimits,
    Decision,
    SnosBlock,
    StateDiffSize,
    aggregator_batch_full,
    block_weights,
    decide_aggregator,
    decide_snos,
    expired,
    input_size_bound,
    snos_batch_full,
)
from tests.helpers.depth import examples

OURS = "0.1.0"
T0 = 1_700_000_000.0
PROPERTY_SETTINGS = settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class GenBlock:
    starknet_version: str
    reported: BouncerWeights
    size: StateDiffSize
    blob_felts: int
    """This block's share of a batch's compressed length: the fake length of a batch is the sum."""
    dt: float
    """Seconds the clock advances before this block is evaluated."""
    skip: int
    """Block numbers missing before this one (a gap), usually none."""


# --------------------------------------------------------------------------------------------------
# Strategies


def _rarely(rare: st.SearchStrategy[int], usual: st.SearchStrategy[int], one_in: int = 12) -> st.SearchStrategy[int]:
    """``rare`` about once in ``one_in`` draws, so every rule gets its turn and none drowns the others."""
    return st.integers(1, one_in).flatmap(lambda k: rare if k == 1 else usual)


# Small weights, and now and then half of u64 so that two of them overflow.
_component = _rarely(st.just(2**63), st.integers(0, 30), one_in=40)
_limit_component = _rarely(st.just(U64_MAX), st.integers(1, 400), one_in=4)

gen_weights = st.builds(BouncerWeights, **dict.fromkeys(WEIGHT_FIELDS, _component))
gen_weight_limits = st.builds(BouncerWeights, **dict.fromkeys(WEIGHT_FIELDS, _limit_component))

gen_block = st.builds(
    GenBlock,
    starknet_version=_rarely(st.just(1), st.just(0), one_in=10).map(lambda k: ("0.14.0", "0.14.1")[k]),
    reported=gen_weights,
    size=st.builds(
        StateDiffSize,
        modified_contracts=st.integers(0, 8),
        storage_updates=_rarely(st.integers(0, 2_000), st.integers(0, 20), one_in=25),
        declared_classes=st.integers(0, 2),
    ),
    blob_felts=_rarely(st.integers(0, 9_000), st.integers(0, 2_500)),
    dt=st.floats(0, 6, allow_nan=False, allow_infinity=False),
    skip=_rarely(st.integers(1, 3), st.just(0), one_in=15),
)


@st.composite
def gen_limits(draw: st.DrawFn, *, fixed: bool = False) -> BatchLimits:
    return BatchLimits(
        max_batch_time_s=draw(_rarely(st.integers(1, 20), st.integers(20, 200), one_in=4)),
        max_blocks_per_snos_batch=draw(st.integers(1, 6)),
        fixed_blocks_per_snos_batch=draw(st.integers(1, 6)) if fixed else None,
        max_batch_size=draw(st.integers(1, 20)),
        max_snos_batches_per_aggregator_batch=draw(st.integers(1, 6)),
        max_num_blobs=draw(st.sampled_from([1, 1, 2])),
        blob_size_buffer=draw(st.integers(0, 200)),
        max_aggregator_input_size=draw(_rarely(st.integers(17, 120), st.integers(200, 3_000), one_in=8)),
        default_empty_block_proving_gas=draw(st.integers(0, 30)),
        bouncer_weight_limits=draw(gen_weight_limits),
    )


# --------------------------------------------------------------------------------------------------
# The reference driver


@dataclass
class Run:
    limits: BatchLimits
    blocks: dict[int, GenBlock]
    times: dict[int, float] = field(default_factory=dict)
    snos: list[SnosBatch] = field(default_factory=list)
    """Every SNOS batch, in index order; only the last may be open."""
    aggregator: list[AggregatorBatch] = field(default_factory=list)


def _snos_apply(run: Run, decision: Decision, block: SnosBlock, now: float) -> None:
    current = run.snos[-1] if run.snos else None
    if decision.action == Action.ADD:
        assert current is not None and not current.is_closed, f"ADD to {current}"
        run.snos[-1] = replace(current, end_block=block.number, builtin_weights=decision.weights, updated_at=now)
        return
    assert decision.action in (Action.START, Action.CLOSE_AND_START), decision.describe()
    if current is not None:
        run.snos[-1] = replace(current, status=SnosBatchStatus.CLOSED, updated_at=now)
    run.snos.append(
        SnosBatch(
            index=len(run.snos) + 1,
            start_block=block.number,
            end_block=block.number,
            status=SnosBatchStatus.OPEN,
            created_at=now,
            updated_at=now,
            starknet_version=block.starknet_version,
            orchestrator_version=OURS,
            aggregator_batch_index=block.aggregator_batch_index,
            builtin_weights=decision.weights,
        )
    )


def _aggregator_apply(run: Run, decision: Decision, block: AggregatorBlock, own_blob_len: int, now: float) -> None:
    current = run.aggregator[-1] if run.aggregator else None
    if decision.action == Action.ADD:
        assert current is not None and not current.is_closed, f"ADD to {current}"
        run.aggregator[-1] = replace(
            current,
            end_block=block.number,
            builtin_weights=decision.weights,
            aggregator_input_size_upper_bound=decision.input_size_bound,
            blob_len=current.blob_len + own_blob_len,
            updated_at=now,
        )
        return
    assert decision.action in (Action.START, Action.CLOSE_AND_START), decision.describe()
    assert decision.oversized == (block.initial_input_bound > run.limits.max_aggregator_input_size)
    if current is not None:
        run.aggregator[-1] = replace(current, status=AggregatorBatchStatus.CLOSED, updated_at=now)
    too_big = decision.oversized or own_blob_len > run.limits.max_blob_size
    run.aggregator.append(
        AggregatorBatch(
            index=len(run.aggregator) + 1,
            start_block=block.number,
            end_block=block.number,
            # A block too big for any batch gets one of its own, closed at once.
            status=AggregatorBatchStatus.CLOSED if too_big else AggregatorBatchStatus.OPEN,
            created_at=now,
            updated_at=now,
            starknet_version=block.starknet_version,
            orchestrator_version=OURS,
            blob_len=own_blob_len,
            aggregator_input_size_upper_bound=decision.input_size_bound,
            builtin_weights=decision.weights,
        )
    )


def _close_early(run: Run, now: float) -> None:
    """What the trigger does between blocks: close an open batch that is too old or full."""
    limits = run.limits
    if run.aggregator and not run.aggregator[-1].is_closed:
        batch = run.aggregator[-1]
        if expired(batch.created_at, now, limits) or aggregator_batch_full(batch, limits):
            run.aggregator[-1] = replace(batch, status=AggregatorBatchStatus.CLOSED, updated_at=now)
    if run.snos and not run.snos[-1].is_closed:
        snos = run.snos[-1]
        if expired(snos.created_at, now, limits) or snos_batch_full(snos, limits):
            run.snos[-1] = replace(snos, status=SnosBatchStatus.CLOSED, updated_at=now)


def _assert_full_batch_not_extended(batch: SnosBatch | AggregatorBatch | None, decision: Decision, full: bool) -> None:
    """A batch the trigger would close early as full is never told ADD either."""
    if batch is not None and not batch.is_closed and full:
        assert decision.action != Action.ADD, (batch, decision.describe())


def _numbered(blocks: list[GenBlock], first: int) -> dict[int, GenBlock]:
    numbered: dict[int, GenBlock] = {}
    number = first - 1
    for gen in blocks:
        number += 1 + gen.skip
        numbered[number] = gen
    return numbered


def _snos_block(number: int, gen: GenBlock, limits: BatchLimits, aggregator_index: int | None) -> SnosBlock:
    return SnosBlock(
        number=number,
        starknet_version=gen.starknet_version,
        weights=block_weights(gen.reported, limits),
        aggregator_batch_index=aggregator_index,
    )


def _decide_and_apply_snos(run: Run, open_snos: SnosBatch | None, block: SnosBlock, now: float) -> None:
    decision = decide_snos(open_snos, block, run.limits, now=now, orchestrator_version=OURS)
    if open_snos is not None and block.number == open_snos.end_block + 1:
        _assert_full_batch_not_extended(open_snos, decision, snos_batch_full(open_snos, run.limits))
    _snos_apply(run, decision, block, now)


def drive_l2(limits: BatchLimits, blocks: list[GenBlock], first: int, *, close_early: bool = True) -> Run:
    """Aggregator and SNOS batches built together, one block at a time."""
    run = Run(limits=limits, blocks=_numbered(blocks, first))
    now = T0
    for number, gen in run.blocks.items():
        now += gen.dt
        run.times[number] = now
        if close_early:
            _close_early(run, now)

        agg_block = AggregatorBlock(
            number=number, starknet_version=gen.starknet_version, weights=gen.reported, size=gen.size
        )
        current = run.aggregator[-1] if run.aggregator else None

        open_snos = run.snos[-1] if run.snos else None
        trial = decide_snos(
            open_snos,
            _snos_block(number, gen, limits, current.index if current else 1),
            limits,
            now=now,
            orchestrator_version=OURS,
        )
        snos_count = sum(1 for b in run.snos if current is not None and b.aggregator_batch_index == current.index)
        ask = functools.partial(
            decide_aggregator,
            current,
            agg_block,
            limits,
            now=now,
            orchestrator_version=OURS,
            snos_batches=snos_count,
            starts_snos_batch=trial.action != Action.ADD,
        )
        decision = ask(blob_len_with_block=None)
        if decision.action == Action.NEEDS_BLOB_LEN:
            assert current is not None
            decision = ask(blob_len_with_block=current.blob_len + gen.blob_felts)
            assert decision.action != Action.NEEDS_BLOB_LEN
        if current is not None and number == current.end_block + 1:
            _assert_full_batch_not_extended(current, decision, aggregator_batch_full(current, limits))
        _aggregator_apply(run, decision, agg_block, gen.blob_felts, now)

        block = _snos_block(number, gen, limits, run.aggregator[-1].index)
        _decide_and_apply_snos(run, open_snos, block, now)
    return run


def drive_l3(limits: BatchLimits, blocks: list[GenBlock], first: int, *, close_early: bool = True) -> Run:
    """SNOS batches alone (no aggregator index)."""
    run = Run(limits=limits, blocks=_numbered(blocks, first))
    now = T0
    for number, gen in run.blocks.items():
        now += gen.dt
        run.times[number] = now
        if close_early:
            _close_early(run, now)
        _decide_and_apply_snos(run, run.snos[-1] if run.snos else None, _snos_block(number, gen, limits, None), now)
    return run


# --------------------------------------------------------------------------------------------------
# Checks, recomputed from the blocks


def _sum_weights(items: list[BouncerWeights]) -> dict[str, int]:
    return {name: sum(getattr(w, name) for w in items) for name in WEIGHT_FIELDS}


def _effective(reported: BouncerWeights, limits: BatchLimits) -> BouncerWeights:
    """SPEC §5.3: an empty block (proving_gas 0) costs the default proving gas."""
    if reported.proving_gas:
        return reported
    return replace(reported, proving_gas=limits.default_empty_block_proving_gas)


def check_tiling(run: Run, batches: Sequence[SnosBatch | AggregatorBatch]) -> None:
    """In index order, each a range of consecutive block numbers (never across a gap), together every
    block exactly once, in order; only the last may be open."""
    assert [b.index for b in batches] == list(range(1, len(batches) + 1))
    covered = [n for b in batches for n in range(b.start_block, b.end_block + 1)]
    assert covered == list(run.blocks), [(b.start_block, b.end_block) for b in batches]
    for before, _after in itertools.pairwise(batches):
        assert before.is_closed, before


def check_common(run: Run, batch: SnosBatch | AggregatorBatch, max_blocks: int) -> None:
    blocks = [run.blocks[n] for n in range(batch.start_block, batch.end_block + 1)]
    assert batch.num_blocks <= max_blocks, batch
    # One Starknet version per batch, the one it was created with.
    assert {b.starknet_version for b in blocks} == {batch.starknet_version}, batch
    # Every block after the first joined before the batch's age reached the limit.
    for n in range(batch.start_block + 1, batch.end_block + 1):
        assert int(abs(run.times[n] - batch.created_at)) < run.limits.max_batch_time_s, (batch, n)


def check_snos_batch(run: Run, batch: SnosBatch) -> None:
    limits = run.limits
    if limits.fixed_blocks_per_snos_batch is not None:
        # Fixed size overrides versions, age and weights: only the size is a limit.
        assert batch.num_blocks <= limits.fixed_blocks_per_snos_batch, batch
        return
    check_common(run, batch, limits.max_blocks_per_snos_batch)
    blocks = [run.blocks[n] for n in range(batch.start_block, batch.end_block + 1)]
    total = _sum_weights([_effective(b.reported, limits) for b in blocks])
    assert batch.builtin_weights.to_json() == total, batch
    if batch.num_blocks > 1:
        assert all(total[name] <= getattr(limits.bouncer_weight_limits, name) for name in WEIGHT_FIELDS), (
            batch,
            total,
        )


def check_aggregator_batch(run: Run, batch: AggregatorBatch) -> None:
    limits = run.limits
    check_common(run, batch, limits.max_batch_size)
    blocks = [run.blocks[n] for n in range(batch.start_block, batch.end_block + 1)]
    total = _sum_weights([b.reported for b in blocks])
    assert batch.builtin_weights.to_json() == {
        name: (total[name] if name in ("l1_gas", "message_segment_length") else 0) for name in WEIGHT_FIELDS
    }
    bound = input_size_bound(
        n_children=len(blocks),
        message_segment_length=total["message_segment_length"],
        size=StateDiffSize(
            modified_contracts=sum(b.size.modified_contracts for b in blocks),
            storage_updates=sum(b.size.storage_updates for b in blocks),
            declared_classes=sum(b.size.declared_classes for b in blocks),
        ),
    )
    assert batch.aggregator_input_size_upper_bound == bound, batch
    assert batch.blob_len == sum(b.blob_felts for b in blocks), batch
    if batch.num_blocks > 1:
        assert bound <= limits.max_aggregator_input_size, batch
        assert batch.blob_len <= limits.max_blob_size, batch
        assert total["l1_gas"] <= limits.bouncer_weight_limits.l1_gas, batch
        assert total["message_segment_length"] <= limits.bouncer_weight_limits.message_segment_length, batch


def check_snos_inside_aggregator(run: Run) -> None:
    by_index = {b.index: b for b in run.aggregator}
    per_aggregator: dict[int, int] = {}
    for snos in run.snos:
        assert snos.aggregator_batch_index is not None
        parent = by_index[snos.aggregator_batch_index]
        assert parent.start_block <= snos.start_block <= snos.end_block <= parent.end_block, (snos, parent)
        per_aggregator[parent.index] = per_aggregator.get(parent.index, 0) + 1
    assert set(per_aggregator) == set(by_index), "an aggregator batch without SNOS batches"
    for index, count in per_aggregator.items():
        assert count <= run.limits.max_snos_batches_per_aggregator_batch, (index, count)


# --------------------------------------------------------------------------------------------------
# Properties


@PROPERTY_SETTINGS
@given(
    limits=st.booleans().flatmap(lambda fixed: gen_limits(fixed=fixed)),
    blocks=st.lists(gen_block, min_size=1, max_size=40),
    first=st.integers(0, 1_000),
    close_early=st.booleans(),
)
def test_l2_batches_tile_the_chain_and_respect_every_limit(
    limits: BatchLimits, blocks: list[GenBlock], first: int, close_early: bool
) -> None:
    # With or without a fixed SNOS batch size: SNOS batches stay inside their aggregator batch either way.
    run = drive_l2(limits, blocks, first, close_early=close_early)
    check_tiling(run, run.aggregator)
    check_tiling(run, run.snos)
    for aggregator_batch in run.aggregator:
        check_aggregator_batch(run, aggregator_batch)
    for snos_batch in run.snos:
        check_snos_batch(run, snos_batch)
    check_snos_inside_aggregator(run)


@PROPERTY_SETTINGS
@given(
    limits=gen_limits(),
    blocks=st.lists(gen_block, min_size=1, max_size=40),
    first=st.integers(0, 1_000),
    close_early=st.booleans(),
)
def test_l3_snos_batches_tile_the_chain_and_respect_every_limit(
    limits: BatchLimits, blocks: list[GenBlock], first: int, close_early: bool
) -> None:
    run = drive_l3(limits, blocks, first, close_early=close_early)
    check_tiling(run, run.snos)
    for batch in run.snos:
        assert batch.aggregator_batch_index is None
        check_snos_batch(run, batch)


@PROPERTY_SETTINGS
@given(
    limits=gen_limits(fixed=True),
    blocks=st.lists(gen_block, min_size=1, max_size=40),
    first=st.integers(0, 1_000),
)
def test_l3_fixed_size_snos_batches_have_exactly_that_many_blocks(
    limits: BatchLimits, blocks: list[GenBlock], first: int
) -> None:
    # Fixed size overrides versions, age and weights, so only the sizes are checked. Nothing is closed
    # early here, so a batch short of the fixed size can only have been ended by a gap.
    run = drive_l3(limits, blocks, first, close_early=False)
    check_tiling(run, run.snos)
    assert limits.fixed_blocks_per_snos_batch is not None
    assert all(1 <= b.num_blocks <= limits.fixed_blocks_per_snos_batch for b in run.snos)
    for before, after in itertools.pairwise(run.snos):
        # Short only when a gap ended it.
        assert before.num_blocks == limits.fixed_blocks_per_snos_batch or after.start_block > before.end_block + 1
