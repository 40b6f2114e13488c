"""The two gates in front of each block, against real parts (tests/helpers/batching.py): the version gate
(SPEC §5.3: a block of a Starknet version neither known nor allowed is not batched) and the replay-bounds
check (§5.9: a block whose hash differs at the reference node is not batched).

Each stop leaves the blocks before the block batched (``check_batches`` through the block before), sends one
alert however many runs meet it, and lifts when the operator acts: the reference agrees again, the flag is
removed, or the version is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from madara_orchestrator.devnet.sequencer import STARKNET_VERSION, DevnetSequencer
from madara_orchestrator.domain.batches import AggregatorBatchStatus, SnosBatchStatus
from madara_orchestrator.domain.batching import (
    BatchingStopped,
    BatchingWaits,
    BatchLimits,
    HoldKind,
    StarknetVersions,
)
from madara_orchestrator.domain.errors import outage_cause
from tests.helpers.batching import (
    BatchingRig,
    ReferenceSequencer,
    check_batches,
    describe_differences,
    make_chain,
    make_rig,
    served,
    snapshot,
)
from tests.helpers.engine import FakeClock

T0 = 1_700_000_000.0
ROOMY = BatchLimits(max_batch_time_s=3600, max_batch_size=100, max_blocks_per_snos_batch=10)
SMALL = BatchLimits(max_batch_time_s=3600, max_batch_size=4, max_blocks_per_snos_batch=2)
COUNTS = [3] * 15
LAYERS = pytest.mark.parametrize("aggregator_batches", [True, False], ids=["L2", "L3"])


async def stopped_run(rig: BatchingRig) -> BatchingStopped:
    with pytest.raises(BatchingStopped) as caught:
        await rig.batcher.run()
    return caught.value


# --------------------------------------------------------------------------------------------------
# Replay bounds (SPEC §5.9)


@LAYERS
async def test_agreeing_reference_changes_nothing(tmp_path: Path, aggregator_batches: bool) -> None:
    chain = make_chain(COUNTS)
    twin = make_chain(COUNTS)  # another sequencer with the same blocks
    results: dict[str, Any] = {}
    async with served(DevnetSequencer(chain).app) as url, served(DevnetSequencer(twin).app) as reference_url:
        for name, reference in (("without", None), ("with", reference_url)):
            rig = await make_rig(
                tmp_path / name,
                url,
                SMALL,
                clock=FakeClock(T0),
                aggregator_batches=aggregator_batches,
                reference_url=reference,
            )
            try:
                await rig.run_all()
                await check_batches(
                    rig.store, rig.objects, chain, SMALL, aggregator_batches=aggregator_batches, through=chain.head
                )
                assert rig.alerts.sent == []
                results[name] = await snapshot(rig.store, rig.objects)
            finally:
                await rig.close()
    assert results["with"] == results["without"], describe_differences(results["with"], results["without"])


@LAYERS
async def test_a_block_whose_hash_differs_at_the_reference_stops_batching_before_it(
    tmp_path: Path, aggregator_batches: bool
) -> None:
    chain = make_chain(COUNTS)
    reference = ReferenceSequencer(chain, tampered=[6])
    async with served(DevnetSequencer(chain).app) as url, served(reference.app) as reference_url:
        rig = await make_rig(
            tmp_path,
            url,
            SMALL,
            clock=FakeClock(T0),
            aggregator_batches=aggregator_batches,
            reference_url=reference_url,
        )
        try:
            for _ in range(3):  # every run stops there; one alert
                stopped = await stopped_run(rig)
                assert not isinstance(stopped, BatchingWaits) and outage_cause(stopped) is None
                assert (stopped.hold.kind, stopped.hold.block) == (HoldKind.HASH_MISMATCH, 6)
                await check_batches(
                    rig.store, rig.objects, chain, SMALL, aggregator_batches=aggregator_batches, through=5
                )
            ours, theirs = hex(chain.blocks[6].block_hash), reference.other_hash(6)
            assert stopped.hold.hashes == (ours, theirs)
            assert len(rig.alerts.sent) == 1, rig.alerts.sent
            subject, message = rig.alerts.sent[0]
            assert "block 6" in subject and ours in message and theirs in message
            assert reference_url not in message and "127.0.0.1" not in message

            reference.tampered.clear()  # the reference agrees again: batching goes on by itself
            await rig.run_all()
            await check_batches(
                rig.store, rig.objects, chain, SMALL, aggregator_batches=aggregator_batches, through=chain.head
            )
            assert len(rig.alerts.sent) == 1
        finally:
            await rig.close()


async def test_sequencers_that_diverge_stop_batching_until_the_flag_is_removed(tmp_path: Path) -> None:
    chain = make_chain(COUNTS)
    diverging = make_chain([3] * 7 + [5] + [3] * 7)  # the same blocks up to 7, other traffic from block 8
    assert [b.block_hash for b in chain.blocks[:8]] == [b.block_hash for b in diverging.blocks[:8]]
    async with served(DevnetSequencer(chain).app) as url, served(DevnetSequencer(diverging).app) as reference_url:
        rig = await make_rig(tmp_path, url, ROOMY, clock=FakeClock(T0), reference_url=reference_url)
        try:
            stopped = await stopped_run(rig)
            assert (stopped.hold.kind, stopped.hold.block) == (HoldKind.HASH_MISMATCH, 8)
            assert stopped.progressed
            aggs, snos = await check_batches(rig.store, rig.objects, chain, ROOMY, through=7)
            # A mismatch does not close the open batches (the blocks before it agree; the batch closes by its rules).
            assert aggs[-1].status == AggregatorBatchStatus.OPEN and snos[-1].status == SnosBatchStatus.OPEN
            assert len(rig.alerts.sent) == 1 and "block 8" in rig.alerts.sent[0][0]
        finally:
            await rig.close()
        # The operator removes --replay-bounds-rpc-url: the next process batches on.
        rig = await make_rig(tmp_path, url, ROOMY, clock=FakeClock(T0))
        try:
            await rig.run_all()
            await check_batches(rig.store, rig.objects, chain, ROOMY, through=chain.head)
            assert rig.alerts.sent == []
        finally:
            await rig.close()


async def test_a_reference_behind_or_down_is_waited_out_without_an_alert(tmp_path: Path) -> None:
    chain = make_chain(COUNTS)
    behind = make_chain(COUNTS[:5])  # the same chain, up to block 5 only
    reference = DevnetSequencer(behind)
    async with served(DevnetSequencer(chain).app) as url, served(reference.app) as reference_url:
        rig = await make_rig(tmp_path, url, SMALL, clock=FakeClock(T0), reference_url=reference_url)
        try:
            stopped = await stopped_run(rig)
            assert isinstance(stopped, BatchingWaits) and outage_cause(stopped) is stopped
            assert (stopped.hold.kind, stopped.hold.block) == (HoldKind.REFERENCE_UNAVAILABLE, 6)
            assert "Block not found" in str(stopped) and reference_url not in str(stopped)
            await check_batches(rig.store, rig.objects, chain, SMALL, through=5)
            assert rig.alerts.sent == []

            # The reference catches up (the same blocks): batching goes on.
            behind.tx_per_block = 3
            while behind.head < chain.head:
                behind.produce_block()
            await rig.run_all()
            await check_batches(rig.store, rig.objects, chain, SMALL, through=chain.head)
        finally:
            await rig.close()
    # Down altogether (it answers 503 to everything): an outage, nothing batched, no alert.
    async with served(DevnetSequencer(chain).app) as url, served(_unavailable) as reference_url:
        rig = await make_rig(tmp_path / "down", url, SMALL, clock=FakeClock(T0), reference_url=reference_url)
        try:
            stopped = await stopped_run(rig)
            assert isinstance(stopped, BatchingWaits) and (stopped.hold.block, stopped.progressed) == (0, False)
            assert "503" in str(stopped)
            assert await rig.store.list_snos_batches() == [] and rig.alerts.sent == []
        finally:
            await rig.close()


_unavailable = Starlette(routes=[Route("/", lambda _: Response("down", status_code=503), methods=["POST"])])


# --------------------------------------------------------------------------------------------------
# The version gate (SPEC §5.3)


@LAYERS
async def test_an_unknown_starknet_version_stops_batching_until_it_is_allowed(
    tmp_path: Path, aggregator_batches: bool
) -> None:
    chain = make_chain(COUNTS)
    sequencer = DevnetSequencer(chain)
    sequencer.announce_version("0.99.0", from_block=8)
    async with served(sequencer.app) as url:
        rig = await make_rig(tmp_path, url, ROOMY, clock=FakeClock(T0), aggregator_batches=aggregator_batches)
        try:
            for _ in range(2):
                stopped = await stopped_run(rig)
                assert (stopped.hold.kind, stopped.hold.block, stopped.hold.version) == (
                    HoldKind.UNKNOWN_VERSION,
                    8,
                    "0.99.0",
                )
            aggs, snos = await check_batches(
                rig.store,
                rig.objects,
                chain,
                ROOMY,
                aggregator_batches=aggregator_batches,
                through=7,
                version_of=sequencer.version_of,
            )
            # The blocks before it go on to be proven: their batches are closed at once.
            assert [(s.start_block, s.end_block, s.status) for s in snos] == [(0, 7, SnosBatchStatus.CLOSED)]
            if aggregator_batches:
                assert [(a.start_block, a.end_block, a.status) for a in aggs] == [(0, 7, AggregatorBatchStatus.CLOSED)]
                assert rig.batcher.stats.closed == {"aggregator:unknown_version": 1, "snos:aggregator_batch": 1}
            else:
                assert rig.batcher.stats.closed == {"snos:unknown_version": 1}
            assert len(rig.alerts.sent) == 1, rig.alerts.sent
            subject, message = rig.alerts.sent[0]
            assert "block 8" in subject and "0.99.0" in subject
            assert "--allow-starknet-versions 0.99.0" in message and "0.14.2" in message
        finally:
            await rig.close()
        # The operator allows it (--allow-starknet-versions 0.99.0) and restarts.
        rig = await make_rig(
            tmp_path,
            url,
            ROOMY,
            clock=FakeClock(T0),
            aggregator_batches=aggregator_batches,
            starknet_versions=StarknetVersions(("0.99.0",)),
        )
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
            assert [(s.start_block, s.starknet_version) for s in snos] == [(0, STARKNET_VERSION), (8, "0.99.0")]
            if aggregator_batches:
                assert [(a.start_block, a.starknet_version) for a in aggs] == [(0, STARKNET_VERSION), (8, "0.99.0")]
            assert rig.alerts.sent == []
        finally:
            await rig.close()
