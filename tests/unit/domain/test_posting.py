"""The posting policy (domain/posting.py): a percentile target over the fee history, relaxed toward the hard
cap as the deadline nears; the cap absolute; no deadline = at once."""

from __future__ import annotations

import random

import pytest

from madara_orchestrator.domain.chain import GAS_PER_BLOB, blobs_for
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.domain.posting import (
    GWEI,
    FeeCap,
    FeeHistory,
    PostingPolicy,
    Send,
    Wait,
    percentile,
)
from madara_orchestrator.settlement.txmgr import FeePolicy

CAP = FeeCap(max_total_fee_wei=10**17)
HOUR = 3600.0


def history(base: list[int], blob: list[int], *, next_base: int, next_blob: int, oldest: int = 100) -> FeeHistory:
    assert len(base) == len(blob)
    return FeeHistory(
        oldest_block=oldest,
        base_fees=(*base, next_base),
        blob_base_fees=(*blob, next_blob),
        gas_used_ratio=tuple(0.5 for _ in base),
        blob_gas_used_ratio=tuple(0.5 for _ in base),
    )


def spread(n: int, low: int, high: int, seed: int) -> list[int]:
    """``n`` fees evenly from ``low`` to ``high``, shuffled (order must not matter)."""
    values = [low + (high - low) * i // (n - 1) for i in range(n)]
    random.Random(seed).shuffle(values)
    return values


# 300 blocks: base fees 1..10 gwei, blob fees 1..100 gwei.
BASE = spread(300, 1 * GWEI, 10 * GWEI, 1)
BLOB = spread(300, 1 * GWEI, 100 * GWEI, 2)
P30_BASE = sorted(BASE)[89]
P30_BLOB = sorted(BLOB)[89]
POLICY = PostingPolicy(deadline_s=HOUR, percentile=30, window_blocks=300)


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([5, 1, 3, 2, 4], 0, 1),
        ([5, 1, 3, 2, 4], 20, 1),
        ([5, 1, 3, 2, 4], 21, 2),
        ([5, 1, 3, 2, 4], 50, 3),
        ([5, 1, 3, 2, 4], 100, 5),
        ([7], 30, 7),
        (list(range(1, 301)), 30, 90),
    ],
)
def test_percentile_is_a_nearest_rank_value_of_the_sample(values: list[int], p: float, expected: int) -> None:
    assert percentile(values, p) == expected


@pytest.mark.parametrize(("values", "p"), [([], 30), ([1], -1), ([1], 100.5)])
def test_percentile_refuses_no_values_or_a_share_out_of_range(values: list[int], p: float) -> None:
    with pytest.raises(InvalidInput):
        percentile(values, p)


def test_no_deadline_sends_at_once_without_fee_history() -> None:
    for deadline in (0.0, -0.0):
        decision = PostingPolicy(deadline_s=deadline).decide(None, CAP, age_s=10 * HOUR, n_blobs=6)
        assert decision.send and decision.code == Send.AT_ONCE
        assert decision.seconds_to_deadline is None and not decision.missed_deadline


@pytest.mark.parametrize(
    ("next_base", "next_blob", "send", "code", "named"),
    [
        (P30_BASE, P30_BLOB, True, Send.AT_TARGET, ()),
        (P30_BASE - 1, P30_BLOB - 1, True, Send.AT_TARGET, ()),
        (P30_BASE, P30_BLOB + GWEI, False, Wait.BLOB_FEE, ("blob base fee",)),
        (P30_BASE + GWEI, P30_BLOB, False, Wait.BASE_FEE, ("base fee",)),
        (P30_BASE + GWEI, P30_BLOB + GWEI, False, Wait.BOTH, ("blob base fee", "base fee")),
        # A base fee over its target paid for by a blob fee far under its own: the settlement costs less.
        (P30_BASE + GWEI // 10, GWEI, True, Send.AT_TARGET, ()),
    ],
)
def test_early_on_a_batch_goes_only_at_or_under_the_percentile_target(
    next_base: int, next_blob: int, send: bool, code: str, named: tuple[str, ...]
) -> None:
    decision = POLICY.decide(history(BASE, BLOB, next_base=next_base, next_blob=next_blob), CAP, age_s=60, n_blobs=1)
    assert (decision.send, decision.code) == (send, code)
    assert decision.target_base_fee == P30_BASE and decision.target_blob_base_fee == P30_BLOB
    assert decision.relaxed == 0 and decision.seconds_to_deadline == HOUR - 60
    assert "p30 of the last 300 blocks" in decision.reason and "deadline in 59 min" in decision.reason
    for name in named:
        assert f"{name} " in decision.reason and "above target" in decision.reason
    if not send:
        assert decision.reason.startswith(named[0])


@pytest.mark.parametrize(
    ("age_s", "relaxed"),
    [(0, 0.0), (2340, 0.0), (2580, 0.25), (2820, 0.5), (3060, 0.75), (3300, 1.0), (3600, 1.0), (9999, 1.0)],
)
def test_the_target_relaxes_from_65_percent_of_the_deadline_up_the_percentiles_to_the_cap_a_margin_before_it(
    age_s: float, relaxed: float
) -> None:
    assert POLICY.relaxation(age_s) == pytest.approx(relaxed)
    decision = POLICY.decide(history(BASE, BLOB, next_base=GWEI, next_blob=GWEI), CAP, age_s=age_s, n_blobs=2)
    assert decision.relaxed == pytest.approx(relaxed)
    if relaxed < 1:
        rank = 30 + 70 * relaxed**2
        assert decision.target_percentile == pytest.approx(rank)
        assert decision.target_base_fee == percentile(BASE, rank)
        assert decision.target_blob_base_fee == percentile(BLOB, rank)
    else:
        assert decision.target_percentile is None
        assert decision.target_base_fee == CAP.max_base_fee()
        assert decision.target_blob_base_fee == CAP.max_blob_base_fee(2)


def test_a_fee_over_the_percentile_waits_early_and_goes_as_the_deadline_nears() -> None:
    fees = history(BASE, BLOB, next_base=P30_BASE, next_blob=P30_BLOB * 3 // 2)
    early = POLICY.decide(fees, CAP, age_s=600, n_blobs=1)
    later = POLICY.decide(fees, CAP, age_s=3000, n_blobs=1)
    assert not early.send and early.code == Wait.BLOB_FEE
    assert later.send and later.code == Send.RELAXED
    assert "relaxed to p63 as the deadline nears" in later.reason
    # A fee over every fee of the window goes only when the target is the hard cap.
    dear = history(BASE, BLOB, next_base=max(BASE) + GWEI, next_blob=max(BLOB) + GWEI)
    assert not POLICY.decide(dear, CAP, age_s=3290, n_blobs=1).send
    last = POLICY.decide(dear, CAP, age_s=3300, n_blobs=1)
    assert last.send and last.code == Send.DEADLINE and "the target is the hard cap" in last.reason


@pytest.mark.parametrize("n_blobs", [1, 3, 6])
def test_at_the_deadline_anything_under_the_hard_cap_goes_and_nothing_over_it(n_blobs: int) -> None:
    rng = random.Random(n_blobs)
    for _ in range(400):
        base = rng.randrange(0, 2 * CAP.max_base_fee())
        blob = rng.randrange(0, 2 * CAP.max_blob_base_fee(n_blobs))
        for age in (3300.0, 3600.0, 7200.0):
            decision = POLICY.decide(
                history(BASE, BLOB, next_base=base, next_blob=blob), CAP, age_s=age, n_blobs=n_blobs
            )
            assert decision.send == CAP.fits(base, blob, n_blobs), (base, blob, age)


def test_the_hard_cap_stays_absolute_and_a_missed_deadline_is_told() -> None:
    over = CAP.max_base_fee() + 1
    for age in (60.0, 3599.0, 3700.0):
        decision = POLICY.decide(history(BASE, BLOB, next_base=over, next_blob=GWEI), CAP, age_s=age, n_blobs=1)
        assert not decision.send and decision.code == Wait.HARD_CAP
        assert "--ethereum-l2-state-update-max-fee-wei" in decision.reason
        assert decision.missed_deadline == (age > HOUR)
    missed = POLICY.decide(history(BASE, BLOB, next_base=over, next_blob=GWEI), CAP, age_s=HOUR + 300, n_blobs=1)
    assert "deadline missed by 5 min" in missed.reason


def test_the_cap_is_the_transaction_managers_liability() -> None:
    signer = FeePolicy(max_total_fee_wei=CAP.max_total_fee_wei)
    rng = random.Random(7)
    for _ in range(300):
        base, blob, n = rng.randrange(0, 50 * GWEI), rng.randrange(0, 900 * GWEI), rng.randrange(0, 7)
        assert CAP.liability(base, blob, n) == signer.liability(signer.fresh_fees(base, blob), n)
    assert CAP.fits(CAP.max_base_fee(), 0, 0) and not CAP.fits(CAP.max_base_fee() + 1, 0, 0)
    assert CAP.fits(0, CAP.max_blob_base_fee(6), 6) and not CAP.fits(0, CAP.max_blob_base_fee(6) + 2, 6)


def test_only_the_newest_window_of_blocks_sets_the_target() -> None:
    # 200 older blocks of cheap fees, then the 300 of the window: the cheap ones must not lower the target.
    old = [GWEI // 100] * 200
    fees = history(old + BASE, old + BLOB, next_base=P30_BASE, next_blob=P30_BLOB, oldest=0)
    decision = POLICY.decide(fees, CAP, age_s=60, n_blobs=1)
    assert decision.send and decision.target_base_fee == P30_BASE and decision.target_blob_base_fee == P30_BLOB
    wide = PostingPolicy(deadline_s=HOUR, window_blocks=500).decide(fees, CAP, age_s=60, n_blobs=1)
    assert not wide.send and "of the last 500 blocks" in wide.reason


def test_a_history_without_past_blocks_goes_by_the_next_blocks_fees() -> None:
    decision = POLICY.decide(history([], [], next_base=GWEI, next_blob=GWEI), CAP, age_s=0, n_blobs=1)
    assert decision.send and decision.target_base_fee == GWEI


def test_fee_history_pages_join_and_shapes_are_checked() -> None:
    a = history([1, 2], [10, 20], next_base=3, next_blob=30, oldest=5)
    b = history([3, 4], [30, 40], next_base=5, next_blob=50, oldest=7)
    joined = FeeHistory.joined([a, b])
    assert joined.oldest_block == 5 and joined.newest_block == 8 and joined.blocks == 4
    assert joined.base_fees == (1, 2, 3, 4, 5) and joined.blob_base_fees == (10, 20, 30, 40, 50)
    with pytest.raises(InvalidInput, match="not consecutive"):
        FeeHistory.joined([b, a])
    with pytest.raises(InvalidInput, match="needs 3 base fees"):
        FeeHistory(
            oldest_block=0,
            base_fees=(1, 2),
            blob_base_fees=(1, 2, 3),
            gas_used_ratio=(0, 0),
            blob_gas_used_ratio=(0, 0),
        )


@pytest.mark.parametrize(("felts", "blobs"), [(0, 1), (1, 1), (4096, 1), (4097, 2), (6 * 4096, 6)])
def test_blobs_for_a_state_diff(felts: int, blobs: int) -> None:
    assert blobs_for(felts) == blobs


def test_policy_problems_name_the_flags() -> None:
    assert PostingPolicy(deadline_s=HOUR).problems() == []
    problems = " ".join(PostingPolicy(deadline_s=-1, percentile=101, window_blocks=0).problems())
    for flag in ("--settlement-deadline-seconds", "--settlement-fee-percentile", "--settlement-fee-window-blocks"):
        assert flag in problems
    assert GAS_PER_BLOB == 131_072
