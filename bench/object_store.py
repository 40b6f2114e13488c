"""Benchmark of the files object store on a long chain: ``list`` by prefix and the expiry sweep, at N objects.

    .venv/bin/python bench/object_store.py [--sizes 1000,10000,50000] [--repeat 5]

N objects are N/5 settled batches of 5 files (``<i>/cairo_pie.zip``, ``<i>/snos_output.json``,
``blob/batch/<i>/{1,2}.txt``, ``state_update/batch/<i>.json``), every one marked to expire, one batch a
minute, 14 days kept. Printed per N, medians of ``--repeat`` runs:
``list_dir_ms`` (``list("blob/batch/<i>/")``), ``list_mid_name_ms`` (``list("state_update/batch/<i>")``,
which reads that directory: N/5 names), ``list_none_ms`` (``list("prover_buckets/")``, absent), and
``sweep_ms``: one StorageCleanup marking (a new batch's 5 keys) whose sweep deletes the one batch due.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from madara_orchestrator.backends.filesystem import FilesystemObjectStore  # noqa: E402

DAY = 86400.0
T0 = 1_700_000_000.0
FILES_PER_BATCH = 5


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def batch_keys(index: int) -> list[str]:
    return [
        f"{index}/cairo_pie.zip",
        f"{index}/snos_output.json",
        f"blob/batch/{index}/1.txt",
        f"blob/batch/{index}/2.txt",
        f"state_update/batch/{index}.json",
    ]


def write_files(root: Path, batches: range) -> None:
    """Directly, not through the store: the setup is not what is measured."""
    for index in batches:
        for key in batch_keys(index):
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")


async def median_ms(repeat: int, run: Callable[[int], Awaitable[object]]) -> float:
    times = []
    for r in range(1, repeat + 1):
        start = time.perf_counter()
        await run(r)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


async def measure(objects: int, repeat: int) -> str:
    batches = objects // FILES_PER_BATCH
    with tempfile.TemporaryDirectory(prefix="bench-objects-") as tmp:
        root = Path(tmp)
        write_files(root, range(1, batches + repeat + 1))
        clock = Clock(T0)
        marking = FilesystemObjectStore(root, clock=clock)  # keeps marks for ever: no sweep while filling
        for index in range(1, batches + 1):
            clock.t = T0 + index * 60
            await marking.tag_for_expiry(batch_keys(index))
        store = FilesystemObjectStore(root, expiration_days=14, clock=clock)
        step = max(1, batches // repeat)
        list_dir = await median_ms(repeat, lambda r: store.list(f"blob/batch/{r * step}/"))
        list_mid = await median_ms(repeat, lambda r: store.list(f"state_update/batch/{r * step}"))
        list_none = await median_ms(repeat, lambda r: store.list("prover_buckets/"))

        async def settle(r: int) -> None:
            clock.t = T0 + 14 * DAY + r * 60  # batch r is due
            await store.tag_for_expiry(batch_keys(batches + r))

        sweep = await median_ms(repeat, settle)
        left = await store.list(f"{repeat}/") + await store.list(f"{repeat + 1}/")
        assert left == batch_keys(repeat + 1)[:2], "the due batches, and only them, were deleted"
    return (
        f"objects={objects} list_dir_ms={list_dir:.2f} list_mid_name_ms={list_mid:.2f} "
        f"list_none_ms={list_none:.2f} sweep_ms={sweep:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000", help="object counts, comma separated")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (the median is printed)")
    args = parser.parse_args()
    for size in (int(s) for s in args.sizes.split(",")):
        print(asyncio.run(measure(size, args.repeat)), flush=True)


if __name__ == "__main__":
    main()
