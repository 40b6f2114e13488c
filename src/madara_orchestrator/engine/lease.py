"""The one lease mechanism: jobs being processed, named locks (batching), settlement keys, instances.

A lease has an owner and an expiry on the database's clock. While the guarded work runs, a heartbeat
renews it every third of its duration. A renewal that *errors* (the database is briefly unreachable)
is retried with a short back-off for as long as the lease would still be valid; a renewal that is
*refused* (someone else holds it now), or no successful renewal before the expiry, means the lease is
lost: the guarded work is cancelled at once and ``LeaseLost`` is raised where it ran, so nothing keeps
acting on a lease another process may already hold.

The owner of a lease is the instance id, stable across restarts of the same instance: a restarted
process takes back what its previous life held at once, instead of waiting for the expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from madara_orchestrator.domain.errors import OrchestratorError
from madara_orchestrator.interfaces import Clock, LockService

log = logging.getLogger(__name__)

Renew = Callable[[], Awaitable[bool]]
"""Extend the lease by its full duration; False when it is no longer ours."""


class LeaseLost(OrchestratorError):
    """The lease guarding some work was lost; the work was cancelled."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseTiming:
    duration_s: float
    """How long one grant or renewal lasts."""
    retry_min_s: float = 0.2
    retry_max_s: float = 2.0
    slow_after_s: float | None = None
    """When set, the work still running this long after the grant is logged as a warning (again at each
    doubling of that time): a renewed lease keeps a hung worker's job from every other instance, so a job
    that stays "processing" must at least say so."""

    @property
    def renew_every_s(self) -> float:
        return self.duration_s / 3


def default_instance_id(port: int | None = None) -> str:
    """``<hostname>-<port>``: different for instances side by side on one host, the same for a restart."""
    host = socket.gethostname() or "orchestrator"
    return f"{host}-{port}" if port else host


def new_owner(prefix: str = "worker") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@contextlib.asynccontextmanager
async def hold(
    renew: Renew,
    *,
    timing: LeaseTiming,
    clock: Clock,
    what: str,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncIterator[None]:
    """Keep a lease that was just granted alive while the body runs; cancel the body when it is lost.

    The caller has already acquired the lease (it expires ``timing.duration_s`` from now)."""
    current = asyncio.current_task()
    lost: list[str] = []
    granted_at = clock.now()
    valid_until = granted_at + timing.duration_s
    warn_at = timing.slow_after_s

    async def heartbeat() -> None:
        nonlocal valid_until, warn_at
        while True:
            await sleep(timing.renew_every_s)
            running_s = clock.now() - granted_at
            if warn_at is not None and running_s >= warn_at:
                log.warning(
                    "%s: still running after %.0f s; its lease is renewed while this process lives, so no other "
                    "instance takes it over (SIGUSR1 logs where each task of this process waits)",
                    what,
                    running_s,
                )
                warn_at = running_s * 2
            delay = timing.retry_min_s
            while True:
                try:
                    renewed = await renew()
                except Exception as exc:
                    left = valid_until - clock.now()
                    if left <= delay:
                        lost.append(f"could not be renewed before it expired ({exc})")
                        break
                    log.warning("%s: lease renewal failed (%s); retrying, %.1f s of the lease left", what, exc, left)
                    await sleep(delay)
                    delay = min(delay * 2, timing.retry_max_s)
                    continue
                if not renewed:
                    lost.append("was taken over by another owner")
                    break
                valid_until = clock.now() + timing.duration_s
                break
            if lost:
                log.error("%s: lease %s; cancelling the work it guarded", what, lost[0])
                if current is not None:
                    current.cancel()
                return

    beat = asyncio.create_task(heartbeat(), name=f"lease:{what}")
    try:
        yield
    except asyncio.CancelledError:
        if lost and current is not None and current.cancelling():
            current.uncancel()
            raise LeaseLost(f"{what}: lease {lost[0]}") from None
        raise
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat


@contextlib.asynccontextmanager
async def named_lease(
    locks: LockService,
    key: str,
    owner: str,
    *,
    timing: LeaseTiming,
    clock: Clock,
) -> AsyncIterator[bool]:
    """Acquire the named lock ``key`` and hold it while the body runs (yields False, and runs nothing
    under it, when another owner holds it). Released at the end, even on error."""
    if not await locks.acquire(key, owner, timing.duration_s):
        yield False
        return
    try:
        async with hold(
            lambda: locks.acquire(key, owner, timing.duration_s), timing=timing, clock=clock, what=f"lock {key}"
        ):
            yield True
    finally:
        with contextlib.suppress(Exception):
            await locks.release(key, owner)


def key_guard(
    locks: LockService, owner: str, *, prefix: str, timing: LeaseTiming, clock: Clock
) -> Callable[[str], contextlib.AbstractAsyncContextManager[bool]]:
    """A guard of keys for code outside the engine (the settlement transaction manager): ``guard(key)`` holds
    the named lease ``<prefix><key>`` for the body, across processes. The owner is made unique per use, so
    two sends of one key in one process exclude each other too."""

    def guard(key: str) -> contextlib.AbstractAsyncContextManager[bool]:
        return named_lease(locks, f"{prefix}{key}", f"{owner}/{uuid.uuid4().hex[:8]}", timing=timing, clock=clock)

    return guard
