"""The cost ledger against a real L1 (issue 20, item 3): batches settle on anvil by blob transactions, and
the ledger the API, the counters and ``orchestrator cost`` show equals what anvil's receipts say, fee per fee
(``eth_getTransactionReceipt``: ``gasUsed × effectiveGasPrice`` and ``blobGasUsed × blobGasPrice``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from madara_orchestrator.cli.main import main
from madara_orchestrator.domain.jobs import JobStatus, JobType, StateUpdateMetadata
from tests.conftest import require
from tests.e2e.test_devnet_anvil import anvil_available
from tests.helpers.pipeline import Pipeline, eventually, start_pipeline

BLOCKS = 6
"""Blocks 0-5 in batches of two: three settlements."""
BATCH_SIZE = 2


async def settle_batches_on_anvil(tmp_path: Path) -> Pipeline:
    """A pipeline on anvil whose batches of ``BATCH_SIZE`` blocks settle through block ``BLOCKS - 1``."""
    require(anvil_available(), "anvil (make setup installs it into tools/)")
    p = await start_pipeline(tmp_path, blocks=BLOCKS, l1_hardfork="prague", overrides={"max_batch_size": BATCH_SIZE})
    try:

        async def all_settled() -> bool:
            batch = await p.stack.store.aggregator_batch_for_block(BLOCKS - 1)
            if batch is None:
                return False
            job = await p.stack.store.get_job_by_internal_id(JobType.STATE_TRANSITION, batch.index)
            return job is not None and job.status == JobStatus.COMPLETED

        await eventually(all_settled, 180, f"every batch through block {BLOCKS - 1} to settle on anvil")
    except BaseException:
        await p.close()
        raise
    return p


async def receipts(p: Pipeline, tx_hashes: list[str]) -> list[dict[str, Any]]:
    assert p.l1 is not None
    out = []
    async with httpx.AsyncClient() as client:
        for tx_hash in tx_hashes:
            reply = await client.post(
                p.l1.anvil.url,
                json={"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionReceipt", "params": [tx_hash]},
            )
            receipt = reply.json()["result"]
            tx = await client.post(
                p.l1.anvil.url,
                json={"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionByHash", "params": [tx_hash]},
            )
            out.append({**receipt, "blobVersionedHashes": tx.json()["result"]["blobVersionedHashes"]})
    return out


@pytest.mark.slow
async def test_the_ledger_equals_anvils_receipts_fee_per_fee(tmp_path: Path) -> None:
    p = await settle_batches_on_anvil(tmp_path)
    try:
        async with httpx.AsyncClient(base_url=p.api.url) as api:
            ledger = (await api.get("/cost")).json()["data"]
            lines = [line for line in ledger["batches"] if line["settled"]]
            assert len(lines) >= BLOCKS // BATCH_SIZE
            hashes = []
            for line in lines:
                job = await p.stack.store.get_job_by_internal_id(JobType.STATE_TRANSITION, line["index"])
                assert job is not None and isinstance(job.metadata.specific, StateUpdateMetadata)
                assert line["tx_hash"] == job.metadata.specific.tx_hash
                assert line["attempts"] == len(job.metadata.specific.tx_attempts)
                hashes.append(line["tx_hash"])
            found = await receipts(p, hashes)
            for line, receipt in zip(lines, found, strict=True):
                assert int(receipt["status"], 16) == 1
                execution = int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
                blob = int(receipt["blobGasUsed"], 16) * int(receipt["blobGasPrice"], 16)
                assert line["gas_used"] == int(receipt["gasUsed"], 16)
                assert line["execution_fee_wei"] == execution
                assert line["blob_gas_used"] == int(receipt["blobGasUsed"], 16)
                assert line["blob_fee_wei"] == blob
                assert line["fee_wei"] == execution + blob
                assert line["blobs"] == len(receipt["blobVersionedHashes"])
                assert line["blocks"] == line["end_block"] - line["start_block"] + 1
                assert line["bytes_stored"] > 0 and line["seconds_to_settle"] >= 0
                # The batch's own route shows the same line.
                one = (await api.get(f"/batches/aggregator/{line['index']}")).json()["data"]
                assert one["cost"] == line
            totals = ledger["totals"]
            execution_sum = sum(int(r["gasUsed"], 16) * int(r["effectiveGasPrice"], 16) for r in found)
            blob_sum = sum(int(r["blobGasUsed"], 16) * int(r["blobGasPrice"], 16) for r in found)
            assert totals["execution_fee_wei"] == execution_sum
            assert totals["blob_fee_wei"] == blob_sum
            assert totals["fee_wei"] == execution_sum + blob_sum
            assert totals["blob_gas_used"] == sum(int(r["blobGasUsed"], 16) for r in found)
            assert totals["blobs"] == sum(len(r["blobVersionedHashes"]) for r in found)
            assert totals["blocks"] == sum(line["blocks"] for line in lines)
            assert totals["fee_per_block_wei"] == (execution_sum + blob_sum) // totals["blocks"]
            assert ledger["series"][-1]["cumulative_fee_wei"] == execution_sum + blob_sum

            # The counters of this process, which sent every one of these transactions.
            metrics = (await api.get("/metrics")).text
            assert _counter(metrics, "orchestrator_settlement_execution_fee_wei_total") == execution_sum
            assert _counter(metrics, "orchestrator_settlement_blob_fee_wei_total") == blob_sum
            assert _counter(metrics, "orchestrator_settlement_blob_gas_total") == totals["blob_gas_used"]
            assert _counter(metrics, "orchestrator_storage_bytes_written_total") > 0

        # ``orchestrator cost`` reads the same database and prints the same ledger.
        data_dir = str(tmp_path / "data")
        command = ["cost", "--data-dir", data_dir, "--json"]
        code, printed = await asyncio.to_thread(_run_cli, command)
        assert code == 0
        assert json.loads(printed)["totals"]["fee_wei"] == execution_sum + blob_sum
    finally:
        await p.close()


def _run_cli(argv: list[str]) -> tuple[int, str]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    return code, out.getvalue()


def _counter(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not on /metrics")
