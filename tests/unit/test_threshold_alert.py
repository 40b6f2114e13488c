"""``ThresholdAlert``: one alert on reaching the threshold and one on falling back under, sent only by the
instance holding the watch's lease (the backlog's and the outbox's alerts are built on it)."""

from __future__ import annotations

import logging

import pytest

from madara_orchestrator.backends.alerts import RecordingAlerts
from madara_orchestrator.backends.memory import MemoryStore
from madara_orchestrator.engine.threshold import Notice, ThresholdAlert


def notice(word: str) -> Notice:
    return Notice(word, f"{word} text", f"{word} line")


async def test_a_crossing_alerts_once_each_way_and_only_from_the_lease_holder(caplog: pytest.LogCaptureFixture) -> None:
    locks = MemoryStore()
    alerts = RecordingAlerts()
    log = logging.getLogger("test.threshold")
    first = ThresholdAlert(lock="watch", locks=locks, alerts=alerts, owner="a", lease_s=60, log=log)
    second = ThresholdAlert(lock="watch", locks=locks, alerts=alerts, owner="b", lease_s=60, log=log)
    calls: list[str] = []

    def raised() -> Notice:
        calls.append("raised")
        return notice("up")

    def cleared() -> Notice:
        calls.append("cleared")
        return notice("down")

    with caplog.at_level(logging.INFO, logger="test.threshold"):
        for above in (False, True, True, True, False, False, True):
            await first.observe(above, raised, cleared)
            await second.observe(above, raised, cleared)  # the lease is the first's: silent
    assert alerts.sent == [("up", "up text"), ("down", "down text"), ("up", "up text")]
    assert calls == ["raised", "cleared", "raised"], "a notice is made only when it is sent"
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "up line"),
        ("INFO", "down line"),
        ("WARNING", "up line"),
    ]
    assert first.above and not second.above
