"""Batching against real parts: a Batcher on a SQLite file, files on disk and real HTTP clients to a
devnet sequencer, and ``check_batches``, which recomputes every stored batch from the chain itself.

The reference in ``check_batches`` is independent of the squash code: it folds the blocks' state diffs
as the chain produced them (later writes win) and drops what equals the chain's own history at the
pre-range block. Only the blob encoding (compression and the NTT) is shared with the code under test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from madara_orchestrator.backends.alerts import RecordingAlerts
from madara_orchestrator.backends.filesystem import FilesystemObjectStore
from madara_orchestrator.backends.sqlite import SqliteStore
from madara_orchestrator.backends.sqlite_db import SqliteDatabase
from madara_orchestrator.devnet.sequencer import STARKNET_VERSION, DevnetChain, DevnetSequencer, RpcFailure
from madara_orchestrator.domain.artifacts import aggregator_batch_paths
from madara_orchestrator.domain.batches import (
    DEFAULT_BOUNCER_WEIGHT_LIMITS,
    AggregatorBatch,
    AggregatorBatchStatus,
    BouncerWeights,
    SnosBatch,
    SnosBatchStatus,
)
from madara_orchestrator.domain.batching import BatchLimits, StarknetVersions
from madara_orchestrator.engine.batching import Batcher, BatchingConfig
from madara_orchestrator.engine.metrics import Metrics
from madara_orchestrator.engine.service import SystemClock
from madara_orchestrator.interfaces import Clock, ProverClient
from madara_orchestrator.server.background import BackgroundServer
from madara_orchestrator.starknet.aliases import compress_state_update
from madara_orchestrator.starknet.blob import felts_to_blobs
from madara_orchestrator.starknet.feeder import FeederGatewayClient
from madara_orchestrator.starknet.rpc import RpcCall, RpcError, StarknetRpcClient
from madara_orchestrator.starknet.rpc_cache import CachingBatchRpc
from madara_orchestrator.starknet.state_update import StateUpdate, parse_state_update_json

DB_FILE = "orchestrator.db"
OBJECTS_DIR = "objects"

# --------------------------------------------------------------------------------------------------
# Chains


def make_chain(tx_counts: Sequence[int], *, seed: int = 7) -> DevnetChain:
    """A devnet chain with one block after genesis per entry of ``tx_counts`` (its transactions)."""
    chain = DevnetChain(seed=seed, tx_per_block=0)
    for count in tx_counts:
        chain.tx_per_block = count
        chain.produce_block()
    return chain


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app (a devnet sequencer's) over HTTP on 127.0.0.1; yields its URL."""
    server = BackgroundServer(app)
    url = await server.start()
    try:
        yield url
    finally:
        await server.stop()


# --------------------------------------------------------------------------------------------------
# Limits as JSON (for the batching process)


def limits_to_json(limits: BatchLimits) -> str:
    body = dataclasses.asdict(limits)
    body["bouncer_weight_limits"] = limits.bouncer_weight_limits.to_json()
    return json.dumps(body)


def limits_from_json(text: str) -> BatchLimits:
    body = json.loads(text)
    body["bouncer_weight_limits"] = BouncerWeights.from_json(
        body.get("bouncer_weight_limits") or {}, defaults=DEFAULT_BOUNCER_WEIGHT_LIMITS
    )
    return BatchLimits(**body)


# --------------------------------------------------------------------------------------------------
# The rig


@dataclass
class BatchingRig:
    batcher: Batcher
    db: SqliteDatabase
    store: SqliteStore
    objects: FilesystemObjectStore
    sequencer: StarknetRpcClient
    feeder: FeederGatewayClient
    alerts: RecordingAlerts
    metrics: Metrics
    clock: Clock
    reference: StarknetRpcClient | None = None

    async def run_all(self, *, max_runs: int = 500) -> int:
        """Run until a run changes nothing (every block up to the head batched); returns the runs made."""
        for runs in range(1, max_runs + 1):
            if not await self.batcher.run():
                return runs
        raise AssertionError(f"batching still progressing after {max_runs} runs")

    def closed_by(self, kind: str) -> dict[str, float]:
        """``orchestrator_batches_closed_total`` by reason, for ``kind`` (aggregator or snos)."""
        found: dict[str, float] = {}
        for sample in self.metrics.collect("orchestrator_batches_closed"):
            if sample.name.endswith("_total") and sample.labels.get("kind") == kind:
                found[sample.labels["reason"]] = sample.value
        return found

    async def close(self) -> None:
        await self.sequencer.aclose()
        await self.feeder.aclose()
        if self.reference is not None:
            await self.reference.aclose()
        await self.db.close()


async def make_rig(
    data_dir: Path,
    rpc_url: str,
    limits: BatchLimits,
    *,
    sqlite_path: Path | None = None,
    objects_dir: Path | None = None,
    clock: Clock | None = None,
    feeder_url: str | None = None,
    owner: str | None = None,
    aggregator_batches: bool = True,
    lock_duration_s: float = 60.0,
    max_batch_processing_size: int = 10,
    create_buckets: bool = False,
    prover: ProverClient | None = None,
    store_factory: Callable[[SqliteDatabase], SqliteStore] = SqliteStore,
    reference_url: str | None = None,
    starknet_versions: StarknetVersions | None = None,
) -> BatchingRig:
    """A Batcher over ``data_dir/orchestrator.db`` and ``data_dir/objects`` (unless given; shared by every
    rig on the same paths), reading the sequencer at ``rpc_url`` (and its feeder gateway, unless
    ``feeder_url``). The clock is the system's unless one is given. ``reference_url``: the replay-bounds
    reference node; ``starknet_versions``: the versions batched (default: the known ones)."""
    db = SqliteDatabase(sqlite_path or data_dir / DB_FILE)
    await db.open()
    store = store_factory(db)
    objects = FilesystemObjectStore(objects_dir or data_dir / OBJECTS_DIR)
    sequencer = StarknetRpcClient(rpc_url, timeout_s=10, attempts=3, retry_pause_s=0.05)
    feeder = FeederGatewayClient(feeder_url or rpc_url, timeout_s=10, attempts=2, retry_pause_s=0.05)
    alerts = RecordingAlerts()
    metrics = Metrics()
    clock = clock or SystemClock()
    reference = None if reference_url is None else StarknetRpcClient(reference_url, attempts=2, retry_pause_s=0.01)
    try:
        batcher = Batcher(
            config=BatchingConfig(
                limits=limits,
                aggregator_batches=aggregator_batches,
                max_batch_processing_size=max_batch_processing_size,
                lock_duration_s=lock_duration_s,
                create_buckets=create_buckets,
                starknet_versions=starknet_versions or StarknetVersions(),
            ),
            db=store,
            objects=objects,
            sequencer=sequencer,
            feeder=feeder,
            rpc=CachingBatchRpc(sequencer),
            locks=store,
            clock=clock,
            alerts=alerts,
            metrics=metrics,
            prover=prover,
            owner=owner,
            reference=reference,
        )
    except BaseException:
        await sequencer.aclose()
        await feeder.aclose()
        if reference is not None:
            await reference.aclose()
        await db.close()
        raise
    return BatchingRig(batcher, db, store, objects, sequencer, feeder, alerts, metrics, clock, reference)


class ReferenceSequencer(DevnetSequencer):
    """A replay-bounds reference node serving ``chain``, whose headers report another hash for the blocks
    in ``tampered`` (every other answer is the chain's)."""

    def __init__(self, chain: DevnetChain, *, tampered: Sequence[int] = ()) -> None:
        super().__init__(chain)
        self.tampered = set(tampered)

    def other_hash(self, block: int) -> str:
        return hex(self.chain.blocks[block].block_hash ^ 1)

    def call(self, method: str, params: Any) -> Any:
        result = super().call(method, params)
        if method == "starknet_getBlockWithTxHashes" and result["block_number"] in self.tampered:
            result = {**result, "block_hash": self.other_hash(result["block_number"])}
        return result


# --------------------------------------------------------------------------------------------------
# The chain's own answers, without HTTP (for the reference blobs)


class ChainRpc:
    """``BatchRpc`` straight over the devnet's method table."""

    def __init__(self, chain: DevnetChain) -> None:
        self._sequencer = DevnetSequencer(chain)

    async def batch(self, calls: Sequence[RpcCall]) -> list[Any | RpcError]:
        out: list[Any | RpcError] = []
        for call in calls:
            try:
                out.append(self._sequencer.call(call.method, call.params))
            except RpcFailure as failure:
                out.append(RpcError(failure.code, failure.message))
        return out


# --------------------------------------------------------------------------------------------------
# The invariants


@dataclass(frozen=True)
class ReferenceDiff:
    storage: dict[tuple[int, int], int]
    nonces: dict[int, int]
    deployed: dict[int, int]
    declared: dict[int, int]


def reference_diff(chain: DevnetChain, start: int, end: int) -> ReferenceDiff:
    """The blocks' state diffs applied in order, then what equals the pre-range state dropped."""
    storage: dict[tuple[int, int], int] = {}
    nonces: dict[int, int] = {}
    deployed: dict[int, int] = {}
    declared: dict[int, int] = {}
    for number in range(start, end + 1):
        diff = chain.blocks[number].state_diff
        for contract in diff["storage_diffs"]:
            address = int(contract["address"], 16)
            for entry in contract["storage_entries"]:
                storage[(address, int(entry["key"], 16))] = int(entry["value"], 16)
        nonces.update((int(n["contract_address"], 16), int(n["nonce"], 16)) for n in diff["nonces"])
        deployed.update((int(d["address"], 16), int(d["class_hash"], 16)) for d in diff["deployed_contracts"])
        declared.update((int(c["class_hash"], 16), int(c["compiled_class_hash"], 16)) for c in diff["declared_classes"])
        assert not diff["replaced_classes"] and not diff["deprecated_declared_classes"]

    def before(slot: tuple[int, int]) -> int:
        if start == 0:
            return 0
        history = chain.storage.get(slot)
        return (history.at(start - 1) if history else None) or 0

    kept = {slot: value for slot, value in storage.items() if value != before(slot)}
    return ReferenceDiff(storage=kept, nonces=nonces, deployed=deployed, declared=declared)


def diff_of(update: StateUpdate) -> ReferenceDiff:
    diff = update.state_diff
    storage = {(s.address, e.key): e.value for s in diff.storage_diffs for e in s.storage_entries}
    assert sum(len(s.storage_entries) for s in diff.storage_diffs) == len(storage), "a slot appears twice"
    assert all(s.storage_entries for s in diff.storage_diffs), "a contract with no storage entries"
    assert not diff.replaced_classes and not diff.deprecated_declared_classes and not diff.migrated_compiled_classes
    return ReferenceDiff(
        storage=storage,
        nonces={n.contract_address: n.nonce for n in diff.nonces},
        deployed={d.address: d.class_hash for d in diff.deployed_contracts},
        declared={c.class_hash: c.compiled_class_hash for c in diff.declared_classes},
    )


def _check_tiling(kind: str, batches: Sequence[SnosBatch | AggregatorBatch], first: int) -> None:
    expected_start = first
    for position, batch in enumerate(batches, start=1):
        assert batch.index == position, f"{kind} batch indexes are not 1..n: {[b.index for b in batches]}"
        assert batch.start_block == expected_start, (
            f"{kind} batch {batch.index} starts at {batch.start_block}, expected {expected_start} (gap or overlap)"
        )
        assert batch.end_block >= batch.start_block, f"{kind} batch {batch.index} is empty"
        expected_start = batch.end_block + 1
        if position < len(batches):
            assert batch.is_closed, f"{kind} batch {batch.index} is open but is not the latest"


async def check_batches(
    store: SqliteStore,
    objects: FilesystemObjectStore,
    chain: DevnetChain,
    limits: BatchLimits,
    *,
    aggregator_batches: bool = True,
    first_block: int = 0,
    through: int | None = None,
    after_crash: bool = False,
    version_of: Callable[[int], str] | None = None,
) -> tuple[list[AggregatorBatch], list[SnosBatch]]:
    """Assert every batching invariant over what is stored; returns the batches (index order).

    ``through``: the last block both kinds must reach. ``after_crash``: what a crash (or a failed write)
    may leave until the next run repairs it is allowed: the open aggregator batch's files ahead of its
    record, and an open SNOS batch whose aggregator batch was closed (the two closes are two writes).
    """
    version_of = version_of or (lambda _: STARKNET_VERSION)
    aggs = await store.list_aggregator_batches()
    snos = await store.list_snos_batches()
    _check_tiling("SNOS", snos, first_block)
    for batch in snos:
        size = limits.fixed_blocks_per_snos_batch or limits.max_blocks_per_snos_batch
        assert batch.num_blocks <= size, f"SNOS batch {batch.index} has {batch.num_blocks} blocks > {size}"
        versions = {version_of(b) for b in range(batch.start_block, batch.end_block + 1)}
        assert versions == {batch.starknet_version}, f"SNOS batch {batch.index}: versions {versions}"
        assert batch.status in (SnosBatchStatus.OPEN, SnosBatchStatus.CLOSED)
    if through is not None:
        assert snos and snos[-1].end_block == through, f"SNOS batches end at {snos[-1].end_block if snos else None}"
    if not aggregator_batches:
        assert not aggs
        assert all(b.aggregator_batch_index is None for b in snos)
        return aggs, snos

    _check_tiling("aggregator", aggs, first_block)
    if through is not None:
        assert aggs and aggs[-1].end_block == through, (
            f"aggregator batches end at {aggs[-1].end_block if aggs else None}"
        )
    by_index = {a.index: a for a in aggs}
    children: dict[int, list[SnosBatch]] = {}
    for batch in snos:
        assert batch.aggregator_batch_index is not None, f"SNOS batch {batch.index} has no aggregator batch"
        parent = by_index.get(batch.aggregator_batch_index)
        assert parent is not None, f"SNOS batch {batch.index} points at a missing aggregator batch"
        assert parent.start_block <= batch.start_block and batch.end_block <= parent.end_block, (
            f"SNOS batch {batch.index} ({batch.start_block}-{batch.end_block}) is outside aggregator batch "
            f"{parent.index} ({parent.start_block}-{parent.end_block})"
        )
        if batch.status == SnosBatchStatus.OPEN and not after_crash:
            assert not parent.is_closed, f"open SNOS batch {batch.index} in closed aggregator batch {parent.index}"
        children.setdefault(parent.index, []).append(batch)
    for agg in aggs:
        kids = children.get(agg.index, [])
        assert len(kids) <= limits.max_snos_batches_per_aggregator_batch, (
            f"aggregator batch {agg.index} has {len(kids)} SNOS batches"
        )
        if agg.is_closed and (not snos or snos[-1].end_block >= agg.end_block):
            covered = sum(k.num_blocks for k in kids)
            assert covered == agg.num_blocks, f"aggregator batch {agg.index}: its SNOS batches cover {covered} blocks"
        assert agg.num_blocks <= limits.max_batch_size, f"aggregator batch {agg.index} has {agg.num_blocks} blocks"
        if agg.is_closed and agg.num_blocks > 1:
            assert agg.blob_len <= limits.max_blob_size, (
                f"aggregator batch {agg.index}: blob_len {agg.blob_len} > {limits.max_blob_size}"
            )
        versions = {version_of(b) for b in range(agg.start_block, agg.end_block + 1)}
        assert versions == {agg.starknet_version}, f"aggregator batch {agg.index}: versions {versions}"
        assert agg.status in (AggregatorBatchStatus.OPEN, AggregatorBatchStatus.CLOSED)
        assert (agg.squashed_state_updates_path, agg.blob_path) == aggregator_batch_paths(agg.index)
        if agg.is_closed or not after_crash:
            await check_batch_files(objects, chain, agg)
    return aggs, snos


async def check_batch_files(objects: FilesystemObjectStore, chain: DevnetChain, batch: AggregatorBatch) -> None:
    """The squashed state update equals the reference; the blobs are exactly its compressed encoding."""
    where = f"aggregator batch {batch.index} ({batch.start_block}-{batch.end_block})"
    update = parse_state_update_json(await objects.get(batch.squashed_state_updates_path), where)
    first, last = chain.blocks[batch.start_block], chain.blocks[batch.end_block]
    assert (update.old_root, update.new_root, update.block_hash) == (first.old_root, last.new_root, last.block_hash), (
        f"{where}: the squashed update's roots or hash are not those of its first and last blocks"
    )
    got, want = diff_of(update), reference_diff(chain, batch.start_block, batch.end_block)
    if got != want:
        extra = {k: v for k, v in got.storage.items() if want.storage.get(k) != v}
        missing = {k: v for k, v in want.storage.items() if got.storage.get(k) != v}
        raise AssertionError(
            f"{where}: squashed state diff differs from the reference: storage extra {len(extra)} "
            f"{list(extra.items())[:3]}, missing {len(missing)} {list(missing.items())[:3]}; nonces "
            f"{got.nonces == want.nonces}, deployed {got.deployed == want.deployed}, "
            f"declared {got.declared == want.declared}"
        )
    compressed = await compress_state_update(
        update, starknet_version=batch.starknet_version, reference_block=batch.end_block, rpc=ChainRpc(chain)
    )
    assert len(compressed) == batch.blob_len, f"{where}: blob_len {batch.blob_len}, files encode {len(compressed)}"
    blobs = felts_to_blobs(compressed)
    prefix = batch.blob_path + "/"
    keys = await objects.list(prefix)
    assert keys == sorted(f"{prefix}{n}.txt" for n in range(1, len(blobs) + 1)), f"{where}: blob files {keys}"
    for n, blob in enumerate(blobs, start=1):
        assert await objects.get(f"{prefix}{n}.txt") == blob, f"{where}: blob {n} differs"


# --------------------------------------------------------------------------------------------------
# Comparing two batchings


async def snapshot(store: SqliteStore, objects: FilesystemObjectStore) -> dict[str, Any]:
    """What must not depend on how batching was run (ranges, statuses, sizes, weights, file bytes);
    times, ids, record versions and bucket ids are left out."""
    aggs = await store.list_aggregator_batches()
    snos = await store.list_snos_batches()
    files = {key: await objects.get(key) for prefix in ("state_update/", "blob/") for key in await objects.list(prefix)}
    return {
        "aggregator": [
            (
                a.index,
                a.start_block,
                a.end_block,
                str(a.status),
                a.blob_len,
                a.starknet_version,
                a.aggregator_input_size_upper_bound,
                a.builtin_weights,
            )
            for a in aggs
        ],
        "snos": [
            (
                s.index,
                s.start_block,
                s.end_block,
                str(s.status),
                s.aggregator_batch_index,
                s.starknet_version,
                s.builtin_weights,
            )
            for s in snos
        ],
        "files": files,
    }


def describe_differences(a: dict[str, Any], b: dict[str, Any]) -> str:
    lines = []
    for kind in ("aggregator", "snos"):
        if a[kind] != b[kind]:
            lines.append(f"{kind}: {a[kind]} != {b[kind]}")
    only_a, only_b = sorted(set(a["files"]) - set(b["files"])), sorted(set(b["files"]) - set(a["files"]))
    changed = sorted(k for k in set(a["files"]) & set(b["files"]) if a["files"][k] != b["files"][k])
    if only_a or only_b or changed:
        lines.append(f"files only in the first {only_a}, only in the second {only_b}, differing {changed}")
    return "\n".join(lines)
