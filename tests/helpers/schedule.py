"""The order the suite's tests are handed to pytest-xdist's workers in (``make test``: four workers,
``--dist worksteal``).

worksteal first gives each worker a contiguous share of the collected order (as many tests each), then,
when a worker runs dry, moves the *end* of the longest queue to it. A test at the front of a share therefore
stays with the worker that got it. If the long tests (marked ``slow``: the chaos and end-to-end runs) all
stand at the front of the order, they all land in the first worker's share, which then runs them one after
the other for ten minutes while the others finish early and wait (seen: 610 s against 565 s).

So the long tests are dealt out first, longest first, each to the share with the least expected time so far
(the longest-processing-time rule), and each share is filled up with short tests to the size worksteal will
cut it at; stealing then evens out the short ones. Long tests that share a module-, package- or class-scoped
fixture (one anvil for a file's tests) stay together, so the fixture is set up once, as without workers.

The expected times come from ``slow_durations.json`` beside the tests (seconds a test took on two cores;
regenerate with ``pytest -m slow --durations=0`` when tests change much); a long test not in it counts as
the median of those that are. The figures only steer the order: a stale one makes the run longer, never wrong.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

DURATIONS_FILE = Path(__file__).resolve().parent.parent / "slow_durations.json"

Item = TypeVar("Item")


def load_durations(path: Path = DURATIONS_FILE) -> dict[str, float]:
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in table.items() if isinstance(v, int | float)}


def share_sizes(total: int, workers: int) -> list[int]:
    """How many tests each worker's first share holds: worksteal hands ``len(pending) // workers left`` to
    each worker in turn."""
    sizes = []
    left = total
    for i in range(workers):
        size = left // (workers - i)
        sizes.append(size)
        left -= size
    return sizes


def deal(
    items: Sequence[Item],
    *,
    workers: int,
    is_long: Callable[[Item], bool],
    seconds: Callable[[Item], float],
    group: Callable[[Item], str],
) -> list[Item]:
    """``items`` reordered so that each of ``workers`` contiguous shares (``share_sizes``) starts with its part
    of the long tests, dealt longest first to the share expected to end first, and goes on with short tests in
    their collected order. With one worker: the long tests first, then the others (each in collected order)."""
    long = [item for item in items if is_long(item)]
    short = [item for item in items if not is_long(item)]
    if workers <= 1:
        return long + short
    groups: dict[str, list[Item]] = {}
    for item in long:
        groups.setdefault(group(item), []).append(item)
    bins: list[list[Item]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for members in sorted(groups.values(), key=lambda g: -sum(seconds(i) for i in g)):
        k = loads.index(min(loads))
        bins[k].extend(members)
        loads[k] += sum(seconds(i) for i in members)
    order: list[Item] = []
    rest = iter(short)
    for size, heads in zip(share_sizes(len(items), workers), bins, strict=True):
        order.extend(heads)
        for _ in range(size - len(heads)):
            item = next(rest, None)
            if item is None:
                break
            order.append(item)
    order.extend(rest)
    assert sorted(map(id, order)) == sorted(map(id, items)), "the order must hold every test once"
    return order


def module_scoped_group(item: pytest.Item) -> str:
    """The test's module when it uses a module-scoped fixture (the module's tests share it), else the test."""
    info = getattr(item, "_fixtureinfo", None)
    for defs in getattr(info, "name2fixturedefs", {}).values():
        if any(d.scope in ("module", "package", "class") for d in defs):
            return item.nodeid.split("::", 1)[0]
    return item.nodeid


def order_for_workers(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    durations = load_durations()
    fallback = statistics.median(durations.values()) if durations else 10.0
    return deal(
        items,
        workers=workers,
        is_long=lambda item: item.get_closest_marker("slow") is not None,
        seconds=lambda item: durations.get(item.nodeid, fallback),
        group=module_scoped_group,
    )
