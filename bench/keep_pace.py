"""Does settlement keep pace with a fast chain on a real L1? (issue 20; not a test).

A devnet chain producing 2 blocks a second (100 transactions a block) is carried through the whole pipeline
(devnet SNOS, aggregator and mock prover registering facts on the L1) and settled with blob transactions on
anvil mining a block every 12 s, with 3 confirmations: once with 1 settlement in flight (the original), once
with N. Each run lasts ``--minutes`` (10 by default) of chain time, on a fresh chain, anvil and data dir.

``--time-scale S`` runs the same ratios S times faster (L1 blocks every 12/S s, 2·S L2 blocks a second,
batch age limit and polls divided by S); the output says so, and reports seconds of the scaled run.

For each run it prints ``in_flight=… blocks_behind_at_end=… settlement_lag_p95_s=…`` (a block's lag: from
when the sequencer served it to when the core contract's stateBlockNumber reached it), and last, for N,
``keeps_pace=1|0 lag_p95_s=…``: 1 when N's p95 lag is within a batch interval (measured: the run's mean
time between batches) plus the confirmation time ((confirmations + 1) L1 blocks) plus the pipeline's own
time before settlement (measured: the mean time from a batch's closing to its Aggregator job's completion),
and the chain is no further behind at the end than that window's blocks.

    .venv/bin/python bench/keep_pace.py                       # 2 x 10 minutes, N = 4
    .venv/bin/python bench/keep_pace.py --minutes 2 --time-scale 3 --in-flight 4
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import math
import multiprocessing
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from madara_orchestrator.cli.compose import build_embedded_stack
from madara_orchestrator.cli.devnet import devnet_settings
from madara_orchestrator.cli.settings import Settings
from madara_orchestrator.devnet.adapters import DEVNET_AGGREGATOR_PROGRAM_HASH
from madara_orchestrator.devnet.anvil import DEV_PRIVATE_KEYS, Anvil, AnvilConfig
from madara_orchestrator.devnet.l1_contracts import deploy_devnet_contracts
from madara_orchestrator.devnet.program_output import devnet_config_hash
from madara_orchestrator.devnet.sequencer import DevnetChain, DevnetSequencer
from madara_orchestrator.domain.jobs import JobStatus, JobType
from madara_orchestrator.server.background import BackgroundServer
from madara_orchestrator.settlement.eth_rpc import EthRpc

L2_BLOCKS_PER_S = 2.0
L1_BLOCK_S = 12.0
CONFIRMATIONS = 3


@dataclass(frozen=True, slots=True)
class Outcome:
    in_flight: int
    blocks_behind_at_end: int
    lag_p95_s: float
    batch_interval_s: float
    pipeline_s: float
    settled_blocks: int
    head: int

    def window_s(self, l1_block_s: float) -> float:
        """What keeping pace allows: a batch interval, the pipeline's time, the confirmations."""
        return self.batch_interval_s + self.pipeline_s + (CONFIRMATIONS + 1) * l1_block_s


def p95(values: list[float]) -> float:
    if not values:
        return math.inf
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


async def start_l1(work: Path, l1_block_s: float) -> tuple[Anvil, dict[str, object]]:
    anvil = Anvil(AnvilConfig(hardfork="prague", block_time_s=l1_block_s), log_path=work / "anvil.log")
    await asyncio.to_thread(anvil.start)
    rpc = EthRpc(anvil.url)
    contracts = await deploy_devnet_contracts(
        rpc, DEV_PRIVATE_KEYS[1], program_hash=DEVNET_AGGREGATOR_PROGRAM_HASH, config_hash=devnet_config_hash()
    )
    await rpc.aclose()
    return anvil, {
        "settle_on_devnet": False,
        "settle_on_ethereum": True,
        "ethereum_rpc_url": anvil.url,
        "ethereum_private_key": DEV_PRIVATE_KEYS[0],
        "l1_core_contract_address": contracts.core_contract,
        "ethereum_confirmations": CONFIRMATIONS,
        "ethereum_finality_retry_wait_in_secs": max(0.1, l1_block_s / 12),
        "ethereum_tx_confirmation_timeout_secs": 10 * l1_block_s,
        "disable_peerdas": True,
        "prover": "mock",
        "mock_verifier_address": contracts.fact_registry,
        "mock_verifier_private_key": DEV_PRIVATE_KEYS[1],
    }


def serve_chain(tx_per_block: int, block_time_s: float, conn: Connection) -> None:
    """In a process of its own (so the orchestrator's work never slows the chain): serve a devnet chain,
    send its URL, produce blocks from the first message on, stop at the second."""

    async def main() -> None:
        sequencer = DevnetSequencer(DevnetChain(tx_per_block=tx_per_block), block_time_s=block_time_s)
        server = BackgroundServer(sequencer.app)
        await server.start()
        conn.send(server.url)
        await asyncio.to_thread(conn.recv)
        sequencer.start_producing()
        await asyncio.to_thread(conn.recv)
        await sequencer.stop_producing()
        await server.stop()

    asyncio.run(main())


async def run(in_flight: int, *, minutes: float, scale: float, tx_per_block: int) -> Outcome:
    l1_block_s = L1_BLOCK_S / scale
    work = Path(tempfile.mkdtemp(prefix=f"bench-keep-pace-{in_flight}-"))
    anvil, l1 = await start_l1(work, l1_block_s)
    conn, child_conn = multiprocessing.get_context("spawn").Pipe()
    chain = multiprocessing.get_context("spawn").Process(
        target=serve_chain, args=(tx_per_block, 1 / (L2_BLOCKS_PER_S * scale), child_conn), daemon=True
    )
    chain.start()
    url = await asyncio.to_thread(conn.recv)
    base = devnet_settings(work / "data", url, port=0)
    values = {
        **base.values,
        **l1,
        "max_settlements_in_flight": in_flight,
        "max_batch_time_seconds": base.values["max_batch_time_seconds"] / scale,
        "max_concurrent_snos_jobs": 10,
    }
    stack = await build_embedded_stack(Settings(values))
    await stack.runtime.start()
    conn.send("start")
    seen: dict[int, float] = {}
    lags: list[float] = []
    settled_through = -1
    started = time.monotonic()
    end = started + minutes * 60
    last_print = started
    try:
        while (now := time.monotonic()) < end:
            head = await stack.runtime.adapters.sequencer.block_number()
            for block in range(len(seen), head + 1):
                seen[block] = now
            last = await stack.settlement.last_settled_block()
            if last is not None and last > settled_through:
                lags.extend(now - seen.get(b, now) for b in range(settled_through + 1, last + 1))
                settled_through = last
            if now - last_print >= 15:
                print(
                    f"  in_flight={in_flight} {now - started:6.0f} s: head {head}, settled {settled_through}",
                    flush=True,
                )
                last_print = now
            await asyncio.sleep(0.25)
        head = await stack.runtime.adapters.sequencer.block_number()
        batch_interval, pipeline = await batch_timing(stack)
    finally:
        await stack.runtime.stop()
        await stack.close()
        conn.send("stop")
        await asyncio.to_thread(chain.join, 30)
        anvil.stop()
    return Outcome(
        in_flight=in_flight,
        blocks_behind_at_end=head - settled_through,
        lag_p95_s=p95(lags),
        batch_interval_s=batch_interval,
        pipeline_s=pipeline,
        settled_blocks=settled_through + 1,
        head=head,
    )


async def batch_timing(stack: object) -> tuple[float, float]:
    """The mean time between aggregator batches (creation to creation: a batch closes when the next one
    opens), and the mean time from a batch's closing to its Aggregator job's completion (what proving adds
    before its settlement may start)."""
    store = stack.store  # type: ignore[attr-defined]
    batches = sorted(await store.list_aggregator_batches(limit=10_000), key=lambda b: b.index)
    closed = {b.index: nxt.created_at for b, nxt in itertools.pairwise(batches)}
    gaps = [nxt.created_at - b.created_at for b, nxt in itertools.pairwise(batches)]
    proving = [
        j.updated_at - closed[j.internal_id]
        for j in await store.list_jobs(job_types=[JobType.AGGREGATOR], statuses=[JobStatus.COMPLETED])
        if j.internal_id in closed
    ]
    return (statistics.mean(gaps) if gaps else 0.0), (statistics.mean(proving) if proving else 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of each run (default 10)")
    parser.add_argument("--in-flight", type=int, default=4, help="N: settlements in flight of the second run")
    parser.add_argument("--time-scale", type=float, default=1.0, help="run the same ratios this many times faster")
    parser.add_argument("--tx-per-block", type=int, default=100)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    scale = args.time_scale
    l1_block_s = L1_BLOCK_S / scale
    print(
        f"devnet chain {L2_BLOCKS_PER_S * scale:g} blocks/s ({args.tx_per_block} txs a block), anvil block time "
        f"{l1_block_s:g} s, {CONFIRMATIONS} confirmations, {args.minutes:g} min a run"
        + (f" (the ratios of 2 blocks/s on a 12 s L1, {scale:g}x faster)" if scale != 1 else ""),
        flush=True,
    )
    outcomes = []
    for in_flight in (1, args.in_flight):
        outcome = asyncio.run(run(in_flight, minutes=args.minutes, scale=scale, tx_per_block=args.tx_per_block))
        outcomes.append(outcome)
        print(
            f"in_flight={outcome.in_flight} blocks_behind_at_end={outcome.blocks_behind_at_end} "
            f"settlement_lag_p95_s={outcome.lag_p95_s:.1f}",
            f"(head {outcome.head}, settled {outcome.settled_blocks} blocks; batch every "
            f"{outcome.batch_interval_s:.1f} s, proving before settlement {outcome.pipeline_s:.1f} s)",
            flush=True,
        )
    last = outcomes[-1]
    window = last.window_s(l1_block_s)
    blocks_in_window = window * L2_BLOCKS_PER_S * scale
    keeps = last.lag_p95_s <= window and last.blocks_behind_at_end <= blocks_in_window
    print(
        f"window: a batch interval + proving + {CONFIRMATIONS + 1} L1 blocks = {window:.1f} s "
        f"({blocks_in_window:.0f} blocks)"
    )
    print(f"keeps_pace={int(keeps)} lag_p95_s={last.lag_p95_s:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
