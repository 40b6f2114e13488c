"""The cost ledger (issue 20, item 3): its arithmetic (domain/cost.py), how the fee split is carried from the
receipt onto the job's attempts, what it reads from the stores (engine/cost.py), the API routes, the CLI and
the counters."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from madara_orchestrator.cli.compose import EmbeddedStack, build_embedded_stack
from madara_orchestrator.cli.devnet import devnet_settings
from madara_orchestrator.cli.main import main
from madara_orchestrator.domain.artifacts import AggregatorFile, SnosFile, aggregator_key, snos_key
from madara_orchestrator.domain.batches import AggregatorBatch, AggregatorBatchStatus, SnosBatch, SnosBatchStatus
from madara_orchestrator.domain.chain import GAS_PER_BLOB
from madara_orchestrator.domain.cost import FeeSplit, batch_cost, summarize
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.domain.jobs import Job, JobStatus, JobType, SettlementContext, StateUpdateMetadata
from madara_orchestrator.engine.cost import CountedObjects, parse_since
from madara_orchestrator.engine.metrics import Metrics
from madara_orchestrator.interfaces import SettlementAttempt, SettlementResult
from madara_orchestrator.jobs.state_update import settlement_attempts_json
from madara_orchestrator.server.app import create_app

NOW = 1_700_000_000.0


def split(gas: int, price: int, blob_gas: int, blob_price: int) -> FeeSplit:
    return FeeSplit(gas_used=gas, effective_gas_price_wei=price, blob_gas_used=blob_gas, blob_gas_price_wei=blob_price)


def mined(tx: str, fee_split: FeeSplit | None, *, fee: int | None = None, attempt_no: int = 1) -> dict[str, Any]:
    entry: dict[str, Any] = {"attempt_no": attempt_no, "tx_hash": tx, "nonce": 0, "status": "Finalized"}
    if fee_split is not None:
        entry["fee_paid_wei"] = str(fee_split.fee_wei)
        entry.update(fee_split.attempt_fields())
    elif fee is not None:
        entry["fee_paid_wei"] = str(fee)
    return entry


# -- arithmetic -------------------------------------------------------------------------------------


def test_a_receipts_split_is_gas_times_price_for_execution_and_for_blobs() -> None:
    receipt = {"gasUsed": hex(81_234), "effectiveGasPrice": hex(7_000_000_007), "blobGasUsed": hex(2 * GAS_PER_BLOB)}
    receipt["blobGasPrice"] = hex(3)
    fees = FeeSplit.from_receipt(receipt)
    assert fees is not None
    assert fees.execution_fee_wei == 81_234 * 7_000_000_007
    assert fees.blob_fee_wei == 2 * GAS_PER_BLOB * 3
    assert fees.fee_wei == fees.execution_fee_wei + fees.blob_fee_wei
    assert FeeSplit.from_attempt(fees.attempt_fields()) == fees
    plain = FeeSplit.from_receipt({"gasUsed": "0x5208", "effectiveGasPrice": "0x2"})
    assert plain == split(21_000, 2, 0, 0)
    assert FeeSplit.from_receipt({"gasUsed": "0x5208"}) is None
    assert FeeSplit.from_attempt({"fee_paid_wei": "5"}) is None


def test_a_batch_line_takes_its_fees_from_the_mined_attempt_and_its_blobs_from_the_blob_gas() -> None:
    fees = split(100_000, 10, 3 * GAS_PER_BLOB, 7)
    attempts = [
        {"attempt_no": 1, "tx_hash": "0xa", "nonce": 4, "status": "Replaced"},
        mined("0xb", fees, attempt_no=2),
    ]
    line = batch_cost(
        index=3,
        start_block=10,
        end_block=19,
        felts=9000,
        uses_blobs=True,
        settled=True,
        tx_attempts=attempts,
        first_block_at=NOW,
        settled_at=NOW + 75,
        bytes_stored=1234,
    )
    assert (line.blocks, line.blobs, line.attempts, line.replacements) == (10, 3, 2, 1)
    assert line.fill == pytest.approx(9000 / (3 * 4096))
    assert line.execution_fee_wei == 1_000_000 and line.blob_fee_wei == 3 * GAS_PER_BLOB * 7
    assert line.fee_wei == fees.fee_wei and line.fee_per_block_wei == fees.fee_wei // 10
    assert line.seconds_to_settle == 75 and line.tx_hash == "0xb" and line.bytes_stored == 1234
    # Without a recorded split: the recorded total, the blobs the felts take, no split.
    older = batch_cost(
        index=4, start_block=20, end_block=20, felts=5000, uses_blobs=True, settled=True,
        tx_attempts=[mined("0xc", None, fee=999)],
    )  # fmt: skip
    assert (older.fee_wei, older.execution_fee_wei, older.blob_fee_wei, older.blobs) == (999, None, None, 2)
    # Not settled: no fee, no settled time, whatever an attempt says.
    pending = batch_cost(
        index=5, start_block=21, end_block=22, felts=10, uses_blobs=True, settled=False,
        tx_attempts=[mined("0xd", fees)], first_block_at=NOW, settled_at=NOW + 5,
    )  # fmt: skip
    assert (pending.fee_wei, pending.settled_at, pending.seconds_to_settle, pending.attempts) == (None, None, None, 1)
    # An L3 line (calldata): neither felts nor blobs apply.
    l3 = batch_cost(index=1, start_block=0, end_block=3, felts=None, uses_blobs=False, settled=True,
                    tx_attempts=[mined("0xe", None, fee=40)])  # fmt: skip
    assert (l3.felts, l3.blobs, l3.fill, l3.fee_wei, l3.fee_per_block_wei) == (None, None, None, 40, 10)


def test_the_sums_are_the_sums_of_the_lines_and_the_series_accumulates_them() -> None:
    splits = {1: split(90_000, 11, GAS_PER_BLOB, 5), 2: split(95_000, 13, 2 * GAS_PER_BLOB, 1), 4: None}
    lines = []
    start = 0
    for index, blocks in ((2, 6), (1, 4), (3, 5), (4, 2)):  # out of order: the summary sorts
        fees = splits.get(index)
        attempts = [mined(f"0x{index}", fees, fee=777 if index == 4 else None)] if index != 3 else []
        lines.append(
            batch_cost(
                index=index, start_block=start, end_block=start + blocks - 1, felts=3000 * index, uses_blobs=True,
                settled=index != 3, tx_attempts=attempts, bytes_stored=100 * index,
            )
        )  # fmt: skip
        start += blocks
    summary = summarize(lines)
    totals = summary.to_json()
    settled = [c for c in lines if c.settled]
    assert [c.index for c in summary.lines] == [1, 2, 3, 4]
    assert totals["batches"] == 4 and totals["settled"] == 3 and totals["with_fee"] == 3
    assert totals["blocks"] == 4 + 6 + 2
    assert totals["execution_fee_wei"] == 90_000 * 11 + 95_000 * 13
    assert totals["blob_fee_wei"] == GAS_PER_BLOB * 5 + 2 * GAS_PER_BLOB * 1
    assert totals["blob_gas_used"] == 3 * GAS_PER_BLOB and totals["gas_used"] == 185_000
    assert totals["fee_wei"] == sum(c.fee_wei or 0 for c in settled)
    assert totals["fee_wei"] == totals["execution_fee_wei"] + totals["blob_fee_wei"] + 777
    assert totals["fee_per_block_wei"] == totals["fee_wei"] // 12
    assert totals["bytes_stored"] == 100 + 200 + 300 + 400
    assert totals["blobs"] == sum(c.blobs or 0 for c in settled)
    assert totals["fill"] == pytest.approx(sum(c.felts or 0 for c in settled) / (totals["blobs"] * 4096))
    series = summary.series
    assert [p["index"] for p in series] == [1, 2, 4]
    assert series[-1]["cumulative_fee_wei"] == totals["fee_wei"]
    assert series[-1]["cumulative_blocks"] == 12
    assert series[1]["cumulative_fee_per_block_wei"] == (series[0]["fee_wei"] + series[1]["fee_wei"]) // 10
    assert summarize([]).to_json()["fee_wei"] is None


def test_since_is_a_batch_index_or_an_iso_time() -> None:
    assert parse_since("12").index == 12
    assert parse_since("2024-01-02T03:04:05Z").time == 1704164645.0
    assert parse_since("2024-01-02T03:04:05").time == 1704164645.0  # UTC when it does not say
    assert parse_since("2024-01-02T04:04:05+01:00").time == 1704164645.0
    assert parse_since(None).index is None and parse_since(None).time is None
    with pytest.raises(InvalidInput, match="batch index or an ISO 8601 time"):
        parse_since("yesterday")


# -- the fee split, from the settlement result onto the job's attempts --------------------------------


def test_the_mined_attempt_carries_the_receipts_split_and_the_replaced_one_does_not() -> None:
    fees = split(50_000, 9, GAS_PER_BLOB, 2)
    result = SettlementResult(
        tx_hash="0xbb",
        nonce=7,
        attempts=[
            SettlementAttempt(attempt_no=1, tx_hash="0xaa", nonce=7, gas_multiplier=1.1, status="Replaced"),
            SettlementAttempt(attempt_no=2, tx_hash="0xbb", nonce=7, gas_multiplier=2.2, status="Finalized"),
        ],
        fee_paid_wei=fees.fee_wei,
        fee_split=fees,
    )
    replaced, final = settlement_attempts_json(result)
    assert "gas_used" not in replaced and "fee_paid_wei" not in replaced
    assert final["fee_paid_wei"] == str(fees.fee_wei)
    assert FeeSplit.from_attempt(final) == fees
    # Without a split (an older record, the devnet ledger) the entry is as before.
    before = settlement_attempts_json(dataclasses.replace(result, fee_split=None))
    assert set(before[1]) == {"attempt_no", "tx_hash", "nonce", "gas_multiplier", "status", "error", "fee_paid_wei"}


# -- the counters -----------------------------------------------------------------------------------


async def test_the_counters_add_the_fees_the_blob_gas_and_the_bytes_written(tmp_path: Path) -> None:
    from madara_orchestrator.backends.memory import MemoryObjectStore

    metrics = Metrics()
    metrics.settlement_tx_finalized(gas_used=1000, gas_price_wei=3, blob_gas_used=GAS_PER_BLOB, blob_gas_price_wei=2)
    metrics.settlement_tx_finalized(gas_used=500, gas_price_wei=4, blob_gas_used=None, blob_gas_price_wei=None)
    objects = CountedObjects(MemoryObjectStore(), metrics)
    await objects.put("a/b.json", b"x" * 300)
    await objects.put("c.txt", b"y" * 45)
    assert await objects.size("a/b.json") == 300 and await objects.size("missing") is None

    def value(name: str) -> float:
        return sum(s.value for s in metrics.collect(name) if s.name.endswith("_total"))

    assert value("orchestrator_settlement_execution_fee_wei") == 3000 + 2000
    assert value("orchestrator_settlement_blob_fee_wei") == 2 * GAS_PER_BLOB
    assert value("orchestrator_settlement_blob_gas") == GAS_PER_BLOB
    assert value("orchestrator_storage_bytes_written") == 345


# -- read from the stores: the API and the CLI ---------------------------------------------------------


@dataclass
class Api:
    stack: EmbeddedStack
    client: httpx.AsyncClient
    data_dir: Path


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    stack = await build_embedded_stack(devnet_settings(tmp_path / "data", "http://127.0.0.1:9", port=0))
    app = create_app(stack.runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        yield Api(stack, client, tmp_path / "data")
    await stack.close()


async def settled_batch(api: Api, index: int, start: int, end: int, fees: FeeSplit | None, *, done: bool) -> None:
    store = api.stack.store
    await store.insert_aggregator_batch(
        AggregatorBatch(
            index=index,
            start_block=start,
            end_block=end,
            status=AggregatorBatchStatus.COMPLETED if done else AggregatorBatchStatus.CLOSED,
            created_at=NOW + index,
            updated_at=NOW + index,
            blob_len=5000 * index,
        )
    )
    await store.insert_snos_batch(
        SnosBatch(
            index=index,
            start_block=start,
            end_block=end,
            status=SnosBatchStatus.COMPLETED,
            created_at=NOW,
            updated_at=NOW,
            aggregator_batch_index=index,
        )
    )
    objects = api.stack.runtime.storage.objects
    await objects.put(aggregator_key(index, AggregatorFile.PROGRAM_OUTPUT), b"1" * (10 * index))
    await objects.put(snos_key(index, SnosFile.CAIRO_PIE), b"2" * 1000)
    await objects.put(f"blob/batch/{index}/1.txt", b"3" * 7)
    attempts = [{"attempt_no": 1, "tx_hash": "0x1", "nonce": index, "status": "Replaced"}, mined("0x2", fees, fee=5)]
    meta = StateUpdateMetadata(context=SettlementContext(type="Batch", to_settle=index), tx_attempts=attempts)
    job = Job.new(JobType.STATE_TRANSITION, index, meta, now=NOW, orchestrator_version="t")
    status = JobStatus.COMPLETED if done else JobStatus.PENDING_VERIFICATION
    job = dataclasses.replace(job, status=status).with_common(process_completed_at=int(NOW + index + 60))
    assert await store.create_job(job)


async def test_the_api_and_the_cli_show_the_same_ledger(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = split(80_000, 5, GAS_PER_BLOB, 3), split(90_000, 6, 2 * GAS_PER_BLOB, 4)
    await settled_batch(api, 1, 0, 3, first, done=True)
    await settled_batch(api, 2, 4, 9, second, done=True)
    await settled_batch(api, 3, 10, 10, None, done=False)

    reply = await api.client.get("/batches/aggregator/2")
    assert reply.status_code == 200, reply.text
    body = reply.json()["data"]
    assert body["index"] == 2 and body["blob_len"] == 10_000
    cost = body["cost"]
    assert cost["execution_fee_wei"] == second.execution_fee_wei and cost["blob_fee_wei"] == second.blob_fee_wei
    assert cost["fee_wei"] == second.fee_wei and cost["blobs"] == 2 and cost["replacements"] == 1
    assert cost["seconds_to_settle"] == 60 and cost["bytes_stored"] == 20 + 1000 + 7
    assert (await api.client.get("/batches/aggregator/99")).status_code == 404
    assert (await api.client.get("/batches/aggregator/x")).status_code == 400

    ledger = (await api.client.get("/cost")).json()["data"]
    assert [b["index"] for b in ledger["batches"]] == [1, 2, 3]
    assert ledger["totals"]["fee_wei"] == first.fee_wei + second.fee_wei
    assert ledger["totals"]["settled"] == 2 and ledger["unit"] == "ETH"
    assert [p["cumulative_fee_wei"] for p in ledger["series"]] == [first.fee_wei, first.fee_wei + second.fee_wei]
    since = (await api.client.get("/cost", params={"since": "2"})).json()["data"]
    assert [b["index"] for b in since["batches"]] == [2, 3]
    # Batch 1 settled at NOW+61, batch 2 at NOW+62; batch 3 is not settled and was opened at NOW+3.
    later = (await api.client.get("/cost", params={"since": "2023-11-14T22:14:22Z"})).json()["data"]  # NOW+62
    assert [b["index"] for b in later["batches"]] == [2]
    assert (await api.client.get("/cost", params={"since": "soon"})).status_code == 400
    assert (await api.client.get("/cost", params={"limit": "0"})).status_code == 400

    # The command runs its own event loop, as from a shell: in a thread here.
    assert await asyncio.to_thread(main, ["cost", "--data-dir", str(api.data_dir), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["totals"] == ledger["totals"] and printed["batches"] == ledger["batches"]
    assert await asyncio.to_thread(main, ["cost", "--data-dir", str(api.data_dir), "--since", "2"]) == 0
    table = capsys.readouterr().out
    assert f"fee: {second.fee_wei} wei" in table and "(not settled)" in table
    assert str(second.blob_fee_wei) in table and str(first.fee_wei) not in table


def test_the_cli_refuses_a_missing_database_and_creates_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cost", "--data-dir", str(tmp_path / "nothing")]) == 2
    assert "no orchestrator database" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()


async def test_an_l3_ledger_has_a_line_per_snos_batch_with_its_fee_and_no_blobs() -> None:
    from madara_orchestrator.backends.memory import MemoryObjectStore, MemoryStore
    from madara_orchestrator.engine.cost import CostLedger

    store, objects = MemoryStore(clock=lambda: NOW), MemoryObjectStore()
    for index, (start, end) in enumerate(((0, 1), (2, 4)), start=1):
        await store.insert_snos_batch(
            SnosBatch(
                index=index,
                start_block=start,
                end_block=end,
                status=SnosBatchStatus.COMPLETED,
                created_at=NOW + index,
                updated_at=NOW,
            )
        )
        await objects.put(snos_key(index, SnosFile.PROOF), b"p" * (100 * index))
        attempts = [mined(f"0x{index}", None, fee=3000 * index)]  # Starknet: a total fee in fri, no split
        meta = StateUpdateMetadata(context=SettlementContext(type="Batch", to_settle=index), tx_attempts=attempts)
        job = Job.new(JobType.STATE_TRANSITION, index, meta, now=NOW, orchestrator_version="t")
        job = dataclasses.replace(job, status=JobStatus.COMPLETED).with_common(process_completed_at=int(NOW + 30))
        assert await store.create_job(job)

    lines = await CostLedger(store, objects, settles_snos=True).lines()
    assert [(c.index, c.blocks, c.fee_wei, c.fee_per_block_wei) for c in lines] == [
        (1, 2, 3000, 1500),
        (2, 3, 6000, 2000),
    ]
    assert all(c.felts is None and c.blobs is None and c.fill is None and c.execution_fee_wei is None for c in lines)
    assert [c.bytes_stored for c in lines] == [100, 200]
    totals = summarize(lines).to_json()
    assert totals["fee_wei"] == 9000 and totals["fee_per_block_wei"] == 1800 and totals["blobs"] is None
