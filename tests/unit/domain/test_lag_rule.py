"""The dashboard's lag colour (domain/lag.py): measured against the batch limits, not a fixed 10 blocks."""

from __future__ import annotations

import pytest

from madara_orchestrator.domain.lag import SETTLE_TIME_S, LagLevel, LagRule

RULE = LagRule(batch_blocks=100, batch_time_s=300)
"""The run defaults: 100 blocks per aggregator batch, 300 s max batch time."""


@pytest.mark.parametrize(
    ("blocks", "age_s", "level"),
    [
        (0, 0.0, LagLevel.OK),
        (30, 120.0, LagLevel.OK),  # healthy batching: one batch filling
        (100, 300.0, LagLevel.OK),
        (200, 300.0 + SETTLE_TIME_S, LagLevel.OK),  # one batch filling, one being proven and settled
        (201, 60.0, LagLevel.BEHIND),
        (150, 300.0 + SETTLE_TIME_S + 1, LagLevel.BEHIND),
        (400, 60.0, LagLevel.BEHIND),
        (401, 60.0, LagLevel.LATE),
        (12, 2 * (300.0 + SETTLE_TIME_S) + 1, LagLevel.LATE),  # a quiet chain whose settlement is stuck
        (None, None, LagLevel.UNKNOWN),
    ],
)
def test_the_lag_is_green_within_two_batches_amber_beyond_and_red_beyond_twice_that(
    blocks: int | None, age_s: float | None, level: LagLevel
) -> None:
    assert RULE.level(blocks, age_s) == level


def test_an_unknown_age_counts_only_the_blocks() -> None:
    assert RULE.level(150, None) == LagLevel.OK
    assert RULE.level(450, None) == LagLevel.LATE


def test_small_batches_turn_red_sooner() -> None:
    rule = LagRule(batch_blocks=3, batch_time_s=60)
    assert [rule.level(n, 1.0) for n in (6, 7, 12, 13)] == [
        LagLevel.OK,
        LagLevel.BEHIND,
        LagLevel.BEHIND,
        LagLevel.LATE,
    ]
