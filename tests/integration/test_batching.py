"""The Batcher against real parts: a devnet sequencer over HTTP (JSON-RPC and the feeder gateway), a
SQLite file, files on disk. Every test ends with ``check_batches``, which recomputes the batches' state
diffs and blobs from the chain itself (tests/helpers/batching.py)."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from madara_orchestrator.backends.sqlite import SqliteStore
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.devnet.mock_atlantic import MockAtlanticConfig, MockAtlanticServer
from madara_orchestrator.devnet.sequencer import STARKNET_VERSION, DevnetChain, DevnetSequencer
from madara_orchestrator.domain.batches import (
    DEFAULT_BOUNCER_WEIGHT_LIMITS,
    AggregatorBatch,
    AggregatorBatchStatus,
    SnosBatchStatus,
)
from madara_orchestrator.domain.batching import BatchLimits
from madara_orchestrator.domain.errors import BackendUnavailable, Conflict, InvalidInput
from madara_orchestrator.engine.batching import AGGREGATOR_LOCK, SNOS_LOCK
from madara_orchestrator.engine.buckets import PREFIX as BUCKET_MARKS
from madara_orchestrator.engine.buckets import OrphanedBuckets
from madara_orchestrator.provers.atlantic import AtlanticClient, AtlanticConfig, AtlanticNetwork
from madara_orchestrator.provers.http import RetryPolicy
from madara_orchestrator.starknet.aliases import compress_state_update
from madara_orchestrator.starknet.blob import felts_to_blobs
from madara_orchestrator.starknet.rpc_cache import CachingBatchRpc
from madara_orchestrator.starknet.squash import squash_state_updates
from madara_orchestrator.starknet.state_update import parse_state_update, parse_state_update_json, state_update_to_json
from tests.helpers.batching import (
    BatchingRig,
    ChainRpc,
    check_batches,
    describe_differences,
    make_chain,
    make_rig,
    served,
    snapshot,
)
from tests.helpers.engine import FakeClock

T0 = 1_700_000_000.0
NEW_VERSION = "0.14.1"

# 60 blocks after genesis, from 1 to 15 transactions each (seeded), and limits small enough that every
# aggregator rule the devnet can provoke closes some batch (its blocks have no L1 gas or messages, so
# the aggregator weight limit cannot be reached).
_counts = random.Random(1)
MIXED_COUNTS = [_counts.choice([1, 2, 3, 4, 6, 10, 15]) for _ in range(60)]
SMALL = BatchLimits(
    max_batch_time_s=3600,
    max_batch_size=7,
    max_blocks_per_snos_batch=3,
    max_snos_batches_per_aggregator_batch=3,
    max_num_blobs=1,
    blob_size_buffer=3910,
    max_aggregator_input_size=1300,
    bouncer_weight_limits=dataclasses.replace(DEFAULT_BOUNCER_WEIGHT_LIMITS, n_txs=20),
)
ROOMY = BatchLimits(max_batch_time_s=3600, max_batch_size=100, max_blocks_per_snos_batch=10)


def mixed_chain() -> DevnetChain:
    return make_chain(MIXED_COUNTS)


async def batch_fresh(tmp: Path, name: str, chain: DevnetChain, limits: BatchLimits, **options: Any) -> dict[str, Any]:
    """An uninterrupted batching of the whole chain in a fresh directory (the reference to compare with)."""
    async with served(DevnetSequencer(chain).app) as url:
        rig = await make_rig(tmp / name, url, limits, clock=FakeClock(T0), **options)
        try:
            await rig.run_all()
            await check_batches(rig.store, rig.objects, chain, limits, through=chain.head)
            return await snapshot(rig.store, rig.objects)
        finally:
            await rig.close()


async def assert_same_batches(rig: BatchingRig, expected: dict[str, Any]) -> None:
    got = await snapshot(rig.store, rig.objects)
    assert got == expected, describe_differences(got, expected)


# --------------------------------------------------------------------------------------------------
# Rules


async def test_sixty_blocks_close_batches_by_every_rule_and_match_the_chain(tmp_path: Path) -> None:
    chain = mixed_chain()
    async with served(DevnetSequencer(chain).app) as url:
        rig = await make_rig(tmp_path, url, SMALL, clock=FakeClock(T0))
        try:
            await rig.run_all()
            aggs, snos = await check_batches(rig.store, rig.objects, chain, SMALL, through=chain.head)
            closed = rig.batcher.stats.closed
            for rule in ("max_blocks", "blob_size", "input_size", "max_snos_batches"):
                assert closed.get(f"aggregator:{rule}", 0) > 0, f"no aggregator batch closed by {rule}: {closed}"
            for rule in ("max_blocks", "weight_limit", "aggregator_batch"):
                assert closed.get(f"snos:{rule}", 0) > 0, f"no SNOS batch closed by {rule}: {closed}"
            # The metric tells the same story as the stats.
            for kind in ("aggregator", "snos"):
                by_reason = {k.split(":")[1]: v for k, v in closed.items() if k.startswith(kind + ":")}
                assert rig.closed_by(kind) == by_reason
            assert sum(v for k, v in closed.items() if k.startswith("aggregator:")) == sum(a.is_closed for a in aggs)
            assert sum(v for k, v in closed.items() if k.startswith("snos:")) == sum(s.is_closed for s in snos)
            assert rig.alerts.sent == []
            assert rig.batcher.stats.rebuilds == 0
            assert rig.batcher.stats.blocks == chain.head + 1
        finally:
            await rig.close()


async def test_batching_block_by_block_gives_the_batches_of_batching_all_at_once(tmp_path: Path) -> None:
    expected = await batch_fresh(tmp_path, "at-once", mixed_chain(), SMALL, max_batch_processing_size=1000)
    chain = make_chain([])
    async with served(DevnetSequencer(chain).app) as url:
        rig = await make_rig(tmp_path / "one-by-one", url, SMALL, clock=FakeClock(T0))
        try:
            await rig.run_all()
            for count in MIXED_COUNTS:
                chain.tx_per_block = count
                chain.produce_block()
                assert await rig.batcher.run()
                assert not await rig.batcher.run()
            await check_batches(rig.store, rig.objects, chain, SMALL, through=chain.head)
            await assert_same_batches(rig, expected)
            # Squashing was incremental all along: nothing was rebuilt from the chain.
            assert rig.batcher.stats.rebuilds == 0
        finally:
            await rig.close()


class KeepsEverything(CachingBatchRpc):
    """The read cache without forgetting: every read kept (up to its bound)."""

    def forget_before(self, block: int) -> None:
        pass


async def test_the_read_cache_keeps_only_the_open_batch_s_reads_and_asks_the_node_no_more(tmp_path: Path) -> None:
    """Reads at a block below the open batch's pre-range block never come back: a batch opening forgets
    them. The batches are the same, and the node is asked exactly what a cache keeping everything asks."""
    chain = mixed_chain()
    async with served(DevnetSequencer(chain).app) as url:
        rig = await make_rig(tmp_path / "forgets", url, SMALL, clock=FakeClock(T0))
        keeping = await make_rig(tmp_path / "keeps", url, SMALL, clock=FakeClock(T0))
        try:
            keeping.batcher.rpc = kept = KeepsEverything(keeping.sequencer)
            await rig.run_all()
            await keeping.run_all()
            aggs, _ = await check_batches(rig.store, rig.objects, chain, SMALL, through=chain.head)
            assert await snapshot(rig.store, rig.objects) == await snapshot(keeping.store, keeping.objects)
            cache = rig.batcher.rpc
            assert isinstance(cache, CachingBatchRpc)
            assert cache.misses == kept.misses > 0
            assert cache.hits == kept.hits > 0
            pre_range = aggs[-1].start_block - 1
            assert len(aggs) > 5 and cache.read_blocks() and min(cache.read_blocks()) >= pre_range
            assert min(kept.read_blocks()) < aggs[1].start_block, "the cache keeping everything kept old reads"
            assert len(cache) < len(kept)
        finally:
            await keeping.close()
            await rig.close()


async def test_an_open_batch_past_its_age_closes_without_a_new_block(tmp_path: Path) -> None:
    limits = dataclasses.replace(ROOMY, max_batch_time_s=30)
    chain = make_chain([3] * 4)
    clock = FakeClock(T0)
    async with served(DevnetSequencer(chain).app) as url:
        rig = await make_rig(tmp_path, url, limits, clock=clock)
        try:
            await rig.run_all()
            (agg,) = await rig.store.list_aggregator_batches()
            assert agg.status == AggregatorBatchStatus.OPEN and agg.created_at == T0
            assert rig.batcher.next_expiry == T0 + 30
            clock.advance(29.5)
            assert not await rig.batcher.run()
            assert (await rig.store.list_aggregator_batches())[0].status == AggregatorBatchStatus.OPEN
            clock.advance(0.5)
            assert await rig.batcher.run()
            aggs, snos = await check_batches(rig.store, rig.objects, chain, limits, through=chain.head)
            assert [a.status for a in aggs] == [AggregatorBatchStatus.CLOSED]
            assert [s.status for s in snos] == [SnosBatchStatus.CLOSED]
            assert rig.batcher.stats.closed == {"aggregator:max_age": 1, "snos:aggregator_batch": 1}
            assert rig.batcher.next_expiry is None
            # The next block starts new batches, aged from now.
            chain.produce_block()
            clock.advance(5)
            assert await rig.batcher.run()
            assert rig.batcher.next_expiry == clock.now() + 30
            aggs, snos = await check_batches(rig.store, rig.objects, chain, limits, through=chain.head)
            assert [(a.start_block, a.end_block) for a in aggs] == [(0, 4), (5, 5)]
        finally:
            await rig.close()


async def test_l3_builds_snos_batches_only_and_closes_them_by_age(tmp_path: Path) -> None:
    limits = dataclasses.replace(ROOMY, max_batch_time_s=30, max_blocks_per_snos_batch=4)
    chain = make_chain([2] * 9)
    clock = FakeClock(T0)
    async with served(DevnetSequencer(chain).app) as url:
        rig = await make_rig(tmp_path, url, limits, clock=clock, aggregator_batches=False)
        try:
            await rig.run_all()
            _, snos = await check_batches(
                rig.store, rig.objects, chain, limits, aggregator_batches=False, through=chain.head
            )
            assert [(s.start_block, s.end_block, s.status) for s in snos] == [
                (0, 3, SnosBatchStatus.CLOSED),
                (4, 7, SnosBatchStatus.CLOSED),
                (8, 9, SnosBatchStatus.OPEN),
            ]
            assert await rig.objects.list("") == []
            clock.advance(30)
            assert await rig.batcher.run()
            _, snos = await check_batches(
                rig.store, rig.objects, chain, limits, aggregator_batches=False, through=chain.head
            )
            assert snos[-1].status == SnosBatchStatus.CLOSED
            assert rig.batcher.stats.closed == {"snos:max_blocks": 2, "snos:max_age": 1}
            # The L3 lease is the SNOS one.
            assert await rig.store.acquire(SNOS_LOCK, "someone-else", 60)
            assert not await rig.batcher.run()
        finally:
            await rig.close()


class VersionedSequencer(DevnetSequencer):
    """A devnet whose blocks from ``from_block`` on report another Starknet version."""

    def __init__(self, chain: DevnetChain, *, from_block: int, version: str) -> None:
        super().__init__(chain)
        self.from_block = from_block
        self.version = version

    def version_of(self, block: int) -> str:
        return self.version if block >= self.from_block else STARKNET_VERSION

    def call(self, method: str, params: Any) -> Any:
        result = super().call(method, params)
        if method == "starknet_getBlockWithTxHashes":
            result = {**result, "starknet_version": self.version_of(int(result["block_number"]))}
        return result


@pytest.mark.parametrize("aggregator_batches", [True, False], ids=["L2", "L3"])
async def test_a_starknet_version_change_closes_both_kinds_of_batch_at_that_block(
    tmp_path: Path, aggregator_batches: bool
) -> None:
    chain = make_chain([3] * 15)
    sequencer = VersionedSequencer(chain, from_block=8, version=NEW_VERSION)
    async with served(sequencer.app) as url:
        rig = await make_rig(tmp_path, url, ROOMY, clock=FakeClock(T0), aggregator_batches=aggregator_batches)
        try:
            await rig.run_all()
            aggs, snos = await check_batches(
                rig.store,
                rig.objects,
                chain,
                ROOMY,
                aggregator_batches=aggregator_batches,
                through=chain.head,
                version_of=sequencer.version_of,
            )
            assert [(s.start_block, s.end_block, s.starknet_version) for s in snos] == [
                (0, 7, STARKNET_VERSION),
                (8, 15, NEW_VERSION),
            ]
            if aggregator_batches:
                assert [(a.start_block, a.end_block, a.starknet_version) for a in aggs] == [
                    (0, 7, STARKNET_VERSION),
                    (8, 15, NEW_VERSION),
                ]
                assert rig.batcher.stats.closed == {"aggregator:starknet_version": 1, "snos:aggregator_batch": 1}
            else:
                assert rig.batcher.stats.closed == {"snos:starknet_version": 1}
        finally:
            await rig.close()


# 150 transactions in block 10: its compressed diff (~600 felts) is over 200 felts, and its input bound
# over 1000, where ten blocks of 3 transactions fit both.
BIG_BLOCK_COUNTS = [3] * 9 + [150] + [3] * 10
OVERSIZED_LIMITS = {
    "blob": dataclasses.replace(ROOMY, max_num_blobs=1, blob_size_buffer=4096 - 200),
    "input": dataclasses.replace(ROOMY, max_aggregator_input_size=1500),
}


@pytest.mark.parametrize("limit", sorted(OVERSIZED_LIMITS))
async def test_an_oversized_block_gets_its_own_closed_batch_and_an_alert(tmp_path: Path, limit: str) -> None:
    limits = OVERSIZED_LIMITS[limit]
    chain = make_chain(BIG_BLOCK_COUNTS)
    async with served(DevnetSequencer(chain).app) as url:
        rig = await make_rig(tmp_path, url, limits, clock=FakeClock(T0))
        try:
            await rig.run_all()
            aggs, snos = await check_batches(rig.store, rig.objects, chain, limits, through=chain.head)
            (alone,) = [a for a in aggs if a.start_block <= 10 <= a.end_block]
            assert (alone.start_block, alone.end_block, alone.status) == (10, 10, AggregatorBatchStatus.CLOSED)
            if limit == "blob":
                assert alone.blob_len > limits.max_blob_size
            else:
                assert alone.aggregator_input_size_upper_bound > limits.max_aggregator_input_size
            (snos_alone,) = [s for s in snos if s.aggregator_batch_index == alone.index]
            assert (snos_alone.start_block, snos_alone.end_block, snos_alone.status) == (10, 10, SnosBatchStatus.CLOSED)
            # Later blocks keep being batched, in the batches that follow.
            after = [a for a in aggs if a.index > alone.index]
            assert after and after[0].start_block == 11 and after[-1].end_block == chain.head
            assert len(rig.alerts.sent) == 1
            subject, message = rig.alerts.sent[0]
            assert "Block 10" in subject and f"batch {alone.index}" in message
        finally:
            await rig.close()


# --------------------------------------------------------------------------------------------------
# Restarts and partial writes


async def test_a_restarted_batcher_continues_where_the_first_stopped(tmp_path: Path) -> None:
    chain = mixed_chain()
    expected = await batch_fresh(tmp_path, "uninterrupted", chain, SMALL)
    async with served(DevnetSequencer(chain).app) as url:
        first = await make_rig(tmp_path / "shared", url, SMALL, clock=FakeClock(T0), owner="first")
        try:
            for _ in range(3):
                assert await first.batcher.run()
            latest = await first.store.latest_aggregator_batch()
            assert latest is not None and latest.status == AggregatorBatchStatus.OPEN
            assert latest.num_blocks > 1, "the restart should find a grown open batch"
        finally:
            await first.close()
        second = await make_rig(tmp_path / "shared", url, SMALL, clock=FakeClock(T0), owner="second")
        try:
            await second.run_all()
            assert second.batcher.stats.rebuilds == 1
            assert second.batcher.stats.blocks == chain.head - latest.end_block
            await check_batches(second.store, second.objects, chain, SMALL, through=chain.head)
            await assert_same_batches(second, expected)
        finally:
            await second.close()


async def write_files_for(
    rig: BatchingRig, chain: DevnetChain, batch: AggregatorBatch, end: int, extra_blobs: int
) -> None:
    """What a crashed writer may leave: the batch's files for ``start..end``, plus stray blob files."""
    rpc = ChainRpc(chain)
    updates = [
        parse_state_update(DevnetSequencer(chain).call("starknet_getStateUpdate", [{"block_number": b}]))
        for b in range(batch.start_block, end + 1)
    ]
    squashed = await squash_state_updates(
        updates, pre_range_block=batch.start_block - 1 if batch.start_block else None, rpc=rpc
    )
    compressed = await compress_state_update(
        squashed, starknet_version=batch.starknet_version, reference_block=end, rpc=rpc
    )
    await rig.objects.put(batch.squashed_state_updates_path, json.dumps(state_update_to_json(squashed)).encode())
    blobs = felts_to_blobs(compressed)
    blobs += [blobs[0]] * extra_blobs
    for n, blob in enumerate(blobs, start=1):
        await rig.objects.put(f"{batch.blob_path}/{n}.txt", blob)


async def test_files_written_ahead_of_the_record_are_repaired_by_the_next_batcher(tmp_path: Path) -> None:
    chain = make_chain([4] * 30)
    expected = await batch_fresh(tmp_path, "uninterrupted", chain, ROOMY)
    async with served(DevnetSequencer(chain).app) as url:
        first = await make_rig(tmp_path / "shared", url, ROOMY, clock=FakeClock(T0), owner="first")
        try:
            assert await first.batcher.run()
            latest = await first.store.latest_aggregator_batch()
            assert latest is not None and (latest.start_block, latest.end_block) == (0, 9)
            await write_files_for(first, chain, latest, end=14, extra_blobs=2)
            with pytest.raises(AssertionError):
                await check_batches(first.store, first.objects, chain, ROOMY)
        finally:
            await first.close()
        second = await make_rig(tmp_path / "shared", url, ROOMY, clock=FakeClock(T0), owner="second")
        try:
            await second.run_all()
            assert second.batcher.stats.rebuilds == 1
            await check_batches(second.store, second.objects, chain, ROOMY, through=chain.head)
            await assert_same_batches(second, expected)
        finally:
            await second.close()


class FailingStore(SqliteStore):
    """Aggregator batch writes of one kind (``update`` or ``insert``) fail ``failures`` times once
    ``after`` of them went through."""

    kind = "update"
    after = 0
    failures = 0

    def _should_fail(self, kind: str) -> bool:
        if kind != self.kind:
            return False
        if self.after > 0:
            self.after -= 1
            return False
        if self.failures > 0:
            self.failures -= 1
            return True
        return False

    async def update_aggregator_batch(self, batch: AggregatorBatch, *, now: float) -> AggregatorBatch:
        if self._should_fail("update"):
            raise BackendUnavailable("injected: the database went away")
        return await super().update_aggregator_batch(batch, now=now)

    async def insert_aggregator_batch(self, batch: AggregatorBatch) -> AggregatorBatch:
        if self._should_fail("insert"):
            raise BackendUnavailable("injected: the database went away")
        return await super().insert_aggregator_batch(batch)


def failing_store(after: int, failures: int, kind: str = "update") -> Callable[[SqliteDatabase], SqliteStore]:
    def build(db: SqliteDatabase) -> SqliteStore:
        store = FailingStore(db)
        store.kind, store.after, store.failures = kind, after, failures
        return store

    return build


@pytest.mark.parametrize("failures", [1, 2, 100], ids=["once", "twice", "for-good"])
async def test_a_record_write_failing_after_the_files_leaves_state_the_next_batcher_repairs(
    tmp_path: Path, failures: int
) -> None:
    """The fourth aggregator update fails while closing a batch; ``_run`` saves again in its ``finally``
    (which the second failure also breaks), so with two or more failures the batch's files stay ahead
    of its record."""
    chain = mixed_chain()
    expected = await batch_fresh(tmp_path, "uninterrupted", chain, SMALL)
    async with served(DevnetSequencer(chain).app) as url:
        first = await make_rig(
            tmp_path / "shared",
            url,
            SMALL,
            clock=FakeClock(T0),
            owner="first",
            store_factory=failing_store(3, failures),
        )
        try:
            with pytest.raises(BackendUnavailable, match="injected"):
                await first.run_all()
            latest = await first.store.latest_aggregator_batch()
            assert latest is not None
            written = parse_state_update_json(await first.objects.get(latest.squashed_state_updates_path))
            ahead = written.block_hash != chain.blocks[latest.end_block].block_hash
            if failures > 1:
                assert ahead, "the files are ahead of the record: the case the next batcher must repair"
        finally:
            await first.close()
        second = await make_rig(tmp_path / "shared", url, SMALL, clock=FakeClock(T0), owner="second")
        try:
            await second.run_all()
            await check_batches(second.store, second.objects, chain, SMALL, through=chain.head)
            await assert_same_batches(second, expected)
        finally:
            await second.close()


@pytest.mark.parametrize("kind", ["update", "insert"])
async def test_a_snos_batch_is_never_stored_beyond_its_aggregator_batch(tmp_path: Path, kind: str) -> None:
    chain = make_chain([2] * 30)
    limits = dataclasses.replace(ROOMY, max_blocks_per_snos_batch=2, max_snos_batches_per_aggregator_batch=2)
    expected = await batch_fresh(tmp_path, "uninterrupted", chain, limits)
    async with served(DevnetSequencer(chain).app) as url:
        # insert: SNOS batches 1 (0-1) and 2 (2-3) are saved, then block 4 closes aggregator batch 1
        # (0-3, two SNOS batches), whose first write (an insert) fails. update: in the second run
        # aggregator batch 3 (8-9) grows to 11 in memory, SNOS batch 6 (10-11) fills and is saved, block
        # 12 closes batch 3, whose update fails.
        first = await make_rig(
            tmp_path / "shared",
            url,
            limits,
            clock=FakeClock(T0),
            owner="first",
            store_factory=failing_store(0, 2, kind),
        )
        try:
            with pytest.raises(BackendUnavailable, match="injected"):
                await first.run_all()
            intermediate: AssertionError | None = None
            try:
                await check_batches(first.store, first.objects, chain, limits, after_crash=True)
            except AssertionError as exc:
                intermediate = exc
        finally:
            await first.close()
        second = await make_rig(tmp_path / "shared", url, limits, clock=FakeClock(T0), owner="second")
        try:
            await second.run_all()
            await check_batches(second.store, second.objects, chain, limits, through=chain.head)
            await assert_same_batches(second, expected)
        finally:
            await second.close()
        assert intermediate is None, f"after the failed write: {intermediate}"


# --------------------------------------------------------------------------------------------------
# The lease


async def test_batching_waits_while_another_owner_holds_the_lease_and_closes_on_request(tmp_path: Path) -> None:
    chain = make_chain([3] * 6)
    async with served(DevnetSequencer(chain).app) as url:
        rig = await make_rig(tmp_path, url, ROOMY, clock=FakeClock(T0))
        try:
            assert await rig.store.acquire(AGGREGATOR_LOCK, "another-instance", 60)
            assert not await rig.batcher.run()
            assert await rig.store.list_aggregator_batches() == [] and await rig.store.list_snos_batches() == []
            assert await rig.objects.list("") == []
            with pytest.raises(Conflict, match="holds"):
                await rig.batcher.close_open_batches()
            assert await rig.store.release(AGGREGATOR_LOCK, "another-instance")

            await rig.run_all()
            aggs, snos = await check_batches(rig.store, rig.objects, chain, ROOMY, through=chain.head)
            assert [a.status for a in aggs] == [AggregatorBatchStatus.OPEN]
            assert [s.status for s in snos] == [SnosBatchStatus.OPEN]
            before = aggs[0]
            assert await rig.batcher.close_open_batches() == (1, 1)
            aggs, snos = await check_batches(rig.store, rig.objects, chain, ROOMY, through=chain.head)
            assert [a.status for a in aggs] == [AggregatorBatchStatus.CLOSED]
            assert [s.status for s in snos] == [SnosBatchStatus.CLOSED]
            assert aggs[0].version > before.version and aggs[0].blob_len == before.blob_len
            assert rig.batcher.stats.closed == {"aggregator:batch_closed": 1, "snos:aggregator_batch": 1}
            assert await rig.batcher.close_open_batches() == (0, 0)
            # Nothing left open: the next block starts the next batches.
            chain.produce_block()
            assert await rig.batcher.run()
            aggs, _ = await check_batches(rig.store, rig.objects, chain, ROOMY, through=chain.head)
            assert [(a.start_block, a.end_block) for a in aggs] == [(0, 6), (7, 7)]
        finally:
            await rig.close()


# --------------------------------------------------------------------------------------------------
# The feeder gateway


class FeederGate:
    """The feeder gateway's bouncer weights, answering 502 for blocks from ``fail_from`` on (when set)."""

    def __init__(self, chain: DevnetChain) -> None:
        self.chain = chain
        self.fail_from: int | None = None
        self.app = Starlette(routes=[Route("/feeder_gateway/get_block_bouncer_weights", self.weights)])

    async def weights(self, request: Request) -> Response:
        number = int(request.query_params["blockNumber"])
        if self.fail_from is not None and number >= self.fail_from:
            return JSONResponse({"message": "bad gateway"}, status_code=502)
        if number > self.chain.head:
            return JSONResponse({"code": "StarknetErrorCode.BLOCK_NOT_FOUND", "message": "no"}, status_code=400)
        return JSONResponse(self.chain.blocks[number].weights.to_json())


async def test_a_feeder_gateway_outage_fails_the_run_cleanly_and_batching_resumes(tmp_path: Path) -> None:
    chain = mixed_chain()
    expected = await batch_fresh(tmp_path, "uninterrupted", chain, SMALL)
    gate = FeederGate(chain)
    async with served(DevnetSequencer(chain).app) as url, served(gate.app) as feeder_url:
        rig = await make_rig(
            tmp_path / "shared", url, SMALL, clock=FakeClock(T0), feeder_url=feeder_url, max_batch_processing_size=20
        )
        try:
            gate.fail_from = 12
            with pytest.raises(BackendUnavailable, match="502"):
                await rig.batcher.run()
            # The blocks before the outage's fetch chunk were batched and saved, consistently.
            aggs, snos = await check_batches(rig.store, rig.objects, chain, SMALL)
            assert aggs and max(a.end_block for a in aggs) < 12 and snos[-1].end_block == aggs[-1].end_block
            # Down from the first block to fetch: the run fails and changes nothing.
            gate.fail_from = 0
            before = await snapshot(rig.store, rig.objects)
            with pytest.raises(BackendUnavailable):
                await rig.batcher.run()
            assert await snapshot(rig.store, rig.objects) == before
            gate.fail_from = None
            await rig.run_all()
            await check_batches(rig.store, rig.objects, chain, SMALL, through=chain.head)
            await assert_same_batches(rig, expected)
        finally:
            await rig.close()


async def test_a_feeder_gateway_nobody_listens_on_is_backend_unavailable(tmp_path: Path) -> None:
    chain = make_chain([2] * 3)
    async with served(DevnetSequencer(chain).app) as url:
        async with served(Starlette()) as stopped_url:
            pass  # the port is free again: nothing listens there
        rig = await make_rig(tmp_path, url, ROOMY, clock=FakeClock(T0), feeder_url=stopped_url)
        try:
            with pytest.raises(BackendUnavailable):
                await rig.batcher.run()
            await check_batches(rig.store, rig.objects, chain, ROOMY)
            assert await rig.store.list_aggregator_batches() == []
            # The lease was given back: another instance can batch at once.
            assert await rig.store.acquire(AGGREGATOR_LOCK, "another-instance", 60)
        finally:
            await rig.close()


# --------------------------------------------------------------------------------------------------
# Atlantic buckets


async def test_every_new_aggregator_batch_opens_its_own_atlantic_bucket(tmp_path: Path) -> None:
    chain = make_chain([3] * 20)
    limits = dataclasses.replace(ROOMY, max_batch_size=6)
    async with MockAtlanticServer(MockAtlanticConfig(processing_s=0.1)) as atlantic:
        prover = AtlanticClient(
            AtlanticConfig(
                service_url=atlantic.url,
                api_key="test-key",
                network=AtlanticNetwork.TESTNET,
                artifacts_base_url=atlantic.artifacts_url,
                timeout_s=2,
                retry=RetryPolicy(base_delay_s=0.02, max_delay_s=0.1, budget_s=5.0, max_attempts=3),
            )
        )
        async with served(DevnetSequencer(chain).app) as url:
            rig = await make_rig(tmp_path, url, limits, clock=FakeClock(T0), create_buckets=True, prover=prover)
            try:
                await rig.run_all()
                aggs, _ = await check_batches(rig.store, rig.objects, chain, limits, through=chain.head)
                assert len(aggs) == 4
                buckets = [a.bucket_id for a in aggs]
                assert all(buckets) and len(set(buckets)) == len(aggs)
                assert set(buckets) == set(atlantic.state.buckets)
                assert all(atlantic.state.buckets[b]["status"] == "OPEN" for b in buckets if b)
            finally:
                await rig.close()
                await prover.aclose()


class Killed(BaseException):
    """The process dies here: nothing after it runs (not even the run's own error handling of Exceptions)."""


class DiesBeforeStoringItsFirstAggregatorBatch(SqliteStore):
    async def insert_aggregator_batch(self, batch: AggregatorBatch) -> AggregatorBatch:
        raise Killed


async def test_a_bucket_orphaned_by_a_crash_before_its_batch_was_stored_is_closed(tmp_path: Path) -> None:
    chain = make_chain([3] * 6)
    async with MockAtlanticServer(MockAtlanticConfig(processing_s=0.01)) as atlantic:
        prover = AtlanticClient(
            AtlanticConfig(
                service_url=atlantic.url,
                api_key="test-key",
                network=AtlanticNetwork.TESTNET,
                artifacts_base_url=atlantic.artifacts_url,
                timeout_s=2,
                retry=RetryPolicy(base_delay_s=0.02, max_delay_s=0.1, budget_s=5.0, max_attempts=3),
            )
        )
        async with served(DevnetSequencer(chain).app) as url:
            crashing = await make_rig(
                tmp_path,
                url,
                ROOMY,
                clock=FakeClock(T0),
                create_buckets=True,
                prover=prover,
                store_factory=DiesBeforeStoringItsFirstAggregatorBatch,
            )
            try:
                with pytest.raises(Killed):
                    await crashing.batcher.run()
                (orphan,) = atlantic.state.buckets
                assert await crashing.store.list_aggregator_batches() == []
                # Its batch is not stored: a run may still store it, so it is left open.
                sweeper = OrphanedBuckets(db=crashing.store, objects=crashing.objects, prover=prover)
                assert await sweeper.sweep() == []
                assert atlantic.state.buckets[orphan]["status"] == "OPEN"
            finally:
                await crashing.close()
            restarted = await make_rig(tmp_path, url, ROOMY, clock=FakeClock(T0), create_buckets=True, prover=prover)
            try:
                await restarted.run_all()
                (batch,) = await restarted.store.list_aggregator_batches()
                assert batch.bucket_id is not None and batch.bucket_id != orphan
                assert restarted.batcher.orphaned_buckets is not None
                assert restarted.batcher.orphaned_buckets.closed == [orphan]
                assert atlantic.state.buckets[orphan]["status"] != "OPEN", "closed at the prover"
                assert atlantic.state.buckets[batch.bucket_id]["status"] == "OPEN", "the batch's own is untouched"
                assert await restarted.objects.list(BUCKET_MARKS) == [], "no mark left behind"
                await restarted.run_all()
                assert restarted.batcher.orphaned_buckets.closed == [orphan], "closed once"
            finally:
                await restarted.close()
                await prover.aclose()


async def test_buckets_need_a_prover_client(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="prover client"):
        await make_rig(tmp_path, "http://127.0.0.1:1", ROOMY, create_buckets=True)


async def test_unusable_limits_are_refused_with_every_problem_named(tmp_path: Path) -> None:
    bad = dataclasses.replace(ROOMY, max_batch_size=0, blob_size_buffer=6 * 4096)
    with pytest.raises(InvalidInput, match=r"max batch size.*blob size buffer"):
        await make_rig(tmp_path, "http://127.0.0.1:1", bad)


async def test_a_restarted_instance_takes_back_the_batching_lease_its_killed_run_held(tmp_path: Path) -> None:
    """``run`` names its leases after the instance (stable across restarts): the lease a SIGKILLed run left
    (here for an hour) does not stop its restart from batching; another instance still waits."""
    from madara_orchestrator.cli.devnet import devnet_settings
    from madara_orchestrator.cli.run import instance_id
    from madara_orchestrator.cli.settings import Settings

    settings = devnet_settings(tmp_path / "data", "http://127.0.0.1:9", port=3123)
    me = instance_id(settings)
    assert me == instance_id(settings) and me.endswith("-3123"), "stable, and distinct per port on one host"
    assert instance_id(Settings({**settings.values, "instance_id": "node-a"})) == "node-a"
    chain = make_chain([3] * 4)
    async with served(DevnetSequencer(chain).app) as url:
        other = await make_rig(tmp_path, url, ROOMY, owner="another-instance")
        restarted = await make_rig(tmp_path, url, ROOMY, owner=me)
        try:
            assert await restarted.store.acquire(AGGREGATOR_LOCK, me, 3600)  # the killed run's lease
            assert not await other.batcher.run(), "another instance waits for the lease"
            assert await restarted.batcher.run(), "the restart batches at once"
        finally:
            await other.close()
            await restarted.close()
