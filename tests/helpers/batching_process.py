"""A batching process for the crash test: runs the Batcher until every block up to the sequencer's head
is in a batch of each kind, then exits 0.

``python -m tests.helpers.batching_process --sqlite F --objects D --rpc-url U --limits-json J [--lease S]
[--owner NAME]``.
It prints ``ready`` once built, so the test kills it while it works, not while Python starts. A run
that finds the lease held (a killed holder's lease lasts until it expires) or that fails is retried.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from tests.helpers.batching import BatchingRig, limits_from_json, make_rig

log = logging.getLogger("batching_process")
RETRY_PAUSE_S = 0.05


async def all_batched(rig: BatchingRig) -> bool:
    head = await rig.sequencer.block_number()
    agg = await rig.store.latest_aggregator_batch()
    snos = await rig.store.latest_snos_batch()
    return agg is not None and snos is not None and agg.end_block == head and snos.end_block == head


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sqlite", required=True, type=Path)
    parser.add_argument("--objects", required=True, type=Path)
    parser.add_argument("--rpc-url", required=True)
    parser.add_argument("--limits-json", required=True)
    parser.add_argument("--lease", type=float, default=2.0, help="the batching lease, seconds")
    parser.add_argument("--max-batch-processing-size", type=int, default=10)
    parser.add_argument("--owner", default=None, help="the lease owner's name (random by default)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    rig = await make_rig(
        args.sqlite.parent,
        args.rpc_url,
        limits_from_json(args.limits_json),
        sqlite_path=args.sqlite,
        objects_dir=args.objects,
        lock_duration_s=args.lease,
        max_batch_processing_size=args.max_batch_processing_size,
        owner=args.owner,
    )
    print("ready", flush=True)
    try:
        while True:
            try:
                progressed = await rig.batcher.run()
            except Exception as exc:  # a failed run leaves a state the next one repairs: try again
                log.warning("batching run failed, retrying: %s", exc)
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            if progressed:
                continue
            if await all_batched(rig):
                return 0
            await asyncio.sleep(RETRY_PAUSE_S)  # the lease is held elsewhere until it expires
    finally:
        await rig.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
