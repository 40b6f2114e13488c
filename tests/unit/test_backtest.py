"""The batching backtest (engine/backtest.py, cli/backtest.py) over devnet chains served over HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from madara_orchestrator.backends.memory import MemoryObjectStore, MemoryStore
from madara_orchestrator.cli.backtest import BACKTEST_OPTIONS, NOT_BATCHING
from madara_orchestrator.cli.main import main
from madara_orchestrator.cli.settings import RUN_OPTIONS
from madara_orchestrator.cli.settings.proving import BatchingSettings
from madara_orchestrator.devnet.sequencer import L1_BLOCK_EVERY, DevnetChain, DevnetSequencer
from madara_orchestrator.domain.batching import BatchLimits
from madara_orchestrator.domain.chain import FELTS_PER_BLOB
from madara_orchestrator.engine.backtest import (
    GAS_PER_BLOB,
    RANGE_END,
    BacktestBatch,
    BacktestResult,
    Fees,
    L1Prices,
    Scratch,
    backtest,
    recorded_l1_prices,
    settlement_fees,
    unpriced,
)
from madara_orchestrator.server.background import free_port
from madara_orchestrator.starknet.feeder import FeederGatewayClient
from madara_orchestrator.starknet.rpc import StarknetRpcClient
from tests.helpers.batching import make_chain, make_rig, served

BIG_AGE = 10**6
"""An age no test batch reaches (the rig batches on the wall clock, the backtest on block timestamps)."""


async def run_backtest(
    url: str, limits: BatchLimits, first: int, last: int, *, scratch: Scratch | None = None
) -> BacktestResult:
    client = StarknetRpcClient(url, attempts=2, retry_pause_s=0.05)
    feeder = FeederGatewayClient(url, attempts=2, retry_pause_s=0.05)
    memory = MemoryStore()
    try:
        return await backtest(
            node=client,
            feeder=feeder,
            rpc=client,
            scratch=scratch or Scratch(db=memory, objects=MemoryObjectStore(), locks=memory),
            limits=limits,
            first=first,
            last=last,
        )
    finally:
        await client.aclose()
        await feeder.aclose()


def tiles(result: BacktestResult, first: int, last: int) -> None:
    """The batches cover ``first..last`` in order, without gap or overlap."""
    assert result.batches, "no batch"
    assert result.batches[0].start_block == first
    assert result.batches[-1].end_block == last
    for before, after in zip(result.batches, result.batches[1:], strict=False):
        assert after.start_block == before.end_block + 1


async def test_backtest_finds_the_batches_a_stored_batching_makes(tmp_path: Path) -> None:
    """The same chain batched as ``run`` does (SQLite, files on disk, ten blocks a run, wall clock) and by the
    backtest (memory, a block a run, block timestamps): the same ranges, felts and blob files."""
    chain = make_chain([10, 6, 10, 1, 0, 10, 10, 8, 10, 10, 3, 10, 10, 10, 0, 10, 10])
    # One blob less a large buffer (196 felts): a few blocks of this chain each.
    limits = BatchLimits(
        max_batch_time_s=BIG_AGE, max_num_blobs=1, blob_size_buffer=3900, max_batch_size=6, max_blocks_per_snos_batch=3
    )
    async with served(DevnetSequencer(chain).app) as url:
        rig = await make_rig(tmp_path, url, limits)
        try:
            await rig.run_all()
            stored = await rig.store.list_aggregator_batches()
            files = [len(await rig.objects.list(b.blob_path + "/")) for b in stored]
            await rig.batcher.close_open_batches()  # the tail, as the backtest closes it at --to
            stored = await rig.store.list_aggregator_batches()
            files[-1] = len(await rig.objects.list(stored[-1].blob_path + "/"))
        finally:
            await rig.close()
        result = await run_backtest(url, limits, 0, chain.head)
    tiles(result, 0, chain.head)
    assert [(b.start_block, b.end_block, b.felts) for b in result.batches] == [
        (b.start_block, b.end_block, b.blob_len) for b in stored
    ]
    assert [b.blobs for b in result.batches] == files
    assert [b.closed_by for b in result.batches][-1] == RANGE_END
    reasons = {b.closed_by for b in result.batches[:-1]}
    assert reasons == {"max_blocks", "blob_size"}, "the chain is made to close batches by both rules"
    for b in result.batches:
        assert b.blobs == math.ceil(b.felts / FELTS_PER_BLOB)
        assert b.num_blocks <= limits.max_batch_size
        if b.num_blocks > 1:
            assert b.felts <= limits.max_blob_size
        if b.closed_by == "blob_size":
            assert int(b.detail.split()[0]) > limits.max_blob_size, b.detail


async def test_backtest_closes_by_age_on_the_blocks_timestamps() -> None:
    chain = make_chain([3] * 10)
    age = 4
    limits = BatchLimits(max_batch_time_s=age)
    async with served(DevnetSequencer(chain).app) as url:
        result = await run_backtest(url, limits, 2, chain.head)
    tiles(result, 2, chain.head)
    stamps = {b.number: b.timestamp for b in chain.blocks}
    for batch in result.batches:
        assert (batch.first_timestamp, batch.last_timestamp) == (stamps[batch.start_block], stamps[batch.end_block])
        assert batch.last_timestamp - batch.first_timestamp < age
        if batch.closed_by != RANGE_END:
            assert batch.closed_by == "max_age"
            assert stamps[batch.end_block + 1] - batch.first_timestamp >= age
    assert len(result.batches) > 2


async def test_backtest_stops_before_a_block_of_an_unknown_version_and_keeps_nothing() -> None:
    chain = make_chain([10] * 8)
    sequencer = DevnetSequencer(chain)
    sequencer.announce_version("0.99.0", from_block=5)
    memory = MemoryStore()
    objects = MemoryObjectStore()
    async with served(sequencer.app) as url:
        result = await run_backtest(
            url,
            BatchLimits(max_batch_time_s=BIG_AGE),
            0,
            chain.head,
            scratch=Scratch(db=memory, objects=objects, locks=memory),
        )
    assert result.last_block == 4
    assert result.stopped is not None and "block 5" in result.stopped and "0.99.0" in result.stopped
    assert [(b.start_block, b.end_block, b.closed_by) for b in result.batches] == [(0, 4, "unknown_version")]
    assert await objects.list("") == [], "each batch's files are counted, then dropped"


def test_fees_are_one_blob_transaction_per_batch() -> None:
    result_batches = [
        dataclasses.replace(_batch(), index=1, blobs=3),
        dataclasses.replace(_batch(), index=2, blobs=1),
    ]
    fees = Fees(base_fee_wei=7, blob_base_fee_wei=3, priority_fee_wei=2, settlement_gas=1000)
    totals = settlement_fees(result_batches, fees)
    assert totals is not None
    assert totals.execution_wei == sum(fees.settlement_gas * (7 + 2) for _ in result_batches)
    assert totals.blob_wei == (3 + 1) * GAS_PER_BLOB * 3
    each = [fees.settlement(b) for b in result_batches]
    assert totals.total_wei == sum(f.total_wei for f in each if f is not None)


def test_each_batch_is_priced_at_its_last_block_s_recorded_prices_unless_a_price_is_given() -> None:
    first = dataclasses.replace(_batch(), blobs=2, l1_prices=L1Prices(base_fee_wei=10, blob_base_fee_wei=4))
    second = dataclasses.replace(_batch(), blobs=1, l1_prices=L1Prices(base_fee_wei=30, blob_base_fee_wei=9))
    recorded = Fees(priority_fee_wei=1, settlement_gas=100)
    totals = settlement_fees([first, second], recorded)
    assert totals is not None
    assert totals.execution_wei == 100 * (10 + 1) + 100 * (30 + 1)
    assert totals.blob_wei == 2 * GAS_PER_BLOB * 4 + 1 * GAS_PER_BLOB * 9
    # A price given replaces the recorded one for every batch; the other stays each batch's own.
    base_given = Fees(base_fee_wei=50, priority_fee_wei=1, settlement_gas=100)
    assert base_given.prices(first) == L1Prices(base_fee_wei=50, blob_base_fee_wei=4)
    assert base_given.prices(second) == L1Prices(base_fee_wei=50, blob_base_fee_wei=9)
    both = Fees(base_fee_wei=50, blob_base_fee_wei=2, settlement_gas=100)
    totals = settlement_fees([first, second], both)
    assert totals is not None and totals.total_wei == 2 * 100 * 50 + 3 * GAS_PER_BLOB * 2


def test_a_batch_whose_last_header_records_no_prices_is_not_priced_unless_both_are_given() -> None:
    priced = dataclasses.replace(_batch(), l1_prices=L1Prices(base_fee_wei=10, blob_base_fee_wei=4))
    bare = dataclasses.replace(_batch(), index=2, l1_prices=None)
    assert unpriced([priced, bare], Fees(settlement_gas=1)) == [bare]
    assert settlement_fees([priced, bare], Fees(settlement_gas=1)) is None
    assert settlement_fees([priced, bare], Fees(base_fee_wei=3, settlement_gas=1)) is None, "no blob fee to use"
    assert unpriced([priced, bare], Fees(base_fee_wei=3, blob_base_fee_wei=0, settlement_gas=1)) == []


@pytest.mark.parametrize(
    ("header", "prices"),
    [
        (
            {"l1_gas_price": {"price_in_wei": "0x2540be400"}, "l1_data_gas_price": {"price_in_wei": "0x1"}},
            L1Prices(base_fee_wei=10**10, blob_base_fee_wei=1),
        ),
        ({"l1_gas_price": {"price_in_wei": "0x5"}}, None),
        ({"l1_gas_price": {"price_in_fri": "0x5"}, "l1_data_gas_price": {"price_in_fri": "0x5"}}, None),
        ({"l1_gas_price": {"price_in_wei": "12"}, "l1_data_gas_price": {"price_in_wei": "0x1"}}, None),
        ({"l1_gas_price": {"price_in_wei": "0xzz"}, "l1_data_gas_price": {"price_in_wei": "0x1"}}, None),
        ({"l1_gas_price": "0x5", "l1_data_gas_price": {"price_in_wei": "0x1"}}, None),
        ({}, None),
    ],
)
def test_recorded_prices_are_the_headers_wei_felts_or_none(header: dict[str, Any], prices: L1Prices | None) -> None:
    assert recorded_l1_prices(header) == prices


def _batch() -> BacktestBatch:
    return BacktestBatch(
        index=1,
        start_block=0,
        end_block=0,
        felts=1,
        blobs=1,
        closed_by="fits",
        reason="",
        detail="",
        first_timestamp=0,
        last_timestamp=0,
    )


async def test_the_backtest_keeps_each_batch_s_last_header_prices() -> None:
    chain = make_chain([5] * (L1_BLOCK_EVERY + 2))  # the prices move once, at block 12
    # Batches 8-10, 11-13 (its first and last blocks' prices differ) and 14.
    first = L1_BLOCK_EVERY - 4
    limits = BatchLimits(max_batch_time_s=BIG_AGE, max_batch_size=3)
    async with served(DevnetSequencer(chain).app) as url:
        result = await run_backtest(url, limits, first, chain.head)
    tiles(result, first, chain.head)
    by_number = {b.number: b for b in chain.blocks}
    assert [b.l1_prices for b in result.batches] == [
        L1Prices(
            base_fee_wei=by_number[b.end_block].l1_gas_price_wei,
            blob_base_fee_wei=by_number[b.end_block].l1_data_gas_price_wei,
        )
        for b in result.batches
    ]
    assert len({b.l1_prices for b in result.batches}) > 1, "the chain's prices move between batches"


# --------------------------------------------------------------------------------------------------
# The command


async def command(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, ["backtest", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_backtest_takes_every_batching_flag_of_run_and_its_help_says_what_it_reads_and_writes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["backtest", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    batching = [o for o in RUN_OPTIONS if o.group == BatchingSettings.GROUP and o.name not in NOT_BATCHING]
    assert batching and set(batching) <= set(BACKTEST_OPTIONS), "run's own declarations, not copies"
    for option in batching:
        assert option.flag in text and f"MADARA_ORCHESTRATOR_{option.env}" in text, option.flag
    assert "It READS: the node's JSON-RPC" in text and "get_block_bouncer_weights" in text
    assert "It WRITES NOTHING: no database, no storage, no files" in text


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--rpc-url", "http://127.0.0.1:1", "--max-num-blobs", "0"], "--max-num-blobs"),
        (["--rpc-url", "http://127.0.0.1:1", "--max-num-blobs", "7"], "at most 6"),
        (["--rpc-url", "http://127.0.0.1:1", "--from", "9", "--to", "3"], "--to 3 is before --from 9"),
        (["--rpc-url", "not a url"], "--rpc-url must be an http:// or https:// URL"),
        ([], "--rpc-url is required"),
        (["--rpc-url", "http://127.0.0.1:1", "--max-batch-size", "x"], "expected a whole number"),
        (["--rpc-url", "http://127.0.0.1:1", "--from", "x"], "invalid int value"),
    ],
)
async def test_bad_flags_exit_2_on_one_line(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MADARA_ORCHESTRATOR_MADARA_RPC_URL", raising=False)
    try:
        code, out, err = await command(argv, capsys)
    except SystemExit as exc:  # argparse's own errors
        code, (out, err) = int(exc.code or 0), capsys.readouterr()
    assert code == 2
    assert out == ""
    assert says in err and len(err.strip().splitlines()) == 1, err


async def test_an_unreachable_node_exits_1_on_one_line_saying_what_to_do(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = await command(["--rpc-url", f"http://127.0.0.1:{free_port()}/key-in-path"], capsys)
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "cannot reach the node at http://127.0.0.1:" in err and "check --rpc-url" in err
    assert "key-in-path" not in err and "Traceback" not in err


async def test_the_command_prints_the_batches_as_json_reads_run_s_variables_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    chain = make_chain([5] * 9)
    async with served(DevnetSequencer(chain).app) as url:
        monkeypatch.setenv("MADARA_ORCHESTRATOR_MADARA_RPC_URL", url)
        monkeypatch.setenv("MADARA_ORCHESTRATOR_MAX_BATCH_SIZE", "4")
        fees = ["--blob-base-fee-wei", "5", "--base-fee-wei", "11", "--settlement-gas", "1000"]
        code, out, err = await command(["--from", "1", "--to", "99", "--json", *fees], capsys)
        assert code == 0, err
        report = json.loads(out)
        code, table, err = await command(["--from", "1", "--to", "99", *fees], capsys)
        assert code == 0, err
    assert not await asyncio.to_thread(lambda: list(tmp_path.iterdir())), "nothing written"
    assert (report["from"], report["to"]) == (1, chain.head)
    assert "past the node's newest block" in report["note"]
    ranges = [(b["start_block"], b["end_block"]) for b in report["batches"]]
    assert ranges == [(1, 4), (5, 8), (9, 9)], "batches of --max-batch-size from the variable"
    assert report["totals"]["settlements"] == 3
    assert report["totals"]["blobs"] == sum(b["blobs"] for b in report["batches"])
    blobs = report["totals"]["blobs"]
    assert report["fees"]["total_wei"] == 3 * 1000 * 11 + blobs * GAS_PER_BLOB * 5
    assert report["fees"]["per_block_wei"] == report["fees"]["total_wei"] // chain.head
    assert (report["fees"]["base_fee"], report["fees"]["blob_base_fee"]) == ("given", "given")
    assert report["written"] == "nothing"
    lines = table.splitlines()
    assert lines[0] == f"backtest of blocks 1-{chain.head} from {url} (nothing written)"
    assert sum(1 for line in lines if "max_blocks: the batch has its maximum number of blocks" in line) == 2
    assert any(line.startswith("totals: 3 settlement(s)") for line in lines)
    assert any(line.startswith("fee per block:") for line in lines)
    assert any(
        line.startswith("fees at the L1 prices given: base fee 11 wei + priority 0 wei, blob base fee 5 wei")
        for line in lines
    ), lines


async def test_without_a_feeder_gateway_weights_count_as_zero_and_the_output_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    chain = make_chain([5] * 3)
    async with served(DevnetSequencer(chain).app) as url:
        argv = ["--rpc-url", url, "--madara-feeder-gateway-url", f"{url}/none"]
        code, out, err = await command(argv, capsys)
    assert code == 0, err
    assert any(line.startswith("note: bouncer weights counted as zero") for line in out.splitlines()), out


def at_recorded_prices(chain: DevnetChain, batches: list[dict[str, Any]], *, gas: int) -> int:
    """The fee of ``batches`` at the prices the chain's blocks record (each batch at its last block's)."""
    total = 0
    for b in batches:
        block = chain.blocks[b["end_block"]]
        total += gas * block.l1_gas_price_wei + b["blobs"] * GAS_PER_BLOB * block.l1_data_gas_price_wei
    return total


async def test_without_fee_flags_the_command_prices_each_batch_at_its_recorded_prices_and_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    chain = make_chain([5] * (L1_BLOCK_EVERY + 2))  # the prices move once, at block 12: within batch 11-14
    argv = ["--from", "1", "--max-batch-size", "5", "--settlement-gas", "1000"]
    async with served(DevnetSequencer(chain).app) as url:
        code, out, err = await command(["--rpc-url", url, "--json", *argv], capsys)
        assert code == 0, err
        report = json.loads(out)
        code, table, err = await command(["--rpc-url", url, *argv], capsys)
        assert code == 0, err
        code, out, err = await command(["--rpc-url", url, "--json", "--base-fee-wei", "7", *argv], capsys)
        assert code == 0, err
        overridden = json.loads(out)
    batches = report["batches"]
    assert len({(b["priced_at"]["base_fee_wei"], b["priced_at"]["blob_base_fee_wei"]) for b in batches}) > 1
    fees = report["fees"]
    assert (fees["base_fee"], fees["blob_base_fee"]) == ("recorded in the blocks' headers",) * 2
    assert fees["total_wei"] == at_recorded_prices(chain, batches, gas=1000)
    assert fees["total_wei"] == sum(b["fee_wei"] for b in batches), "the totals sum the batches"
    assert fees["per_block_wei"] == fees["total_wei"] // chain.head
    assert fees["unpriced"] is None
    lines = table.splitlines()
    [priced] = [line for line in lines if line.startswith("fees at")]
    assert "the L1 prices recorded in the blocks' headers" in priced and "given" not in priced
    assert f"{fees['total_wei']:,} wei" in priced
    assert any(line.startswith("fee per block:") for line in lines)
    # --base-fee-wei replaces every batch's recorded base fee; the blob base fee stays each one's own.
    assert overridden["fees"]["base_fee"] == "given"
    assert overridden["fees"]["blob_base_fee"] == "recorded in the blocks' headers"
    assert [b["priced_at"]["base_fee_wei"] for b in overridden["batches"]] == [7] * len(batches)
    blob_wei = sum(b["blobs"] * GAS_PER_BLOB * chain.blocks[b["end_block"]].l1_data_gas_price_wei for b in batches)
    assert overridden["fees"]["total_wei"] == len(batches) * 1000 * 7 + blob_wei


class PricelessSequencer(DevnetSequencer):
    """A node whose block headers record no L1 prices (before JSON-RPC v0.7)."""

    def call(self, method: str, params: Any) -> Any:
        result = super().call(method, params)
        if method == "starknet_getBlockWithTxHashes":
            result = {k: v for k, v in result.items() if k not in ("l1_gas_price", "l1_data_gas_price")}
        return result


async def test_headers_without_prices_give_no_fee_figures_and_say_so_once(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    chain = make_chain([5] * 7)
    argv = ["--from", "2", "--max-batch-size", "2"]
    async with served(PricelessSequencer(chain).app) as url:
        code, table, err = await command(["--rpc-url", url, *argv], capsys)
        assert code == 0, err
        code, out, err = await command(["--rpc-url", url, "--json", *argv], capsys)
        assert code == 0, err
        report = json.loads(out)
        given = ["--base-fee-wei", "11", "--blob-base-fee-wei", "5", "--settlement-gas", "1000"]
        code, out, err = await command(["--rpc-url", url, "--json", *argv, *given], capsys)
        assert code == 0, err
        priced = json.loads(out)
    lines = table.splitlines()
    said = [line for line in lines if "records no L1 prices" in line]
    assert said == [
        "fees: block 3's header (and those of 2 other batch(es)) records no L1 prices in wei "
        "(l1_gas_price.price_in_wei, l1_data_gas_price.price_in_wei): no fee figures; give --base-fee-wei and "
        "--blob-base-fee-wei to price the settlements"
    ]
    assert not any("wei" in line for line in lines if line not in said), "no fee figure anywhere else"
    assert not any("ETH" in line for line in lines)
    assert report["fees"]["total_wei"] is None and report["fees"]["per_block_wei"] is None
    assert report["fees"]["unpriced"] == said[0].removeprefix("fees: ")
    assert all(b["fee_wei"] is None and b["recorded_l1_prices"] is None for b in report["batches"])
    assert len(report["batches"]) == 3
    # Both prices given: priced at them, as before.
    assert (priced["fees"]["base_fee"], priced["fees"]["blob_base_fee"]) == ("given", "given")
    blobs = priced["totals"]["blobs"]
    assert priced["fees"]["total_wei"] == 3 * 1000 * 11 + blobs * GAS_PER_BLOB * 5
    assert priced["fees"]["unpriced"] is None
