"""DataSubmission (SPEC §6.1): a SNOS batch's state diff, squashed over its blocks, encoded by the DA-job
encoder and stored as whole blobs; a one-block batch gives the original's blob for that block."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from madara_orchestrator.backends.memory import MemoryObjectStore, MemoryStore
from madara_orchestrator.domain.batches import SnosBatch, SnosBatchStatus
from madara_orchestrator.domain.chain import BYTES_PER_BLOB
from madara_orchestrator.domain.errors import JobError
from madara_orchestrator.domain.jobs import DaMetadata, Job, JobType
from madara_orchestrator.jobs.base import Verification
from madara_orchestrator.jobs.data_submission import DataSubmissionJobHandler
from madara_orchestrator.starknet.blob import blob_from_hex, blob_to_felts
from madara_orchestrator.starknet.da import StaticNonces, encode_state_update_for_da, parse_da_state_diff
from madara_orchestrator.starknet.rpc import RpcCall, RpcError
from madara_orchestrator.starknet.rpc_types import CONTRACT_NOT_FOUND
from madara_orchestrator.starknet.state_update import parse_state_update
from tests.conftest import require

TOKEN = 0x49D36570D4E46F48E99674BD3FCC84644DDD6B96F7C741B1562B82F9E004DC7
ACCOUNT = 0x1234


def state_update(
    block: int,
    storage: dict[int, dict[int, int]],
    *,
    nonces: dict[int, int] | None = None,
    deployed: dict[int, int] | None = None,
) -> dict[str, Any]:
    return {
        "block_hash": hex(0xB000 + block),
        "old_root": hex(0xA000 + block),
        "new_root": hex(0xA001 + block),
        "state_diff": {
            "storage_diffs": [
                {"address": hex(a), "storage_entries": [{"key": hex(k), "value": hex(v)} for k, v in e.items()]}
                for a, e in storage.items()
            ],
            "deprecated_declared_classes": [],
            "declared_classes": [],
            "deployed_contracts": [{"address": hex(a), "class_hash": hex(c)} for a, c in (deployed or {}).items()],
            "replaced_classes": [],
            "nonces": [{"contract_address": hex(a), "nonce": hex(n)} for a, n in (nonces or {}).items()],
        },
    }


class FakeSequencer:
    """The sequencer's state updates by block, and nonces by address (looked up at any block)."""

    def __init__(self, updates: dict[int, dict[str, Any]], nonces: dict[int, int] | None = None) -> None:
        self.updates = updates
        self.nonces = StaticNonces(nonces or {})

    async def block_number(self) -> int:
        return max(self.updates)

    async def chain_id(self) -> str:
        return "0x534e5f5345504f4c4941"

    async def get_block_with_tx_hashes(self, block_number: int) -> dict[str, Any]:  # pragma: no cover
        raise AssertionError("not needed")

    async def get_state_update(self, block_number: int) -> dict[str, Any]:
        return self.updates[block_number]

    async def get_nonce(self, block_number: int, address: int) -> int:
        return await self.nonces.get_nonce(block_number, address)


class FakeBatchRpc:
    """The pre-range state: class hashes and storage values at one block."""

    def __init__(self, block: int, classes: dict[int, int], storage: dict[tuple[int, int], int]) -> None:
        self.block = block
        self.classes = classes
        self.storage = storage

    async def batch(self, calls: Sequence[RpcCall]) -> list[Any | RpcError]:
        out: list[Any | RpcError] = []
        for call in calls:
            if call.method == "starknet_getClassHashAt":
                assert call.params[0] == {"block_number": self.block}
                address = int(call.params[1], 16)
                found = self.classes.get(address)
                out.append(hex(found) if found is not None else RpcError(CONTRACT_NOT_FOUND, "Contract not found"))
            else:
                assert call.method == "starknet_getStorageAt" and call.params[2] == {"block_number": self.block}
                out.append(hex(self.storage.get((int(call.params[0], 16), int(call.params[1], 16)), 0)))
        return out


class FakeDaClient:
    max_blobs_per_txn = 6
    max_bytes_per_blob = BYTES_PER_BLOB

    def __init__(self) -> None:
        self.published: list[tuple[list[bytes], bytes]] = []
        self.answer = "Pending"

    async def publish_state_diff(self, blobs: Sequence[bytes], to: bytes) -> str:
        self.published.append((list(blobs), to))
        return "0xda"

    async def verify_inclusion(self, external_id: str) -> str:
        assert external_id == "0xda"
        return self.answer


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def objects() -> MemoryObjectStore:
    return MemoryObjectStore()


async def add_batch(store: MemoryStore, index: int, start: int, end: int, version: str = "0.14.2") -> None:
    await store.insert_snos_batch(
        SnosBatch(
            index=index,
            start_block=start,
            end_block=end,
            status=SnosBatchStatus.CLOSED,
            created_at=0,
            updated_at=0,
            starknet_version=version,
        )
    )


def da_job(index: int, block: int) -> Job:
    meta = DaMetadata(block_number=block, blob_data_path=f"{index}/blob_data.txt")
    return Job.new(JobType.DATA_SUBMISSION, index, meta, now=0, orchestrator_version="0.1.0")


async def stored_felts(objects: MemoryObjectStore, path: str) -> list[int]:
    data = await objects.get(path)
    assert len(data) % BYTES_PER_BLOB == 0
    return [f for i in range(0, len(data), BYTES_PER_BLOB) for f in blob_to_felts(data[i : i + BYTES_PER_BLOB])]


async def test_a_one_block_batch_gives_the_mainnet_blob_of_that_block(
    vectors_dir: Path, store: MemoryStore, objects: MemoryObjectStore
) -> None:
    """Batch index ≠ block number (the original's quirk is fixed), blob as the original published it."""
    block = 178
    da = vectors_dir / "da"
    paths = [da / "state_update" / f"{block}.json", da / "nonces" / f"{block}.json", da / "blob" / f"{block}.hex"]
    require(all(p.is_file() for p in paths), f"DA vectors of block {block}")
    nonces = {int(item["address"]): int(item["nonce"], 16) for item in json.loads(paths[1].read_text())}
    sequencer = FakeSequencer({block: json.loads(paths[0].read_text())}, nonces)
    await add_batch(store, 3, block, block, version="0.13.2")
    handler = DataSubmissionJobHandler(sequencer=sequencer, objects=objects, db=store)
    processed = await handler.process(da_job(3, block))
    assert await objects.get("3/blob_data.txt") == blob_from_hex(paths[2].read_text())
    assert processed.external_id == "NA"
    assert isinstance(processed.specific, DaMetadata) and processed.specific.tx_hash == "NA"
    assert {b for b, _ in sequencer.nonces.calls} == {block}
    assert sorted(a for _, a in sequencer.nonces.calls) == sorted(nonces)


async def test_a_one_block_batch_is_the_da_encoding_of_that_block(
    store: MemoryStore, objects: MemoryObjectStore
) -> None:
    raw = state_update(7, {TOKEN: {5: 0, 1: 9}, ACCOUNT: {3: 4}}, nonces={TOKEN: 2}, deployed={0x77: 0xC1})
    sequencer = FakeSequencer({7: raw}, {ACCOUNT: 11})
    await add_batch(store, 1, 7, 7)
    handler = DataSubmissionJobHandler(sequencer=sequencer, objects=objects, db=store)
    await handler.process(da_job(1, 7))
    expected = await encode_state_update_for_da(
        parse_state_update(raw), block_number=7, nonce_source=StaticNonces({ACCOUNT: 11}), starknet_version="0.14.2"
    )
    assert await stored_felts(objects, "1/blob_data.txt") == expected + [0] * (4096 - len(expected))
    token = next(c for c in parse_da_state_diff(expected, legacy=False).contracts if c.address == TOKEN)
    assert (5, 0) in token.storage, "a zero write of a single block is kept, as the original keeps it (no squash)"


async def test_a_two_block_batch_publishes_the_squashed_diff(store: MemoryStore, objects: MemoryObjectStore) -> None:
    updates = {
        10: state_update(10, {TOKEN: {1: 5, 2: 6}, ACCOUNT: {3: 3}}, nonces={ACCOUNT: 1}),
        11: state_update(11, {TOKEN: {1: 8, 2: 0}, ACCOUNT: {4: 4}}, nonces={ACCOUNT: 2}),
    }
    sequencer = FakeSequencer(updates, {TOKEN: 40})
    # Before the batch: TOKEN's key 2 was already 0 (written back: unchanged), key 1 was 7.
    rpc = FakeBatchRpc(9, classes={TOKEN: 0xC0, ACCOUNT: 0xC2}, storage={(TOKEN, 1): 7, (ACCOUNT, 4): 1})
    await add_batch(store, 2, 10, 11)
    handler = DataSubmissionJobHandler(sequencer=sequencer, objects=objects, db=store, rpc=rpc)
    await handler.process(da_job(2, 10))
    diff = parse_da_state_diff(await stored_felts(objects, "2/blob_data.txt"), legacy=False)
    by_address = {c.address: c for c in diff.contracts}
    assert set(by_address) == {TOKEN, ACCOUNT}
    assert by_address[TOKEN].storage == ((1, 8),), "the later write wins; a write back to the old value is dropped"
    assert by_address[ACCOUNT].storage == ((3, 3), (4, 4))
    assert by_address[ACCOUNT].nonce == 2
    assert by_address[TOKEN].nonce == 40
    assert sequencer.nonces.calls == [(11, TOKEN)], "nonces are looked up at the batch's end block"


async def test_a_batch_of_several_blocks_needs_the_batch_rpc_unless_it_starts_at_genesis(
    store: MemoryStore, objects: MemoryObjectStore
) -> None:
    updates = {b: state_update(b, {0x1: {b + 1: b + 1}}) for b in range(4)}
    await add_batch(store, 1, 0, 1)
    await add_batch(store, 2, 2, 3)
    handler = DataSubmissionJobHandler(sequencer=FakeSequencer(updates), objects=objects, db=store)
    await handler.process(da_job(1, 0))
    diff = parse_da_state_diff(await stored_felts(objects, "1/blob_data.txt"), legacy=False)
    assert [c.storage for c in diff.contracts] == [((1, 1), (2, 2))]
    with pytest.raises(JobError, match="batch RPC") as caught:
        await handler.process(da_job(2, 2))
    assert not caught.value.retryable


async def test_a_pending_block_is_retried(store: MemoryStore, objects: MemoryObjectStore) -> None:
    pending = state_update(5, {TOKEN: {1: 1}})
    del pending["block_hash"], pending["new_root"]
    await add_batch(store, 1, 4, 5)
    updates = {4: state_update(4, {0x1: {1: 1}}), 5: pending}
    handler = DataSubmissionJobHandler(
        sequencer=FakeSequencer(updates), objects=objects, db=store, rpc=FakeBatchRpc(3, {}, {})
    )
    with pytest.raises(JobError, match=r"block 5 .* still in pending state") as caught:
        await handler.process(da_job(1, 4))
    assert caught.value.retryable
    assert not await objects.exists("1/blob_data.txt")


async def test_a_missing_snos_batch_fails_at_once(store: MemoryStore, objects: MemoryObjectStore) -> None:
    handler = DataSubmissionJobHandler(sequencer=FakeSequencer({}), objects=objects, db=store)
    with pytest.raises(JobError, match="SNOS batch 9 not found") as caught:
        await handler.process(da_job(9, 9))
    assert not caught.value.retryable


async def test_the_blob_file_is_whole_blobs_one_after_another(store: MemoryStore, objects: MemoryObjectStore) -> None:
    """Past 4096 felts the data goes on in a second blob, where the original dropped it."""
    entries = {k: k + 1 for k in range(1, 2101)}
    sequencer = FakeSequencer({0: state_update(0, {0x2: entries})})
    await add_batch(store, 1, 0, 0)
    handler = DataSubmissionJobHandler(sequencer=sequencer, objects=objects, db=store)
    await handler.process(da_job(1, 0))
    data = await objects.get("1/blob_data.txt")
    assert len(data) == 2 * BYTES_PER_BLOB
    first, second = blob_to_felts(data[:BYTES_PER_BLOB]), blob_to_felts(data[BYTES_PER_BLOB:])
    felts = first + second
    assert felts[:3] == [1, 0x2, felts[2]] and len([f for f in second if f]) > 0
    diff = parse_da_state_diff(felts, legacy=False)
    assert dict(diff.contracts[0].storage) == entries
    assert diff.n_felts == 2 + 1 + 2 * len(entries) + 1
    handler_verify = await handler.verify(dataclasses.replace(da_job(1, 0), external_id="NA"))
    assert handler_verify.status == Verification.VERIFIED


async def test_more_than_six_blobs_of_data_fails_without_retry(store: MemoryStore, objects: MemoryObjectStore) -> None:
    entries = {k: 1 for k in range(1, 6 * 2048 + 1)}
    await add_batch(store, 1, 0, 0)
    handler = DataSubmissionJobHandler(
        sequencer=FakeSequencer({0: state_update(0, {0x2: entries})}), objects=objects, db=store
    )
    with pytest.raises(JobError, match="MaxBlobsLimitExceeded") as caught:
        await handler.process(da_job(1, 0))
    assert not caught.value.retryable
    assert not await objects.exists("1/blob_data.txt")


async def test_without_a_da_client_verification_rereads_the_blob_file(
    store: MemoryStore, objects: MemoryObjectStore
) -> None:
    handler = DataSubmissionJobHandler(sequencer=FakeSequencer({}), objects=objects, db=store)
    job = dataclasses.replace(da_job(1, 0), external_id="NA")
    missing = await handler.verify(job)
    assert missing.status == Verification.REJECTED and "blob data file 1/blob_data.txt" in missing.reason
    assert "missing" in missing.reason
    await objects.put("1/blob_data.txt", b"\x00" * 100)
    assert (await handler.verify(job)).status == Verification.REJECTED
    await objects.put("1/blob_data.txt", b"\x00" * BYTES_PER_BLOB)
    assert (await handler.verify(job)).status == Verification.VERIFIED


async def test_a_da_client_publishes_the_blobs_and_is_asked_for_inclusion(
    store: MemoryStore, objects: MemoryObjectStore
) -> None:
    client = FakeDaClient()
    await add_batch(store, 1, 0, 0)
    handler = DataSubmissionJobHandler(
        sequencer=FakeSequencer({0: state_update(0, {0x2: {1: 2}})}), objects=objects, db=store, da_client=client
    )
    processed = await handler.process(da_job(1, 0))
    assert processed.external_id == "0xda"
    assert isinstance(processed.specific, DaMetadata) and processed.specific.tx_hash == "0xda"
    [(blobs, to)] = client.published
    assert to == bytes(32) and b"".join(blobs) == await objects.get("1/blob_data.txt")
    job = dataclasses.replace(da_job(1, 0), external_id="0xda")
    assert (await handler.verify(job)).status == Verification.PENDING
    client.answer = "Rejected: blob not found"
    rejected = await handler.verify(job)
    assert rejected.status == Verification.REJECTED and rejected.reason == "blob not found"
    client.answer = "Verified"
    assert (await handler.verify(job)).status == Verification.VERIFIED
