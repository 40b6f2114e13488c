"""Batching cost per block (not a test): a devnet chain of N blocks (100 transactions each by default)
through one ``Batcher`` on a SQLite file, files on disk, the sequencer over HTTP — as the devnet batches.

    .venv/bin/python bench/batching.py [--blocks 200] [--tx-per-block 100] [--repeat 1] [--profile]

Prints the batches made (blocks, felts, why each closed) and a digest of everything stored (records and
file bytes, as ``tests/helpers/batching.snapshot`` sees them), so two versions of the code can be shown
to batch identically. ``--profile`` adds a cProfile of the batching (and makes it slower). The last line
is ``ms_per_block=X``: batching's wall time per block (the median over ``--repeat`` runs; producing the
chain is not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import pickle
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests/helpers: the batching rig

from madara_orchestrator.cli.devnet import devnet_settings  # noqa: E402
from madara_orchestrator.cli.settings import batch_limits, load_bouncer_weight_limits  # noqa: E402
from madara_orchestrator.devnet.sequencer import DevnetChain, DevnetSequencer  # noqa: E402
from tests.helpers.batching import BatchingRig, make_rig, served, snapshot  # noqa: E402


async def run_once(chain: DevnetChain, *, processing_size: int, profile: bool, verbose: bool) -> float:
    """Batch the whole chain in a fresh directory (removed after); returns the seconds batching took."""
    settings = devnet_settings(Path("unused"), "http://unused", port=0)
    limits = batch_limits(settings.values, load_bouncer_weight_limits(None))
    with tempfile.TemporaryDirectory(prefix="bench-batching-") as data:
        async with served(DevnetSequencer(chain).app) as url:
            rig = await make_rig(Path(data), url, limits, max_batch_processing_size=processing_size)
            try:
                return await batch_all(rig, chain.head + 1, profile=profile, verbose=verbose)
            finally:
                await rig.close()


async def batch_all(rig: BatchingRig, blocks: int, *, profile: bool, verbose: bool) -> float:
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    runs = await rig.run_all()
    if profiler is not None:
        profiler.disable()
    elapsed = time.perf_counter() - started
    if verbose:
        aggs = await rig.store.list_aggregator_batches()
        print(f"{blocks} blocks in {runs} runs: {elapsed:.2f} s, {elapsed / blocks * 1000:.1f} ms/block")
        for a in aggs:
            print(
                f"  aggregator batch {a.index}: blocks {a.start_block}-{a.end_block} ({a.num_blocks}), "
                f"{a.blob_len} felts, {a.status}"
            )
        print(f"  closed: {dict(sorted(rig.batcher.stats.closed.items()))}")
        digest = hashlib.sha256(pickle.dumps(await snapshot(rig.store, rig.objects))).hexdigest()
        print(f"  digest of records and files: {digest[:16]}")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=200, help="blocks in the chain (with genesis)")
    parser.add_argument("--tx-per-block", type=int, default=100)
    parser.add_argument("--processing-size", type=int, default=100, help="blocks per batching run (the devnet's)")
    parser.add_argument("--repeat", type=int, default=1, help="batch the chain this many times (fresh each time)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the (first) batching")
    args = parser.parse_args()

    chain = DevnetChain(tx_per_block=args.tx_per_block)
    while chain.head + 1 < args.blocks:
        chain.produce_block()
    blocks = chain.head + 1
    times = [
        await run_once(chain, processing_size=args.processing_size, profile=args.profile and i == 0, verbose=i == 0)
        for i in range(max(1, args.repeat))
    ]
    print(f"ms_per_block={statistics.median(times) / blocks * 1000:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
