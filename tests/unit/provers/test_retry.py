"""The shared retry helper: backoff, limits on attempts and time, only retryable errors retried."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from madara_orchestrator.provers.errors import ProverApiError, RetriesExhausted
from madara_orchestrator.provers.http import RetryPolicy, is_retryable_error, with_retries


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(errors: list[BaseException], result: str = "ok") -> tuple[Callable[[], Awaitable[str]], dict[str, int]]:
    calls = {"n": 0}

    async def call() -> str:
        calls["n"] += 1
        if errors:
            raise errors.pop(0)
        return result

    return call, calls


async def test_backoff_doubles_from_two_seconds_and_succeeds() -> None:
    time = FakeTime()
    call, calls = failing([httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.ConnectError("x")])
    result = await with_retries(
        call,
        policy=RetryPolicy(),
        is_retryable=is_retryable_error,
        service="S",
        operation="op",
        sleep=time.sleep,
        clock=time.clock,
    )
    assert result == "ok" and calls["n"] == 4
    assert time.sleeps == [2.0, 4.0, 8.0]


async def test_the_time_budget_stops_retrying() -> None:
    time = FakeTime()
    call, calls = failing([httpx.ConnectError("down")] * 100)
    with pytest.raises(RetriesExhausted) as info:
        await with_retries(
            call,
            policy=RetryPolicy(budget_s=120.0, max_attempts=100),
            is_retryable=is_retryable_error,
            service="S",
            operation="op",
            sleep=time.sleep,
            clock=time.clock,
        )
    assert sum(time.sleeps) <= 120.0
    assert time.sleeps == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert calls["n"] == len(time.sleeps) + 1
    assert isinstance(info.value.last_error, httpx.ConnectError)
    assert "S op failed after 8 attempt(s)" in str(info.value)


async def test_the_attempt_limit_stops_retrying() -> None:
    time = FakeTime()
    call, calls = failing([ProverApiError("S", "op", 503, "", retryable=True)] * 10)
    with pytest.raises(RetriesExhausted):
        await with_retries(
            call,
            policy=RetryPolicy(max_attempts=3),
            is_retryable=is_retryable_error,
            service="S",
            operation="op",
            sleep=time.sleep,
            clock=time.clock,
        )
    assert calls["n"] == 3


async def test_a_non_retryable_error_is_raised_at_once() -> None:
    time = FakeTime()
    error = ProverApiError("S", "op", 400, "bad", retryable=False)
    call, calls = failing([error])
    with pytest.raises(ProverApiError) as info:
        await with_retries(
            call,
            policy=RetryPolicy(),
            is_retryable=is_retryable_error,
            service="S",
            operation="op",
            sleep=time.sleep,
            clock=time.clock,
        )
    assert info.value is error and calls["n"] == 1 and time.sleeps == []


def test_delays_are_capped() -> None:
    policy = RetryPolicy(base_delay_s=1, factor=3, max_delay_s=10)
    assert [policy.delay(n) for n in range(1, 5)] == [1, 3, 9, 10]


async def test_an_attempt_that_hangs_is_cut_and_retried() -> None:
    import asyncio

    calls = {"n": 0}

    async def call() -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            await asyncio.sleep(10)
        return "ok"

    result = await with_retries(
        call,
        policy=RetryPolicy(base_delay_s=0.01),
        is_retryable=is_retryable_error,
        service="S",
        operation="op",
        attempt_timeout_s=0.05,
    )
    assert result == "ok" and calls["n"] == 2
