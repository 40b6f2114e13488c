"""Pipeline throughput with zero-latency devnet adapters (not a test).

A devnet chain of N blocks is produced up front and served over JSON-RPC/HTTP; the orchestrator carries
every block through SnosRun, ProofCreation, Aggregator and StateTransition. Prints blocks settled per
minute and the stage hand-off latency (a job's completion to its successor's creation).

- ``--backend sqlite`` (default): one orchestrator in this process on the embedded backend.
- ``--backend postgres --processes N``: N ``orchestrator run`` processes on one throwaway PostgreSQL
  cluster (started here as the tests start it: initdb into a scratch directory, fsync off), sharing the
  queue, the artifacts directory and the devnet settlement ledger; a hand-off is then often from one
  process to another (a LISTEN/NOTIFY wake-up). ``--processes 1,2,4`` runs each count in turn.

Last line: ``blocks_per_min=X handoff_p95_s=Y`` (for postgres: of the run with 2 processes, when run).

    .venv/bin/python bench/pipeline.py [--blocks 600]
    .venv/bin/python bench/pipeline.py --backend postgres --processes 1,2,4
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

import httpx

from madara_orchestrator.cli.compose import build_embedded_stack
from madara_orchestrator.cli.devnet import STAGE_NAMES, close_tail, devnet_settings
from madara_orchestrator.cli.settings import Settings
from madara_orchestrator.devnet.sequencer import DevnetChain, DevnetSequencer
from madara_orchestrator.engine.plan import L2_PLAN
from madara_orchestrator.engine.report import PipelineReport, pipeline_report
from madara_orchestrator.server.background import BackgroundServer, free_port

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests/helpers: the throwaway PostgreSQL cluster and the process wrapper


async def run(blocks: int, *, rate: float | None = None, tx_per_block: int = 100) -> tuple[float, float]:
    """With ``rate`` None, all blocks exist up front (capacity); else they arrive ``rate`` per second."""
    chain = DevnetChain(tx_per_block=tx_per_block)
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
    _print_report(report)
    return blocks / elapsed * 60, report.all_handoffs.p95


def _print_report(report: PipelineReport) -> None:
    print("stage           jobs   created->completed p50/p95 (s)   hand-off p50/p95 (s)")
    for name, job_type in L2_PLAN.stages(STAGE_NAMES):
        s = report.stage[job_type]
        h = report.handoff.get(job_type)
        hand = f"{h.p50:8.3f} / {h.p95:6.3f}" if h and h.count else "       - /      -"
        print(f"{name:<14} {s.count:>5}   {s.p50:10.3f} / {s.p95:8.3f}           {hand}")


def _flags(values: dict[str, object]) -> list[str]:
    argv: list[str] = []
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is not None and value is not False:
            argv += [flag, str(value)]
    return argv


async def run_cluster(
    url: str, blocks: int, processes: int, *, rate: float | None = None, tx_per_block: int = 100
) -> tuple[float, float]:
    """``processes`` orchestrators on the PostgreSQL database ``url``; (blocks per minute, hand-off p95)."""
    from madara_orchestrator.backends.postgres import PostgresStore
    from madara_orchestrator.backends.postgres_db import PostgresDatabase
    from madara_orchestrator.devnet.adapters import DevnetSettlement
    from tests.helpers.cluster import Instance

    chain = DevnetChain(tx_per_block=tx_per_block)
    while rate is None and chain.head + 1 < blocks:
        chain.produce_block()
    sequencer = DevnetSequencer(chain, block_time_s=1 / rate if rate else 1.0)
    rpc = BackgroundServer(sequencer.app)
    await rpc.start()
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    ledger = work / "devnet-settlement.db"
    flags = _flags(
        {
            "prover": "devnet",
            "snos_runner": "devnet",
            "aggregator_runner": "devnet",
            "settle_on_devnet": True,
            "devnet_settlement_path": str(ledger),
            "storage_dir": str(work / "objects"),
            "verification_poll_seconds": 0.05,
            "chain_poll_interval_seconds": 0.1,
            "interval_seconds": 5,
            "retry_base_delay_seconds": 0.5,
            "max_batch_processing_size": 100,
            "snos_job_buffer_size": 200,
            "aggregator_job_buffer_size": 50,
            "max_concurrent_snos_jobs": 10,
            "max_batch_time_seconds": 2,  # the last, partial batch closes soon after the last block
        }
    )
    instances = [
        Instance(
            name=f"bench-{n}",
            port=free_port(),
            argv=["--data-dir", str(work / f"data-{n}"), *flags],
            env={
                "MADARA_ORCHESTRATOR_MADARA_RPC_URL": rpc.url,
                "MADARA_ORCHESTRATOR_POSTGRES_URL": url,
                "LOG_LEVEL": "WARNING",
            },
            log_dir=work,
        )
        for n in range(processes)
    ]
    for instance in instances:
        await instance.start()
    database = PostgresDatabase(url)
    await database.open()
    store = PostgresStore(database)
    settlement = DevnetSettlement(ledger)
    # Wait until every instance serves its API (started), then let the blocks come.
    async with httpx.AsyncClient(timeout=2) as client:
        for instance in instances:
            while True:
                try:
                    if (await client.get(instance.url + "/health/live")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
    if rate:
        sequencer.start_producing(max_blocks=blocks)
    started = time.monotonic()
    last_print = started
    while True:
        last = await settlement.last_settled_block()
        settled = 0 if last is None else last + 1
        now = time.monotonic()
        if now - last_print >= 5:
            print(f"  {now - started:6.1f} s: {settled} blocks settled", flush=True)
            last_print = now
        if settled >= blocks:
            break
        for instance in instances:
            if not instance.running():
                raise SystemExit(f"{instance.name} exited:\n{instance.log_tail()}")
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    report = await pipeline_report(store)
    for instance in instances:
        await instance.stop()
    await sequencer.stop_producing()
    await rpc.stop()
    await database.close()
    mode = "all blocks there at the start" if rate is None else f"blocks arriving {rate * 60:.0f}/min"
    print(f"settled {blocks} blocks in {elapsed:.1f} s ({mode}) with {processes} process(es) on PostgreSQL")
    _print_report(report)
    return blocks / elapsed * 60, report.all_handoffs.p95


def main_postgres(args: argparse.Namespace) -> None:
    from tests.helpers.postgres import start_cluster

    counts = [int(n) for n in str(args.processes).split(",")]
    cluster = start_cluster()
    results: dict[int, tuple[float, float]] = {}
    try:
        for n in counts:
            print(f"\n== {n} process(es): capacity, {args.blocks} blocks available at once")
            per_min, _ = asyncio.run(
                run_cluster(cluster.create_database(), args.blocks, n, tx_per_block=args.tx_per_block)
            )
            print(f"\n== {n} process(es): hand-off, {args.rate_blocks} blocks arriving at {args.rate:g}/s")
            _, p95 = asyncio.run(
                run_cluster(
                    cluster.create_database(), args.rate_blocks, n, rate=args.rate, tx_per_block=args.tx_per_block
                )
            )
            results[n] = (per_min, p95)
    finally:
        cluster.stop()
    print()
    for n, (per_min, p95) in results.items():
        print(f"processes={n} blocks_per_min={per_min:.0f} handoff_p95_s={p95:.3f}")
    per_min, p95 = results.get(2, results[counts[-1]])
    print(f"blocks_per_min={per_min:.0f} handoff_p95_s={p95:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=600, help="blocks for the capacity run")
    parser.add_argument("--rate", type=float, default=10.0, help="blocks per second for the hand-off run")
    parser.add_argument("--rate-blocks", type=int, default=300, help="blocks for the hand-off run")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--tx-per-block", type=int, default=100, help="devnet transactions per block (its default)")
    parser.add_argument("--processes", default="1,2,4", help="postgres: orchestrator processes, e.g. 2 or 1,2,4")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.backend == "postgres":
        main_postgres(args)
        return
    print(f"capacity: {args.blocks} blocks available at once")
    per_min, _ = asyncio.run(run(args.blocks, tx_per_block=args.tx_per_block))
    print(f"\nhand-off: {args.rate_blocks} blocks arriving at {args.rate:g}/s ({args.rate * 60:.0f}/min)")
    _, handoff_p95 = asyncio.run(run(args.rate_blocks, rate=args.rate, tx_per_block=args.tx_per_block))
    print(f"blocks_per_min={per_min:.0f} handoff_p95_s={handoff_p95:.3f}")


if __name__ == "__main__":
    main()
