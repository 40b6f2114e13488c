"""What batching saves on L1: the same devnet blocks settled on anvil with one-block batches, then with
the default batching limits (not a test).

Both runs settle the same deterministic chain (same seed, same transactions per block) on a fresh anvil
with the devnet core contract, which verifies every blob. Run 1 uses ``--max-batch-size 1`` (one block
per aggregator batch, hence per SNOS batch and per settlement); run 2 the defaults of ``orchestrator
run`` (100 blocks, 6 blobs less a 15-felt buffer, bouncer weights, 300 s age), the tail batch closed
once the last block is batched, as ``orchestrator devnet --blocks`` does.

Per run: settlements, blobs, fee paid, gas, fee and gas per block, blocks per settlement, blob fill
(felts used / felts paid for, 4096 per blob), overall and for the batches closed by blob size. anvil's
blob base fee stays at its 1-wei minimum, so the fee is almost all execution gas; its base fee falls
with every lightly used L1 block, so the gas figures compare the runs at equal prices.
Last line: ``fee_per_block_ratio=X blob_fill=Y blocks_per_settlement=Z`` (X: one-block fee per block /
batched fee per block, both runs' receipts priced alike; Y: fill of the batches closed by size; Z:
batched blocks per settlement).

    .venv/bin/python bench/cost.py [--blocks 200] [--tx-per-block 100] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from madara_orchestrator.cli.compose import build_embedded_stack  # noqa: E402
from madara_orchestrator.cli.devnet import batches_completed, close_tail, devnet_settings, start_local_l1  # noqa: E402
from madara_orchestrator.cli.settings import RUN_OPTIONS, Settings  # noqa: E402
from madara_orchestrator.devnet.sequencer import DEFAULT_TX_PER_BLOCK, DevnetChain, DevnetSequencer  # noqa: E402
from madara_orchestrator.domain.batches import AggregatorBatchStatus  # noqa: E402
from madara_orchestrator.domain.batching import Reason  # noqa: E402
from madara_orchestrator.domain.chain import FELTS_PER_BLOB  # noqa: E402
from madara_orchestrator.domain.jobs import JobType, StateUpdateMetadata  # noqa: E402
from madara_orchestrator.jobs.artifacts import decode_felts_json  # noqa: E402
from madara_orchestrator.server.background import BackgroundServer  # noqa: E402
from madara_orchestrator.settlement.eth_rpc import EthRpc  # noqa: E402
from madara_orchestrator.settlement.ethereum import EthereumSettlementClient  # noqa: E402

ETH = 10**18
CLOSED_LINE = re.compile(r"aggregator batch (\d+) closed: .*? blob\(s\); (.*)$")
RUN_MAX_BATCH_TIME_S = next(o.default for o in RUN_OPTIONS if o.name == "max_batch_time_seconds")


class CloseReasons(logging.Handler):
    """Why each aggregator batch closed, from the batcher's INFO line (index → reason text)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.by_index: dict[int, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        match = CLOSED_LINE.match(record.getMessage())
        if match:
            text = match.group(2)
            known = [str(r) for r in Reason if text.startswith(str(r))]
            self.by_index[int(match.group(1))] = known[0] if known else text


@dataclass
class Settlement:
    batch: int
    blocks: int
    felts: int
    blob_len: int
    blobs: int
    gas_used: int
    gas_price: int
    blob_gas_used: int
    blob_gas_price: int
    calldata_bytes: int
    reason: str

    @property
    def fee(self) -> int:
        return self.gas_used * self.gas_price + self.blob_gas_used * self.blob_gas_price

    @property
    def by_size(self) -> bool:
        return self.reason == str(Reason.BLOB_SIZE)


@dataclass
class RunResult:
    name: str
    blocks: int
    elapsed_s: float
    fee_paid_wei: int
    settlements: list[Settlement] = field(default_factory=list)
    l1_blocks: int = 0
    final_base_fee: int = 0

    @property
    def fee_per_block(self) -> float:
        return self.fee_paid_wei / self.blocks

    @property
    def gas_per_block(self) -> float:
        return sum(s.gas_used for s in self.settlements) / self.blocks

    @property
    def blocks_per_settlement(self) -> float:
        return self.blocks / len(self.settlements)

    def fill(self, only_by_size: bool = False) -> tuple[float, int, int]:
        chosen = [s for s in self.settlements if s.by_size or not only_by_size]
        used = sum(s.felts for s in chosen)
        paid = sum(s.blobs for s in chosen) * FELTS_PER_BLOB
        return (used / paid if paid else 0.0), used, paid


async def settle(name: str, blocks: int, *, seed: int, tx_per_block: int, overrides: dict[str, Any]) -> RunResult:
    """Settle blocks 0..blocks-1 of a fresh chain on a fresh anvil; all blocks exist from the start."""
    chain = DevnetChain(seed=seed, tx_per_block=tx_per_block)
    while chain.head + 1 < blocks:
        chain.produce_block()
    sequencer = DevnetSequencer(chain, block_time_s=1.0)
    rpc = BackgroundServer(sequencer.app)
    await rpc.start()
    data = Path(tempfile.mkdtemp(prefix=f"bench-cost-{name}-"))
    l1 = await start_local_l1(data, hardfork="prague")
    base = devnet_settings(data, rpc.url, port=0)
    settings = Settings({**base.values, **l1.overrides, **overrides})
    stack = await build_embedded_stack(settings)
    reasons = CloseReasons()
    batch_log = logging.getLogger("madara_orchestrator.batching")
    batch_log.addHandler(reasons)
    batch_log.setLevel(logging.INFO)
    batch_log.propagate = False
    last = blocks - 1
    started = time.monotonic()
    await stack.runtime.start()
    try:
        tail_closed = False
        last_print = started
        while True:
            if not tail_closed:
                tail_closed = await close_tail(stack, last_block=last)
            settled = await stack.settlement.last_settled_block()
            if settled == last and await batches_completed(stack, blocks):
                break
            now = time.monotonic()
            if now - last_print >= 10:
                print(f"  {now - started:6.1f} s: {0 if settled is None else settled + 1} blocks settled", flush=True)
                last_print = now
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
    finally:
        await stack.runtime.stop()
        await rpc.stop()
        batch_log.removeHandler(reasons)
        batch_log.propagate = True
    result = RunResult(name=name, blocks=blocks, elapsed_s=elapsed, fee_paid_wei=await stack.settlement_fee_wei() or 0)
    eth = EthRpc(l1.anvil.url)
    try:
        assert isinstance(stack.settlement, EthereumSettlementClient)
        batches = await stack.store.list_aggregator_batches(statuses=[AggregatorBatchStatus.COMPLETED])
        for batch in sorted(batches, key=lambda b: b.index):
            da = decode_felts_json(await stack.objects.get(f"artifacts/batch/{batch.index}/da_blob.json"))
            job = await stack.store.get_job_by_internal_id(JobType.STATE_TRANSITION, batch.index)
            assert job is not None and isinstance(job.metadata.specific, StateUpdateMetadata)
            tx_hash = job.metadata.specific.tx_hash
            assert tx_hash, f"StateTransition {batch.index} has no transaction"
            receipt = await eth.transaction_receipt(tx_hash)
            tx = await eth.request("eth_getTransactionByHash", [tx_hash])
            assert receipt is not None and tx is not None
            result.settlements.append(
                Settlement(
                    batch=batch.index,
                    blocks=batch.num_blocks,
                    felts=len(da),
                    blob_len=batch.blob_len,
                    blobs=len(tx["blobVersionedHashes"]),
                    gas_used=int(receipt["gasUsed"], 16),
                    gas_price=int(receipt["effectiveGasPrice"], 16),
                    blob_gas_used=int(receipt.get("blobGasUsed", "0x0"), 16),
                    blob_gas_price=int(receipt.get("blobGasPrice", "0x0"), 16),
                    calldata_bytes=(len(tx["input"]) - 2) // 2,
                    reason=reasons.by_index.get(batch.index, "?"),
                )
            )
        result.l1_blocks = await eth.block_number()
        result.final_base_fee = int((await eth.latest_block())["baseFeePerGas"], 16)
    finally:
        await eth.aclose()
        await stack.close()
        l1.stop()
    report(result)
    return result


def report(r: RunResult) -> None:
    s = r.settlements
    blobs = sum(x.blobs for x in s)
    gas = sum(x.gas_used for x in s)
    fill, used, paid = r.fill()
    size_fill, size_used, size_paid = r.fill(only_by_size=True)
    by_size = sum(1 for x in s if x.by_size)
    receipts_fee = sum(x.fee for x in s)
    print(f"{r.name}: settled {r.blocks} blocks in {r.elapsed_s:.1f} s")
    print(f"  settlements            {len(s)} ({r.blocks_per_settlement:.1f} blocks per settlement)")
    print(f"  blobs                  {blobs} ({blobs / len(s):.2f} per settlement)")
    print(f"  fee paid               {r.fee_paid_wei} wei = {r.fee_paid_wei / ETH:.9f} ETH (receipts: {receipts_fee})")
    print(f"  fee per block          {r.fee_per_block:.0f} wei = {r.fee_per_block / ETH:.9f} ETH")
    print(
        f"  gas per settlement     mean {gas / len(s):,.0f} (min {min(x.gas_used for x in s):,}, "
        f"max {max(x.gas_used for x in s):,}); gas per block {r.gas_per_block:,.0f}"
    )
    for n in sorted({x.blobs for x in s}):
        group = [x for x in s if x.blobs == n]
        print(
            f"    {n} blob(s): {len(group):>3} settlement(s), gas {statistics.mean(x.gas_used for x in group):,.0f}, "
            f"calldata {statistics.mean(x.calldata_bytes for x in group):,.0f} bytes"
        )
    prices = [x.gas_price for x in s]
    print(
        f"  gas price (effective)  first {prices[0] / 1e9:.4f} gwei, last {prices[-1] / 1e9:.4f} gwei, "
        f"mean {statistics.mean(prices) / 1e9:.4f} gwei; blob gas price {s[0].blob_gas_price} wei; "
        f"{r.l1_blocks} L1 blocks, final base fee {r.final_base_fee} wei"
    )
    print(f"  blob fill              {fill:.3f} ({used:,} felts used / {paid:,} paid for)")
    print(
        f"  blob fill, by size     {size_fill:.3f} ({size_used:,} / {size_paid:,}; {by_size} batch(es) closed by size)"
    )
    reasons: dict[str, int] = {}
    for x in s:
        reasons[x.reason] = reasons.get(x.reason, 0) + 1
    print("  batches closed         " + "; ".join(f"{n}× {reason}" for reason, n in sorted(reasons.items())))
    mismatched = [x.batch for x in s if x.blob_len != x.felts]
    if mismatched:
        print(f"  WARNING: blob_len of batch(es) {mismatched} differs from the published DA segment length")
    if len(s) > 1 and len(s) <= 12:
        print(
            "  per batch              " + ", ".join(f"{x.blocks} blocks/{x.felts:,} felts/{x.blobs} blobs" for x in s)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=200, help="blocks settled by each run")
    parser.add_argument("--tx-per-block", type=int, default=DEFAULT_TX_PER_BLOCK, help="devnet transactions a block")
    parser.add_argument("--seed", type=int, default=7, help="devnet chain seed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    common = {"max_batch_time_seconds": RUN_MAX_BATCH_TIME_S}
    print(f"{args.blocks} devnet blocks (seed {args.seed}, {args.tx_per_block} transactions a block), anvil prague\n")
    one = asyncio.run(
        settle(
            "one-block batches",
            args.blocks,
            seed=args.seed,
            tx_per_block=args.tx_per_block,
            overrides={**common, "max_batch_size": 1},
        )
    )
    print()
    batched = asyncio.run(
        settle("default batching", args.blocks, seed=args.seed, tx_per_block=args.tx_per_block, overrides=common)
    )
    measured_ratio = one.fee_per_block / batched.fee_per_block
    gas_ratio = one.gas_per_block / batched.gas_per_block
    # anvil's base fee falls with every lightly used L1 block, and the one-block run makes ~20x more of
    # them: what each run paid is not comparable. Price both runs' receipts alike instead: the batched
    # run's mean gas price, and a blob base fee of 1 wei (anvil's) or 1 gwei (a busy mainnet day).
    gas_price = statistics.mean(x.gas_price for x in batched.settlements)
    ratio = equal_price_fee_per_block(one, gas_price, 1) / equal_price_fee_per_block(batched, gas_price, 1)
    busy = equal_price_fee_per_block(one, gas_price, 10**9) / equal_price_fee_per_block(batched, gas_price, 10**9)
    size_fill, _, _ = batched.fill(only_by_size=True)
    print()
    print(
        f"one-block / batched, fee per block: {ratio:.1f}x at equal prices ({gas_price / 1e9:.4f} gwei gas, "
        f"1 wei blob gas), {busy:.1f}x with blob gas at 1 gwei; as paid on anvil {measured_ratio:.1f}x "
        f"(mean gas price {statistics.mean(x.gas_price for x in one.settlements) / 1e9:.4f} vs "
        f"{gas_price / 1e9:.4f} gwei); gas per block {gas_ratio:.1f}x"
    )
    print(
        f"fee_per_block_ratio={ratio:.1f} blob_fill={size_fill:.3f} "
        f"blocks_per_settlement={batched.blocks_per_settlement:.1f}"
    )


def equal_price_fee_per_block(run: RunResult, gas_price: float, blob_gas_price: int) -> float:
    """What the run's settlements would cost per block if every one paid these prices."""
    total = sum(x.gas_used * gas_price + x.blob_gas_used * blob_gas_price for x in run.settlements)
    return total / run.blocks


if __name__ == "__main__":
    main()
