"""Real batching on a real local L1: 80 busy blocks settle in a few multi-blob transactions.

The devnet sequencer fills blocks (100 transactions each), so with the default limits an aggregator batch
closes by blob size after some 67 blocks (6 blobs); the other 13 blocks (2 blobs) are the tail batch. Each
batch settles as one ``updateStateKzgDA`` blob transaction that the core contract on anvil verifies blob
by blob. (Fewer than 68 blocks would never fill a batch; the 12 more leave room for a better compression.)
"""

from __future__ import annotations

import itertools
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from madara_orchestrator.cli.devnet import close_tail
from madara_orchestrator.domain.batches import AggregatorBatch, AggregatorBatchStatus
from madara_orchestrator.domain.batching import Reason
from madara_orchestrator.domain.chain import FELTS_PER_BLOB
from madara_orchestrator.domain.jobs import JobStatus, JobType, StateUpdateMetadata
from madara_orchestrator.jobs.artifacts import decode_felts_json
from madara_orchestrator.settlement.ethereum import EthereumSettlementClient
from tests.conftest import require
from tests.e2e.test_devnet_anvil import anvil_available
from tests.e2e.test_devnet_command import orchestrator
from tests.helpers.pipeline import Pipeline, eventually, start_pipeline

pytestmark = pytest.mark.slow

BLOCKS = 80
LAST = BLOCKS - 1
UPDATE_STATE_KZG_DA = "0x507ee528"
CLOSED_LINE = re.compile(r"aggregator batch (\d+) closed: ")


def closed_by_size(records: list[logging.LogRecord]) -> set[int]:
    """Aggregator batches whose close the batcher logged with the blob-size reason."""
    found = set()
    for record in records:
        message = record.getMessage()
        match = CLOSED_LINE.match(message)
        if match and str(Reason.BLOB_SIZE) in message:
            found.add(int(match.group(1)))
    return found


async def test_default_batching_settles_busy_blocks_in_a_few_verified_multi_blob_transactions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require(anvil_available(), "anvil (make setup installs it into tools/)")
    caplog.set_level(logging.INFO, logger="madara_orchestrator.batching")
    # The default limits of `orchestrator run` (100 blocks, 6 blobs less a 15-felt buffer, 300 s); the
    # helper's one-block batches and the devnet's 30 s age are undone, so batches close by size whatever
    # the machine's speed. The tail batch is closed as `orchestrator devnet --blocks` does.
    p = await start_pipeline(
        tmp_path,
        blocks=BLOCKS,
        l1_hardfork="prague",
        tx_per_block=100,
        overrides={"max_batch_size": 100, "max_batch_time_seconds": 300},
    )
    try:
        l1 = p.l1
        assert l1 is not None
        settlement = p.stack.settlement
        assert isinstance(settlement, EthereumSettlementClient)
        tail_closed = False

        async def settled() -> bool:
            nonlocal tail_closed
            if not tail_closed:
                tail_closed = await close_tail(p.stack, last_block=LAST)
            return await settlement.last_settled_block() == LAST

        await eventually(settled, 170, f"stateBlockNumber to reach block {LAST} on anvil")

        async def all_completed() -> bool:
            batches = await p.stack.store.list_aggregator_batches()
            return bool(batches) and all(b.status == AggregatorBatchStatus.COMPLETED for b in batches)

        await eventually(all_completed, 30, "every aggregator batch to be Completed")
        batches = sorted(await p.stack.store.list_aggregator_batches(), key=lambda b: b.index)
        assert_tiling(batches)
        assert 2 <= len(batches) <= 4, [(b.index, b.start_block, b.end_block, b.blob_len) for b in batches]

        blob_counts: dict[int, int] = {}
        for batch in batches:
            da = decode_felts_json(await p.stack.objects.get(f"artifacts/batch/{batch.index}/da_blob.json"))
            assert batch.blob_len == len(da), f"batch {batch.index}: record {batch.blob_len}, DA segment {len(da)}"
            blob_counts[batch.index] = -(-len(da) // FELTS_PER_BLOB)
            assert 1 <= blob_counts[batch.index] <= 6

        nonces = []
        async with httpx.AsyncClient() as client:

            async def rpc(method: str, *params: object) -> Any:
                reply = await client.post(
                    l1.anvil.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
                )
                return reply.json()["result"]

            for batch in batches:
                tx_hash = await completed_tx_hash(p, batch.index)
                tx = await rpc("eth_getTransactionByHash", tx_hash)
                receipt = await rpc("eth_getTransactionReceipt", tx_hash)
                assert int(tx["type"], 16) == 3, "a blob transaction"
                assert tx["to"].lower() == l1.contracts.core_contract.lower()
                assert tx["input"].startswith(UPDATE_STATE_KZG_DA)
                assert int(receipt["status"], 16) == 1, "the contract accepted the blobs and the fact"
                assert len(tx["blobVersionedHashes"]) == blob_counts[batch.index], (
                    f"batch {batch.index}: {len(tx['blobVersionedHashes'])} blobs sent for a DA segment of "
                    f"{batch.blob_len} felts"
                )
                nonces.append(int(tx["nonce"], 16))
        assert nonces == list(range(nonces[0], nonces[0] + len(batches))), "one nonce per batch, in order"
        assert await settlement.last_settled_block() == LAST

        by_size = closed_by_size(caplog.records)
        assert by_size, f"no aggregator batch closed by blob size: {p.stack.runtime.batcher.stats.closed}"
        assert any(blob_counts[i] > 1 for i in by_size), {i: blob_counts[i] for i in by_size}
        summary = await p.stack.settlement_summary()
        assert summary.startswith(f"blob transactions: {len(batches)} settled")
    finally:
        await p.close()


def assert_tiling(batches: list[AggregatorBatch]) -> None:
    """The batches cover blocks 0..LAST, each starting right after the one before."""
    assert batches[0].start_block == 0
    for before, after in itertools.pairwise(batches):
        assert after.index == before.index + 1
        assert after.start_block == before.end_block + 1, (before, after)
    assert batches[-1].end_block == LAST


async def completed_tx_hash(p: Pipeline, index: int) -> str:
    job = await p.stack.store.get_job_by_internal_id(JobType.STATE_TRANSITION, index)
    assert job is not None and job.status == JobStatus.COMPLETED, job
    meta = job.metadata.specific
    assert isinstance(meta, StateUpdateMetadata) and meta.tx_hash
    return meta.tx_hash


def test_devnet_command_settles_busy_blocks_in_a_few_blob_transactions(tmp_path: Path) -> None:
    """`orchestrator devnet --blocks 80` with its defaults (100 transactions a block, default batching)."""
    require(anvil_available(), "anvil (make setup installs it into tools/)")
    proc = orchestrator(
        "devnet",
        "--blocks",
        str(BLOCKS),
        "--block-time",
        "0.05",
        "--port",
        "0",
        "--timeout",
        "240",
        "--data-dir",
        str(tmp_path / "data"),
        cwd=tmp_path,
    )
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-2000:] + err[-2000:]
    lines = out.strip().splitlines()
    assert re.fullmatch(rf"settled {BLOCKS} blocks in \d+\.\d s", lines[-1]), lines[-1]
    fees = [line for line in lines if line.startswith("blob transactions:")]
    assert fees, lines
    found = re.match(r"blob transactions: (\d+) settled \((\d+) signed\), fee paid: \d+\.\d{6} ETH", fees[0])
    assert found, fees[0]
    assert 1 <= int(found.group(1)) <= 12, fees[0]
    batches = [line for line in lines if line.startswith("batches:")]
    assert batches and re.match(
        rf"batches: {found.group(1)} settled, \d+\.\d blocks per settlement, \d+\.\d\d blobs per settlement, "
        r"blob fill \d\.\d{3} \(",
        batches[0],
    ), lines
    assert any(re.fullmatch(r"fee per settled block: \d+\.\d{9} ETH \(\d+ wei\)", line) for line in lines), lines
    assert "Traceback" not in err
