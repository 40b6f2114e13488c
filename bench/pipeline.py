"""Pipeline throughput on the embedded backend with zero-latency devnet adapters (not a test).

A devnet chain of N blocks is produced up front and served over JSON-RPC/HTTP; the orchestrator
(SQLite store and queue, filesystem objects) carries every block through SnosRun, ProofCreation,
Aggregator and StateTransition. Prints blocks settled per minute and the stage hand-off latency
(a job's completion to its successor's creation). Last line: ``blocks_per_min=X handoff_p95_s=Y``.

    .venv/bin/python bench/pipeline.py [--blocks 600]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path

from madara_orchestrator.cli.compose import build_embedded_stack
from madara_orchestrator.cli.devnet import STAGES, close_tail, devnet_settings
from madara_orchestrator.cli.settings import Settings
from madara_orchestrator.devnet.sequencer import DevnetChain, DevnetSequencer
from madara_orchestrator.engine.report import pipeline_report
from madara_orchestrator.server.background import BackgroundServer


async def run(blocks: int, *, rate: float | None = None) -> tuple[float, float]:
    """With ``rate`` None, all blocks exist up front (capacity); else they arrive ``rate`` per second."""
    chain = DevnetChain()
    while rate is None and chain.head + 1 < blocks:
        chain.produce_block()
    sequencer = DevnetSequencer(chain, block_time_s=1 / rate if rate else 1.0)
    if rate:
        sequencer.start_producing(max_blocks=blocks)
    rpc = BackgroundServer(sequencer.app)
    await rpc.start()
    data = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    base = devnet_settings(data, rpc.url, port=0)
    settings = Settings({**base.values, "verification_poll_seconds": 0.0, "max_concurrent_snos_jobs": 10})
    stack = await build_embedded_stack(settings)
    started = time.monotonic()
    await stack.runtime.start()
    last_print = started
    tail_closed = False
    while True:
        if not tail_closed:  # the last batch is not full: close it once the last block is in it
            tail_closed = await close_tail(stack, last_block=blocks - 1)
        last = await stack.settlement.last_settled_block()
        settled = 0 if last is None else last + 1
        now = time.monotonic()
        if now - last_print >= 5:
            print(f"  {now - started:6.1f} s: {settled} blocks settled", flush=True)
            last_print = now
        if settled >= blocks:
            break
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    await sequencer.stop_producing()
    await stack.runtime.stop()
    report = await pipeline_report(stack.store)
    await stack.close()
    await rpc.stop()
    mode = "all blocks there at the start" if rate is None else f"blocks arriving {rate * 60:.0f}/min"
    print(f"settled {blocks} blocks in {elapsed:.1f} s ({mode}) on the embedded backend (SQLite, {data})")
    print("stage           jobs   created->completed p50/p95 (s)   hand-off p50/p95 (s)")
    for name, job_type in STAGES:
        s = report.stage[job_type]
        h = report.handoff.get(job_type)
        hand = f"{h.p50:8.3f} / {h.p95:6.3f}" if h and h.count else "       - /      -"
        print(f"{name:<14} {s.count:>5}   {s.p50:10.3f} / {s.p95:8.3f}           {hand}")
    return blocks / elapsed * 60, report.all_handoffs.p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=600, help="blocks for the capacity run")
    parser.add_argument("--rate", type=float, default=10.0, help="blocks per second for the hand-off run")
    parser.add_argument("--rate-blocks", type=int, default=300, help="blocks for the hand-off run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"capacity: {args.blocks} blocks available at once")
    per_min, _ = asyncio.run(run(args.blocks))
    print(f"\nhand-off: {args.rate_blocks} blocks arriving at {args.rate:g}/s ({args.rate * 60:.0f}/min)")
    _, handoff_p95 = asyncio.run(run(args.rate_blocks, rate=args.rate))
    print(f"blocks_per_min={per_min:.0f} handoff_p95_s={handoff_p95:.3f}")


if __name__ == "__main__":
    main()
