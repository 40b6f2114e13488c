"""The batching policy (SPEC §5.3, §5.4), one rule at a time, each at its limit and one past it.

Expected values are written from the SPEC, not read back from the code: the limits (10 blocks,
100 blocks, 750,000 felts, 24,561 felts, the bouncer defaults) are spelled out here on purpose.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

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
    Reason,
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
from madara_orchestrator.domain.errors import InvalidInput

NOW = 1_700_000_000.0
OURS = "0.1.0"
SN = "0.14.0"
HOUR = 3600

# SPEC §5.3, written out independently of DEFAULT_BOUNCER_WEIGHT_LIMITS.
SPEC_LIMITS = {
    "l1_gas": 4_400_000,
    "message_segment_length": 3_700,
    "n_events": 50_000,
    "state_diff_size": 24_556,
    "sierra_gas": 4_000_000_000,
    "n_txs": 10_000,
    "proving_gas": 5_000_000_000,
    "receipt_l2_gas": 2_500_000_000,
}
NON_AGGREGATOR_FIELDS = [name for name in WEIGHT_FIELDS if name not in ("l1_gas", "message_segment_length")]


def limits(**changes: Any) -> BatchLimits:
    return BatchLimits(max_batch_time_s=HOUR, **changes)


def weights(**values: int) -> BouncerWeights:
    return BouncerWeights(**values)


# --------------------------------------------------------------------------------------------------
# SNOS helpers


def snos_batch(num_blocks: int = 1, **changes: Any) -> SnosBatch:
    """An open SNOS batch ending at block 100, made by us, at NOW."""
    batch = SnosBatch(
        index=1,
        start_block=100 - num_blocks + 1,
        end_block=100,
        status=SnosBatchStatus.OPEN,
        created_at=NOW,
        updated_at=NOW,
        starknet_version=SN,
        orchestrator_version=OURS,
    )
    return replace(batch, **changes)


def snos_block(number: int = 101, **changes: Any) -> SnosBlock:
    return replace(SnosBlock(number=number, starknet_version=SN, weights=weights(n_txs=1)), **changes)


def snos(
    batch: SnosBatch | None,
    block: SnosBlock | None = None,
    lim: BatchLimits | None = None,
    *,
    now: float = NOW,
    orchestrator_version: str = OURS,
) -> Decision:
    return decide_snos(
        batch,
        block if block is not None else snos_block(),
        lim if lim is not None else limits(),
        now=now,
        orchestrator_version=orchestrator_version,
    )


def assert_snos_closes(decision: Decision, reason: Reason, block: SnosBlock | None = None) -> None:
    assert (decision.action, decision.reason) == (Action.CLOSE_AND_START, reason), decision.describe()
    assert decision.closes_open_batch
    # The new batch starts with the block's own weights.
    assert decision.weights == (block if block is not None else snos_block()).weights


def assert_adds(decision: Decision) -> None:
    assert (decision.action, decision.reason) == (Action.ADD, Reason.FITS), decision.describe()
    assert not decision.closes_open_batch


# --------------------------------------------------------------------------------------------------
# SNOS: no open batch, gap, fixed size


def test_snos_first_block_starts_a_batch_without_any_check() -> None:
    block = snos_block(weights=weights(**{name: U64_MAX for name in WEIGHT_FIELDS}), starknet_version="0.13.2")
    decision = snos(None, block, limits(fixed_blocks_per_snos_batch=1, max_blocks_per_snos_batch=1))
    assert (decision.action, decision.reason) == (Action.START, Reason.NO_OPEN_BATCH)
    assert decision.weights == block.weights
    assert not decision.closes_open_batch


@pytest.mark.parametrize("number", [99, 100, 102, 200])
def test_snos_block_not_following_the_batch_closes_it(number: int) -> None:
    block = snos_block(number)
    decision = snos(snos_batch(), block)
    assert_snos_closes(decision, Reason.GAP, block)


def test_snos_next_block_is_not_a_gap() -> None:
    assert_adds(snos(snos_batch(), snos_block(101)))


def test_snos_fixed_size_below_adds_with_zero_weights() -> None:
    decision = snos(snos_batch(num_blocks=4), lim=limits(fixed_blocks_per_snos_batch=5))
    assert (decision.action, decision.reason) == (Action.ADD, Reason.FIXED_SIZE_NOT_REACHED)
    assert decision.weights == BouncerWeights()


@pytest.mark.parametrize("num_blocks", [5, 6])
def test_snos_fixed_size_reached_closes(num_blocks: int) -> None:
    decision = snos(snos_batch(num_blocks=num_blocks), lim=limits(fixed_blocks_per_snos_batch=5))
    assert_snos_closes(decision, Reason.FIXED_SIZE_REACHED)


def test_snos_fixed_size_above_the_max_blocks_still_adds() -> None:
    # Fixed size overrides max_blocks_per_snos_batch (10): 15 blocks of a fixed 20 keep growing.
    decision = snos(snos_batch(num_blocks=15), lim=limits(fixed_blocks_per_snos_batch=20))
    assert decision.action == Action.ADD


# Everything that would close the batch in normal mode, applied to a batch below its fixed size.
OVERRIDDEN_BY_FIXED_SIZE: dict[str, Callable[[dict[str, Any]], None]] = {
    "orchestrator version": lambda s: s.update(orchestrator_version="0.0.9"),
    "starknet version": lambda s: s.update(block=replace(s["block"], starknet_version="0.14.1")),
    "age": lambda s: s.update(now=NOW + 10 * HOUR),
    "weight overflow": lambda s: s.update(batch=replace(s["batch"], builtin_weights=weights(n_txs=U64_MAX))),
    "weight limit": lambda s: s.update(block=replace(s["block"], weights=weights(n_events=10**9))),
}


@pytest.mark.parametrize("rule", sorted(OVERRIDDEN_BY_FIXED_SIZE))
def test_snos_fixed_size_overrides_every_other_rule(rule: str) -> None:
    scenario: dict[str, Any] = {
        "batch": snos_batch(num_blocks=2),
        "block": snos_block(),
        "now": NOW,
        "orchestrator_version": OURS,
    }
    OVERRIDDEN_BY_FIXED_SIZE[rule](scenario)
    decision = decide_snos(
        scenario["batch"],
        scenario["block"],
        limits(fixed_blocks_per_snos_batch=3),
        now=scenario["now"],
        orchestrator_version=scenario["orchestrator_version"],
    )
    assert (decision.action, decision.reason) == (Action.ADD, Reason.FIXED_SIZE_NOT_REACHED)


def test_snos_fixed_size_batch_does_not_cross_an_aggregator_batch() -> None:
    # Where we differ from the original (in which fixed size overrides this rule too): a SNOS batch that
    # straddles two aggregator batches fails the Aggregator trigger's child check (SPEC §4.9) forever.
    decision = snos(
        snos_batch(num_blocks=2, aggregator_batch_index=1),
        snos_block(aggregator_batch_index=2),
        limits(fixed_blocks_per_snos_batch=3),
    )
    assert_snos_closes(decision, Reason.AGGREGATOR_BATCH, snos_block(aggregator_batch_index=2))


def test_snos_fixed_size_batch_of_the_same_aggregator_batch_adds() -> None:
    decision = snos(
        snos_batch(num_blocks=2, aggregator_batch_index=1),
        snos_block(aggregator_batch_index=1),
        limits(fixed_blocks_per_snos_batch=3),
    )
    assert (decision.action, decision.reason) == (Action.ADD, Reason.FIXED_SIZE_NOT_REACHED)


def test_snos_closed_batch_is_never_extended_even_in_fixed_size_mode() -> None:
    # Where we differ from the original: the closed check comes before the fixed size, so a closed batch
    # (whose SnosRun job may exist) never grows.
    decision = snos(snos_batch(num_blocks=2, status=SnosBatchStatus.CLOSED), lim=limits(fixed_blocks_per_snos_batch=3))
    assert (decision.action, decision.reason) == (Action.START, Reason.BATCH_CLOSED)


# --------------------------------------------------------------------------------------------------
# SNOS: closed, versions, max blocks, age


@pytest.mark.parametrize("status", [s for s in SnosBatchStatus if s != SnosBatchStatus.OPEN])
def test_snos_closed_batch_is_not_extended(status: SnosBatchStatus) -> None:
    decision = snos(snos_batch(status=status))
    assert (decision.action, decision.reason) == (Action.START, Reason.BATCH_CLOSED)
    assert decision.weights == snos_block().weights


def test_snos_batch_of_another_orchestrator_version_closes() -> None:
    decision = snos(snos_batch(orchestrator_version="0.0.9"))
    assert_snos_closes(decision, Reason.ORCHESTRATOR_VERSION)
    assert "0.0.9" in decision.detail and OURS in decision.detail


def test_snos_starknet_version_change_mid_stream_closes() -> None:
    block = snos_block(starknet_version="0.14.1")
    decision = snos(snos_batch(num_blocks=3), block)
    assert_snos_closes(decision, Reason.STARKNET_VERSION, block)


@pytest.mark.parametrize(("num_blocks", "adds"), [(1, True), (9, True), (10, False), (11, False)])
def test_snos_max_blocks_default_is_ten(num_blocks: int, adds: bool) -> None:
    decision = snos(snos_batch(num_blocks=num_blocks))
    if adds:
        assert_adds(decision)
    else:
        assert_snos_closes(decision, Reason.MAX_BLOCKS)


@pytest.mark.parametrize(("num_blocks", "adds"), [(2, True), (3, False)])
def test_snos_max_blocks_setting(num_blocks: int, adds: bool) -> None:
    decision = snos(snos_batch(num_blocks=num_blocks), lim=limits(max_blocks_per_snos_batch=3))
    assert decision.action == (Action.ADD if adds else Action.CLOSE_AND_START)


@pytest.mark.parametrize(
    ("age", "closes"),
    [
        (0.0, False),
        (HOUR - 1, False),
        (HOUR - 0.001, False),  # int(3599.999) = 3599
        (HOUR, True),
        (HOUR + 0.5, True),
        (10 * HOUR, True),
        # A clock that went backwards: |now - created_at| counts.
        (-(HOUR - 0.5), False),
        (-HOUR, True),
        (-10 * HOUR, True),
    ],
)
def test_snos_age_limit_in_whole_seconds(age: float, closes: bool) -> None:
    decision = snos(snos_batch(created_at=NOW - age), now=NOW)
    if closes:
        assert_snos_closes(decision, Reason.MAX_AGE)
    else:
        assert_adds(decision)


@pytest.mark.parametrize(
    ("created_at", "now", "max_s", "is_expired"),
    [
        (100.0, 110.0, 10, True),
        (100.0, 109.999, 10, False),
        (100.0, 90.0, 10, True),
        (100.0, 90.5, 10, False),
        # A fractional limit: whole seconds of age are compared with it.
        (100.0, 110.9, 10.5, False),
        (100.0, 111.0, 10.5, True),
    ],
)
def test_expired_compares_whole_seconds_of_absolute_age(
    created_at: float, now: float, max_s: float, is_expired: bool
) -> None:
    assert expired(created_at, now, BatchLimits(max_batch_time_s=max_s)) is is_expired


@pytest.mark.parametrize(
    ("num_blocks", "changes", "is_full"),
    [
        (9, {}, False),
        (10, {}, True),
        (11, {}, True),
        (2, {"max_blocks_per_snos_batch": 3}, False),
        (3, {"max_blocks_per_snos_batch": 3}, True),
        # A fixed size replaces the maximum, above or below it.
        (2, {"fixed_blocks_per_snos_batch": 3}, False),
        (3, {"fixed_blocks_per_snos_batch": 3}, True),
        (15, {"fixed_blocks_per_snos_batch": 20}, False),
        (20, {"fixed_blocks_per_snos_batch": 20}, True),
    ],
)
def test_snos_batch_full_agrees_with_the_block_count_rules(
    num_blocks: int, changes: dict[str, Any], is_full: bool
) -> None:
    lim = limits(**changes)
    batch = snos_batch(num_blocks=num_blocks)
    assert snos_batch_full(batch, lim) is is_full
    # A full batch is exactly one the next block cannot join.
    assert (snos(batch, lim=lim).action != Action.ADD) is is_full


@pytest.mark.parametrize(("num_blocks", "is_full"), [(99, False), (100, True), (101, True)])
def test_aggregator_batch_full_at_max_batch_size(num_blocks: int, is_full: bool) -> None:
    batch = agg_batch(num_blocks=num_blocks)
    assert aggregator_batch_full(batch, limits()) is is_full
    assert (agg(batch).action != Action.ADD) is is_full
    assert aggregator_batch_full(agg_batch(num_blocks=3), limits(max_batch_size=3))


# --------------------------------------------------------------------------------------------------
# SNOS: aggregator index


def test_snos_block_of_another_aggregator_batch_closes() -> None:
    block = snos_block(aggregator_batch_index=8)
    decision = snos(snos_batch(aggregator_batch_index=7), block)
    assert_snos_closes(decision, Reason.AGGREGATOR_BATCH, block)


def test_snos_block_of_the_same_aggregator_batch_adds() -> None:
    assert_adds(snos(snos_batch(aggregator_batch_index=7), snos_block(aggregator_batch_index=7)))


def test_snos_batch_without_aggregator_index_ignores_it() -> None:
    # L3: no aggregator batches.
    assert_adds(snos(snos_batch(), snos_block(aggregator_batch_index=None)))


# --------------------------------------------------------------------------------------------------
# SNOS: weights


@pytest.mark.parametrize("name", WEIGHT_FIELDS)
def test_snos_weight_overflow_at_two_to_the_64_closes(name: str) -> None:
    lim = limits(bouncer_weight_limits=weights(**dict.fromkeys(WEIGHT_FIELDS, U64_MAX)))
    batch = snos_batch(builtin_weights=weights(**{name: U64_MAX - 5}))
    at_max = snos_block(weights=weights(**{name: 5}))
    decision = snos(batch, at_max, lim)
    assert_adds(decision)
    assert getattr(decision.weights, name) == 2**64 - 1

    past = snos_block(weights=weights(**{name: 6}))
    assert_snos_closes(snos(batch, past, lim), Reason.WEIGHT_OVERFLOW, past)


@pytest.mark.parametrize("name", WEIGHT_FIELDS)
def test_snos_weight_limit_per_component(name: str) -> None:
    limit = SPEC_LIMITS[name]
    batch = snos_batch(num_blocks=2, builtin_weights=weights(**{name: limit - 10}))

    at_limit = snos(batch, snos_block(weights=weights(**{name: 10})))
    assert_adds(at_limit)
    assert at_limit.weights == weights(**{name: limit})

    block = snos_block(weights=weights(**{name: 11}))
    past = snos(batch, block)
    assert_snos_closes(past, Reason.WEIGHT_LIMIT, block)
    assert past.detail.split(", ") == [name]


def test_snos_weights_add_up_component_wise() -> None:
    batch = snos_batch(builtin_weights=weights(l1_gas=1, n_events=2, n_txs=3, proving_gas=4))
    block = snos_block(weights=weights(l1_gas=10, n_events=20, sierra_gas=30, proving_gas=40))
    decision = snos(batch, block)
    assert_adds(decision)
    assert decision.weights == weights(l1_gas=11, n_events=22, n_txs=3, sierra_gas=30, proving_gas=44)


def test_snos_weight_limit_names_every_component_over() -> None:
    batch = snos_batch(builtin_weights=weights(l1_gas=4_400_000, n_txs=10_000))
    decision = snos(batch, snos_block(weights=weights(l1_gas=1, n_txs=1, n_events=1)))
    assert decision.reason == Reason.WEIGHT_LIMIT
    assert sorted(decision.detail.split(", ")) == ["l1_gas", "n_txs"]


def test_snos_weight_limits_come_from_the_settings() -> None:
    lim = limits(bouncer_weight_limits=weights(**{**SPEC_LIMITS, "n_txs": 3}))
    batch = snos_batch(builtin_weights=weights(n_txs=2))
    assert_adds(snos(batch, snos_block(weights=weights(n_txs=1)), lim))
    assert snos(batch, snos_block(weights=weights(n_txs=2)), lim).reason == Reason.WEIGHT_LIMIT


def test_block_weights_gives_an_empty_block_the_default_proving_gas() -> None:
    reported = weights(l1_gas=7, n_txs=0, proving_gas=0)
    assert block_weights(reported, limits()) == weights(l1_gas=7, proving_gas=1_500_000)
    assert block_weights(reported, limits(default_empty_block_proving_gas=42)) == weights(l1_gas=7, proving_gas=42)


def test_block_weights_keeps_reported_proving_gas() -> None:
    reported = weights(proving_gas=1, n_events=3)
    assert block_weights(reported, limits()) == reported


@pytest.mark.parametrize(("room", "adds"), [(1_500_000, True), (1_499_999, False)])
def test_snos_empty_blocks_count_their_default_proving_gas(room: int, adds: bool) -> None:
    lim = limits()
    batch = snos_batch(builtin_weights=weights(proving_gas=5_000_000_000 - room))
    block = snos_block(weights=block_weights(weights(proving_gas=0), lim))
    decision = snos(batch, block, lim)
    if adds:
        assert_adds(decision)
        assert decision.weights.proving_gas == 5_000_000_000
    else:
        assert_snos_closes(decision, Reason.WEIGHT_LIMIT, block)
        assert decision.detail == "proving_gas"


# --------------------------------------------------------------------------------------------------
# SNOS: rule order (SPEC §5.3, with our two changes: a closed batch is never extended, and a SNOS batch
# never crosses an aggregator batch, whatever the fixed size). Each rule is made to fire by a change that
# leaves the others alone; with any two applied, the reason is the one earlier in the list.

SnosScenario = dict[str, Any]


def _snos_gap(s: SnosScenario) -> None:
    s["block"] = replace(s["block"], number=105)


def _snos_fixed(s: SnosScenario) -> None:
    s["limits"] = replace(s["limits"], fixed_blocks_per_snos_batch=1)


def _snos_closed(s: SnosScenario) -> None:
    s["batch"] = replace(s["batch"], status=SnosBatchStatus.CLOSED)


def _snos_orchestrator(s: SnosScenario) -> None:
    s["orchestrator_version"] = "9.9.9"


def _snos_starknet(s: SnosScenario) -> None:
    s["block"] = replace(s["block"], starknet_version="0.14.1")


def _snos_max_blocks(s: SnosScenario) -> None:
    s["limits"] = replace(s["limits"], max_blocks_per_snos_batch=1)


def _snos_age(s: SnosScenario) -> None:
    s["now"] = NOW + HOUR


def _snos_aggregator(s: SnosScenario) -> None:
    s["block"] = replace(s["block"], aggregator_batch_index=4)


def _snos_overflow(s: SnosScenario) -> None:
    s["batch"] = replace(s["batch"], builtin_weights=weights(l1_gas=U64_MAX))
    s["block"] = replace(s["block"], weights=replace(s["block"].weights, l1_gas=1))


def _snos_weight_limit(s: SnosScenario) -> None:
    s["block"] = replace(s["block"], weights=replace(s["block"].weights, n_events=50_001))


SNOS_RULES_IN_SPEC_ORDER: list[tuple[Reason, Callable[[SnosScenario], None]]] = [
    (Reason.GAP, _snos_gap),
    (Reason.BATCH_CLOSED, _snos_closed),
    (Reason.FIXED_SIZE_REACHED, _snos_fixed),
    (Reason.ORCHESTRATOR_VERSION, _snos_orchestrator),
    (Reason.STARKNET_VERSION, _snos_starknet),
    (Reason.MAX_BLOCKS, _snos_max_blocks),
    (Reason.MAX_AGE, _snos_age),
    (Reason.AGGREGATOR_BATCH, _snos_aggregator),
    (Reason.WEIGHT_OVERFLOW, _snos_overflow),
    (Reason.WEIGHT_LIMIT, _snos_weight_limit),
]


def _decide_snos_scenario(*changes: Callable[[SnosScenario], None]) -> Decision:
    scenario: SnosScenario = {
        "batch": snos_batch(num_blocks=1, aggregator_batch_index=3),
        "block": snos_block(aggregator_batch_index=3),
        "limits": limits(),
        "now": NOW,
        "orchestrator_version": OURS,
    }
    for change in changes:
        change(scenario)
    return decide_snos(
        scenario["batch"],
        scenario["block"],
        scenario["limits"],
        now=scenario["now"],
        orchestrator_version=scenario["orchestrator_version"],
    )


def test_snos_order_scenario_adds_when_no_rule_fires() -> None:
    assert_adds(_decide_snos_scenario())


@pytest.mark.parametrize(
    ("reason", "change"), SNOS_RULES_IN_SPEC_ORDER, ids=[r.name for r, _ in SNOS_RULES_IN_SPEC_ORDER]
)
def test_snos_each_rule_fires_alone(reason: Reason, change: Callable[[SnosScenario], None]) -> None:
    assert _decide_snos_scenario(change).reason == reason


@pytest.mark.parametrize(
    ("first", "later"),
    list(itertools.combinations(SNOS_RULES_IN_SPEC_ORDER, 2)),
    ids=[f"{a.name}-before-{b.name}" for (a, _), (b, _) in itertools.combinations(SNOS_RULES_IN_SPEC_ORDER, 2)],
)
def test_snos_earlier_rule_wins(
    first: tuple[Reason, Callable[[SnosScenario], None]], later: tuple[Reason, Callable[[SnosScenario], None]]
) -> None:
    expected = first[0]
    if (first[0], later[0]) == (Reason.FIXED_SIZE_REACHED, Reason.AGGREGATOR_BATCH):
        expected = Reason.AGGREGATOR_BATCH  # in fixed-size mode the aggregator boundary comes first
    assert _decide_snos_scenario(later[1], first[1]).reason == expected
    assert _decide_snos_scenario(first[1], later[1]).reason == expected


# --------------------------------------------------------------------------------------------------
# Aggregator helpers

# A block of increment 16 + 6 + 3 = 25 felts, initial bound 26.
SMALL = StateDiffSize(modified_contracts=1, storage_updates=1, declared_classes=0)


def agg_batch(num_blocks: int = 1, **changes: Any) -> AggregatorBatch:
    batch = AggregatorBatch(
        index=1,
        start_block=100 - num_blocks + 1,
        end_block=100,
        status=AggregatorBatchStatus.OPEN,
        created_at=NOW,
        updated_at=NOW,
        starknet_version=SN,
        orchestrator_version=OURS,
        blob_len=10,
        aggregator_input_size_upper_bound=1_000,
        builtin_weights=weights(l1_gas=1),
    )
    return replace(batch, **changes)


def agg_block(number: int = 101, **changes: Any) -> AggregatorBlock:
    block = AggregatorBlock(number=number, starknet_version=SN, weights=weights(l1_gas=2), size=SMALL)
    return replace(block, **changes)


def agg(
    batch: AggregatorBatch | None,
    block: AggregatorBlock | None = None,
    lim: BatchLimits | None = None,
    *,
    now: float = NOW,
    orchestrator_version: str = OURS,
    snos_batches: int = 1,
    starts_snos_batch: bool = False,
    blob_len_with_block: int | None = 100,
) -> Decision:
    return decide_aggregator(
        batch,
        block if block is not None else agg_block(),
        lim if lim is not None else limits(),
        now=now,
        orchestrator_version=orchestrator_version,
        snos_batches=snos_batches,
        starts_snos_batch=starts_snos_batch,
        blob_len_with_block=blob_len_with_block,
    )


def assert_agg_closes(decision: Decision, reason: Reason, block: AggregatorBlock | None = None) -> None:
    block = block if block is not None else agg_block()
    assert (decision.action, decision.reason) == (Action.CLOSE_AND_START, reason), decision.describe()
    assert decision.input_size_bound == block.initial_input_bound
    assert decision.weights == weights(
        l1_gas=block.weights.l1_gas, message_segment_length=block.weights.message_segment_length
    )


# --------------------------------------------------------------------------------------------------
# Aggregator: input size bound


def test_input_size_bound_pinned_examples_of_the_spec() -> None:
    assert (
        input_size_bound(
            n_children=110,
            message_segment_length=0,
            size=StateDiffSize(modified_contracts=451, storage_updates=287_339, declared_classes=0),
        )
        == 866_484
    )
    assert (
        input_size_bound(
            n_children=1,
            message_segment_length=7,
            size=StateDiffSize(modified_contracts=4, storage_updates=3, declared_classes=4),
        )
        == 69
    )


def test_block_initial_bound_and_increment() -> None:
    block = AggregatorBlock(
        number=5,
        starknet_version=SN,
        weights=weights(message_segment_length=7, l1_gas=999),
        size=StateDiffSize(modified_contracts=4, storage_updates=3, declared_classes=4),
    )
    assert block.initial_input_bound == 69
    assert block.input_bound_increment == 68


def test_aggregator_first_block_starts_with_its_initial_bound() -> None:
    block = agg_block(weights=weights(l1_gas=5, message_segment_length=7, n_events=9, proving_gas=3))
    decision = agg(None, block, blob_len_with_block=None)
    assert (decision.action, decision.reason) == (Action.START, Reason.NO_OPEN_BATCH)
    assert decision.input_size_bound == 26 + 7
    assert decision.weights == weights(l1_gas=5, message_segment_length=7)
    assert not decision.oversized


@pytest.mark.parametrize(("room", "adds"), [(25, True), (24, False)])
def test_aggregator_input_bound_at_the_limit_and_one_past(room: int, adds: bool) -> None:
    batch = agg_batch(aggregator_input_size_upper_bound=750_000 - room)
    decision = agg(batch)
    if adds:
        assert (decision.action, decision.reason) == (Action.ADD, Reason.FITS)
        assert decision.input_size_bound == 750_000
    else:
        assert_agg_closes(decision, Reason.INPUT_SIZE)
        assert not decision.oversized


def test_aggregator_add_accumulates_bound_and_weights() -> None:
    block = agg_block(weights=weights(l1_gas=2, message_segment_length=7, n_events=5))
    decision = agg(agg_batch(builtin_weights=weights(l1_gas=1, message_segment_length=3)), block)
    assert (decision.action, decision.reason) == (Action.ADD, Reason.FITS)
    assert decision.input_size_bound == 1_000 + 25 + 7
    assert decision.weights == weights(l1_gas=3, message_segment_length=10)


# --------------------------------------------------------------------------------------------------
# Aggregator: gap, closed, versions, max blocks, age


@pytest.mark.parametrize("number", [100, 102])
def test_aggregator_gap_closes(number: int) -> None:
    block = agg_block(number)
    assert_agg_closes(agg(agg_batch(), block), Reason.GAP, block)


@pytest.mark.parametrize("status", [s for s in AggregatorBatchStatus if s != AggregatorBatchStatus.OPEN])
def test_aggregator_closed_batch_is_not_extended(status: AggregatorBatchStatus) -> None:
    decision = agg(agg_batch(status=status))
    assert (decision.action, decision.reason) == (Action.START, Reason.BATCH_CLOSED)


def test_aggregator_batch_of_another_orchestrator_version_closes() -> None:
    assert_agg_closes(agg(agg_batch(orchestrator_version="0.0.9")), Reason.ORCHESTRATOR_VERSION)


def test_aggregator_starknet_version_change_closes() -> None:
    block = agg_block(starknet_version="0.14.1")
    assert_agg_closes(agg(agg_batch(), block), Reason.STARKNET_VERSION, block)


@pytest.mark.parametrize(("num_blocks", "adds"), [(99, True), (100, False), (101, False)])
def test_aggregator_max_batch_size_default_is_one_hundred(num_blocks: int, adds: bool) -> None:
    decision = agg(agg_batch(num_blocks=num_blocks))
    if adds:
        assert decision.action == Action.ADD
    else:
        assert_agg_closes(decision, Reason.MAX_BLOCKS)


@pytest.mark.parametrize(("num_blocks", "adds"), [(3, True), (4, False)])
def test_aggregator_max_batch_size_setting(num_blocks: int, adds: bool) -> None:
    decision = agg(agg_batch(num_blocks=num_blocks), lim=limits(max_batch_size=4))
    assert decision.action == (Action.ADD if adds else Action.CLOSE_AND_START)


@pytest.mark.parametrize(
    ("age", "closes"),
    [(HOUR - 0.001, False), (HOUR, True), (-(HOUR - 0.5), False), (-HOUR, True)],
)
def test_aggregator_age_limit(age: float, closes: bool) -> None:
    decision = agg(agg_batch(created_at=NOW - age))
    if closes:
        assert_agg_closes(decision, Reason.MAX_AGE)
    else:
        assert decision.action == Action.ADD


# --------------------------------------------------------------------------------------------------
# Aggregator: weights (l1_gas and message_segment_length only)


@pytest.mark.parametrize("name", ["l1_gas", "message_segment_length"])
def test_aggregator_weight_limit_per_component(name: str) -> None:
    limit = SPEC_LIMITS[name]
    batch = agg_batch(builtin_weights=weights(**{name: limit - 10}))

    at_limit = agg(batch, agg_block(weights=weights(**{name: 10})))
    assert (at_limit.action, at_limit.reason) == (Action.ADD, Reason.FITS)
    assert getattr(at_limit.weights, name) == limit

    block = agg_block(weights=weights(**{name: 11}))
    past = agg(batch, block)
    assert_agg_closes(past, Reason.WEIGHT_LIMIT, block)
    assert past.detail.split(", ") == [name]


@pytest.mark.parametrize("name", NON_AGGREGATOR_FIELDS)
def test_aggregator_ignores_the_other_weight_components(name: str) -> None:
    # A huge n_events (or any other SNOS-only component) never closes an aggregator batch, not even by
    # overflowing.
    batch = agg_batch(builtin_weights=weights(**{name: U64_MAX}))
    decision = agg(batch, agg_block(weights=weights(**{name: U64_MAX})))
    assert (decision.action, decision.reason) == (Action.ADD, Reason.FITS)
    assert getattr(decision.weights, name) == 0


@pytest.mark.parametrize("name", ["l1_gas", "message_segment_length"])
def test_aggregator_weight_overflow_closes(name: str) -> None:
    lim = limits(
        bouncer_weight_limits=weights(**dict.fromkeys(WEIGHT_FIELDS, U64_MAX)), max_aggregator_input_size=2**70
    )
    batch = agg_batch(builtin_weights=weights(**{name: U64_MAX - 1}))
    assert agg(batch, agg_block(weights=weights(**{name: 1})), lim).action == Action.ADD
    block = agg_block(weights=weights(**{name: 2}))
    assert_agg_closes(agg(batch, block, lim), Reason.WEIGHT_OVERFLOW, block)


# --------------------------------------------------------------------------------------------------
# Aggregator: SNOS batches per aggregator batch (enforced here, unlike the original)


@pytest.mark.parametrize(
    ("snos_batches", "starts_snos_batch", "adds"),
    [
        (50, False, True),  # the block joins the last SNOS batch: no new one
        (49, True, True),  # the 50th
        (50, True, False),  # would be the 51st
        (51, True, False),
        (1, True, True),
    ],
)
def test_aggregator_max_snos_batches(snos_batches: int, starts_snos_batch: bool, adds: bool) -> None:
    decision = agg(agg_batch(), snos_batches=snos_batches, starts_snos_batch=starts_snos_batch)
    if adds:
        assert decision.action == Action.ADD
    else:
        assert_agg_closes(decision, Reason.MAX_SNOS_BATCHES)


def test_aggregator_max_snos_batches_setting() -> None:
    lim = limits(max_snos_batches_per_aggregator_batch=2)
    assert agg(agg_batch(), lim=lim, snos_batches=1, starts_snos_batch=True).action == Action.ADD
    assert agg(agg_batch(), lim=lim, snos_batches=2, starts_snos_batch=True).reason == Reason.MAX_SNOS_BATCHES


# --------------------------------------------------------------------------------------------------
# Aggregator: blob size


def test_aggregator_asks_for_the_blob_length_when_every_other_rule_passes() -> None:
    decision = agg(agg_batch(), blob_len_with_block=None)
    assert (decision.action, decision.reason) == (Action.NEEDS_BLOB_LEN, Reason.MISSING_BLOB_LEN)
    assert not decision.closes_open_batch


def test_aggregator_does_not_ask_for_the_blob_length_when_another_rule_closes() -> None:
    decision = agg(agg_batch(num_blocks=100), blob_len_with_block=None)
    assert decision.reason == Reason.MAX_BLOCKS


@pytest.mark.parametrize(("blob_len", "adds"), [(0, True), (24_561, True), (24_562, False)])
def test_aggregator_blob_size_default_limit(blob_len: int, adds: bool) -> None:
    decision = agg(agg_batch(), blob_len_with_block=blob_len)
    if adds:
        assert (decision.action, decision.reason) == (Action.ADD, Reason.FITS)
    else:
        assert_agg_closes(decision, Reason.BLOB_SIZE)


@pytest.mark.parametrize(
    ("max_num_blobs", "blob_size_buffer", "max_blob_size"),
    [(6, 15, 24_561), (1, 0, 4_096), (2, 100, 8_092), (6, 0, 24_576)],
)
def test_blob_settings_set_the_max_blob_size(max_num_blobs: int, blob_size_buffer: int, max_blob_size: int) -> None:
    lim = limits(max_num_blobs=max_num_blobs, blob_size_buffer=blob_size_buffer)
    assert lim.max_blob_size == max_blob_size
    assert agg(agg_batch(), lim=lim, blob_len_with_block=max_blob_size).action == Action.ADD
    assert agg(agg_batch(), lim=lim, blob_len_with_block=max_blob_size + 1).reason == Reason.BLOB_SIZE


# --------------------------------------------------------------------------------------------------
# Aggregator: a block too big for any batch


def _big_block(number: int = 101) -> AggregatorBlock:
    # initial bound 1 + 16 + 3·1000 = 3017
    return agg_block(number, size=StateDiffSize(modified_contracts=0, storage_updates=1_000, declared_classes=0))


def test_aggregator_block_at_the_limit_alone_is_not_oversized() -> None:
    block = _big_block()
    decision = agg(None, block, limits(max_aggregator_input_size=3_017))
    assert decision.action == Action.START
    assert not decision.oversized


def test_aggregator_oversized_first_block_starts_its_own_batch() -> None:
    block = _big_block()
    decision = agg(None, block, limits(max_aggregator_input_size=3_016), blob_len_with_block=None)
    assert (decision.action, decision.reason) == (Action.START, Reason.NO_OPEN_BATCH)
    assert decision.oversized
    assert decision.input_size_bound == 3_017
    assert "3017" in decision.detail


def test_aggregator_oversized_block_closes_the_open_batch_and_starts_its_own() -> None:
    block = _big_block()
    decision = agg(agg_batch(aggregator_input_size_upper_bound=26), block, limits(max_aggregator_input_size=3_016))
    assert_agg_closes(decision, Reason.INPUT_SIZE, block)
    assert decision.oversized


def test_aggregator_oversized_block_after_a_version_change_is_flagged_too() -> None:
    block = replace(_big_block(), starknet_version="0.14.1")
    decision = agg(agg_batch(aggregator_input_size_upper_bound=1), block, limits(max_aggregator_input_size=3_016))
    assert decision.closes_open_batch
    assert decision.oversized


def test_aggregator_batch_of_an_oversized_block_closes_at_the_next_block() -> None:
    lim = limits(max_aggregator_input_size=3_016)
    batch = agg_batch(aggregator_input_size_upper_bound=3_017)
    decision = agg(batch, agg_block(), lim)
    assert_agg_closes(decision, Reason.INPUT_SIZE)
    assert not decision.oversized


# --------------------------------------------------------------------------------------------------
# Aggregator: rule order (SPEC §5.4)

AggScenario = dict[str, Any]


@dataclass(frozen=True)
class AggRule:
    reason: Reason
    change: Callable[[AggScenario], None]


def _agg_set(**kw: Any) -> Callable[[AggScenario], None]:
    def change(s: AggScenario) -> None:
        for key, value in kw.items():
            target, _, attr = key.partition("__")
            s[target] = replace(s[target], **{attr: value}) if attr else value

    return change


def _agg_overflow(s: AggScenario) -> None:
    s["batch"] = replace(s["batch"], builtin_weights=replace(s["batch"].builtin_weights, l1_gas=U64_MAX))
    s["block"] = replace(s["block"], weights=replace(s["block"].weights, l1_gas=1))


def _agg_weight_limit(s: AggScenario) -> None:
    s["block"] = replace(s["block"], weights=replace(s["block"].weights, message_segment_length=3_701))


AGG_RULES_IN_SPEC_ORDER = [
    AggRule(Reason.GAP, _agg_set(block__number=150)),
    AggRule(Reason.INPUT_SIZE, _agg_set(batch__aggregator_input_size_upper_bound=750_000)),
    AggRule(Reason.BATCH_CLOSED, _agg_set(batch__status=AggregatorBatchStatus.CLOSED)),
    AggRule(Reason.ORCHESTRATOR_VERSION, _agg_set(orchestrator_version="9.9.9")),
    AggRule(Reason.STARKNET_VERSION, _agg_set(block__starknet_version="0.14.1")),
    AggRule(Reason.MAX_BLOCKS, _agg_set(limits__max_batch_size=1)),
    AggRule(Reason.MAX_AGE, _agg_set(now=NOW + HOUR)),
    AggRule(Reason.WEIGHT_OVERFLOW, _agg_overflow),
    AggRule(Reason.WEIGHT_LIMIT, _agg_weight_limit),
    AggRule(Reason.MAX_SNOS_BATCHES, _agg_set(snos_batches=50, starts_snos_batch=True)),
    AggRule(Reason.BLOB_SIZE, _agg_set(blob_len_with_block=24_562)),
]


def _decide_agg_scenario(*changes: Callable[[AggScenario], None]) -> Decision:
    scenario: AggScenario = {
        "batch": agg_batch(),
        "block": agg_block(),
        "limits": limits(),
        "now": NOW,
        "orchestrator_version": OURS,
        "snos_batches": 1,
        "starts_snos_batch": False,
        "blob_len_with_block": 100,
    }
    for change in changes:
        change(scenario)
    return decide_aggregator(
        scenario["batch"],
        scenario["block"],
        scenario["limits"],
        now=scenario["now"],
        orchestrator_version=scenario["orchestrator_version"],
        snos_batches=scenario["snos_batches"],
        starts_snos_batch=scenario["starts_snos_batch"],
        blob_len_with_block=scenario["blob_len_with_block"],
    )


def test_aggregator_order_scenario_adds_when_no_rule_fires() -> None:
    decision = _decide_agg_scenario()
    assert (decision.action, decision.reason) == (Action.ADD, Reason.FITS)


@pytest.mark.parametrize("rule", AGG_RULES_IN_SPEC_ORDER, ids=[r.reason.name for r in AGG_RULES_IN_SPEC_ORDER])
def test_aggregator_each_rule_fires_alone(rule: AggRule) -> None:
    assert _decide_agg_scenario(rule.change).reason == rule.reason


@pytest.mark.parametrize(
    ("first", "later"),
    list(itertools.combinations(AGG_RULES_IN_SPEC_ORDER, 2)),
    ids=[f"{a.reason.name}-before-{b.reason.name}" for a, b in itertools.combinations(AGG_RULES_IN_SPEC_ORDER, 2)],
)
def test_aggregator_earlier_rule_wins(first: AggRule, later: AggRule) -> None:
    assert _decide_agg_scenario(later.change, first.change).reason == first.reason
    assert _decide_agg_scenario(first.change, later.change).reason == first.reason


# --------------------------------------------------------------------------------------------------
# BatchLimits.problems


def test_default_limits_have_no_problems() -> None:
    lim = limits()
    assert lim.problems() == []
    assert lim.max_batch_size == 100
    assert lim.max_blocks_per_snos_batch == 10
    assert lim.max_snos_batches_per_aggregator_batch == 50
    assert lim.max_aggregator_input_size == 750_000
    assert lim.max_blob_size == 24_561
    assert lim.default_empty_block_proving_gas == 1_500_000
    assert lim.fixed_blocks_per_snos_batch is None
    assert lim.bouncer_weight_limits.to_json() == SPEC_LIMITS
    assert lim.aggregator_weight_limits == weights(l1_gas=4_400_000, message_segment_length=3_700)


@pytest.mark.parametrize(
    ("changes", "mentions"),
    [
        ({"max_batch_time_s": 0}, "max batch time"),
        ({"max_batch_time_s": -5}, "max batch time"),
        ({"max_blocks_per_snos_batch": 0}, "max blocks per SNOS batch"),
        ({"max_batch_size": 0}, "max batch size"),
        ({"max_batch_size": -1}, "max batch size"),
        ({"max_snos_batches_per_aggregator_batch": 0}, "max SNOS batches"),
        ({"max_num_blobs": 0}, "number of blobs"),
        ({"max_aggregator_input_size": 0}, "aggregator input size"),
        ({"fixed_blocks_per_snos_batch": 0}, "fixed blocks"),
        ({"blob_size_buffer": -1}, "blob size buffer"),
        ({"blob_size_buffer": 6 * 4096}, "blob size buffer"),
        ({"max_num_blobs": 1, "blob_size_buffer": 5000}, "blob size buffer"),
        ({"default_empty_block_proving_gas": -1}, "empty block proving gas"),
    ],
)
def test_limits_problems_name_each_bad_value(changes: dict[str, Any], mentions: str) -> None:
    lim = BatchLimits(**{"max_batch_time_s": HOUR, **changes})
    problems = lim.problems()
    assert len(problems) == 1, problems
    assert mentions in problems[0]


@pytest.mark.parametrize(
    "changes",
    [
        {"max_batch_time_s": 1},
        {"fixed_blocks_per_snos_batch": 1},
        {"blob_size_buffer": 6 * 4096 - 1},
        {"blob_size_buffer": 0},
        {"default_empty_block_proving_gas": 0},
        {"max_batch_size": 1, "max_blocks_per_snos_batch": 1, "max_snos_batches_per_aggregator_batch": 1},
    ],
)
def test_limits_at_their_lowest_usable_values_have_no_problems(changes: dict[str, Any]) -> None:
    assert BatchLimits(**{"max_batch_time_s": HOUR, **changes}).problems() == []


def test_limits_problems_lists_every_problem() -> None:
    lim = BatchLimits(max_batch_time_s=0, max_batch_size=0, blob_size_buffer=-1)
    assert len(lim.problems()) == 3


# --------------------------------------------------------------------------------------------------
# BouncerWeights.from_json


def test_bouncer_weights_from_json_numbers_and_hex_strings() -> None:
    parsed = BouncerWeights.from_json(
        {
            "l1_gas": 10,
            "message_segment_length": "0x10",
            "n_events": "0XfF",
            "state_diff_size": "42",
            "sierra_gas": "0xffffffffffffffff",
            "n_txs": 0,
            "proving_gas": U64_MAX,
            "receipt_l2_gas": "0x0",
        }
    )
    assert parsed.to_json() == {
        "l1_gas": 10,
        "message_segment_length": 16,
        "n_events": 255,
        "state_diff_size": 42,
        "sierra_gas": U64_MAX,
        "n_txs": 0,
        "proving_gas": U64_MAX,
        "receipt_l2_gas": 0,
    }


def test_bouncer_weights_from_json_missing_fields_take_the_defaults() -> None:
    assert BouncerWeights.from_json({"n_txs": 3}) == weights(n_txs=3)
    defaults = BouncerWeights(**SPEC_LIMITS)
    parsed = BouncerWeights.from_json({"n_txs": 3}, defaults=defaults)
    assert parsed.to_json() == {**SPEC_LIMITS, "n_txs": 3}
    assert BouncerWeights.from_json({}, defaults=defaults) == defaults


def test_bouncer_weights_round_trip_through_json() -> None:
    value = BouncerWeights(**SPEC_LIMITS)
    assert BouncerWeights.from_json(value.to_json()) == value


def test_bouncer_weights_from_json_unknown_field_is_refused() -> None:
    with pytest.raises(InvalidInput, match="l1gas"):
        BouncerWeights.from_json({"l1gas": 1})


@pytest.mark.parametrize(
    "raw",
    [-1, 2**64, "0x10000000000000000", "-1", "-0x1", True, False, 1.5, 1.0, None, "", "0x", "0xzz", "ten", [1], {}],
    ids=repr,
)
def test_bouncer_weights_from_json_bad_value_is_refused(raw: object) -> None:
    with pytest.raises(InvalidInput, match="n_events"):
        BouncerWeights.from_json({"n_events": raw})


@pytest.mark.parametrize("data", [[], "{}", 3, None])
def test_bouncer_weights_from_json_needs_an_object(data: object) -> None:
    with pytest.raises(InvalidInput):
        BouncerWeights.from_json(data)


@pytest.mark.parametrize("raw", [-1, 2**64, True])
def test_bouncer_weights_constructor_checks_the_range(raw: int) -> None:
    with pytest.raises(InvalidInput):
        BouncerWeights(l1_gas=raw)
