"""Devnet adapters: the simplest SNOS runner, aggregator, prover and settlement that work end to end.

They are stand-ins for the Starknet OS (a Cairo VM run), a proving service and the L1 core contract,
named ``Devnet*`` so they are never mistaken for the real ones. They keep the real data shapes: the
OS output layout of SPEC §6.6 (header, messages, state diff), GPS facts computed as the core contract
does, and settlement that checks block continuity and persists its last block.
"""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import zipfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from Crypto.Hash import keccak

from madara_orchestrator.devnet.program_output import (
    DEVNET_OS_PROGRAM_HASH,
    build_program_output,
    devnet_config_hash,
    spanning_header,
)
from madara_orchestrator.domain.chain import BYTES_PER_BLOB as BLOB_BYTES
from madara_orchestrator.domain.errors import JobError, OrchestratorError, OutOfTurn
from madara_orchestrator.domain.proving import (
    AggregationArtifacts,
    CreateJob,
    ProverTask,
    RunAggregationWithPie,
    TaskStatus,
    TaskType,
)
from madara_orchestrator.interfaces import (
    AggregationInput,
    AggregationResult,
    BatchRpc,
    SequencerRpc,
    SettlementResult,
    SnosResult,
)
from madara_orchestrator.provers.tasks import TaskDispatch
from madara_orchestrator.settlement.encoding import program_output_fact
from madara_orchestrator.snos.contract import typed_run
from madara_orchestrator.starknet.aliases import compress_state_update
from madara_orchestrator.starknet.blob import felts_to_blobs
from madara_orchestrator.starknet.felt import STARKNET_PRIME as FELT_PRIME
from madara_orchestrator.starknet.rpc import RpcCall, RpcError
from madara_orchestrator.starknet.rpc_types import block_id
from madara_orchestrator.starknet.squash import squash_state_updates
from madara_orchestrator.starknet.state_update import StateUpdate, parse_state_update


def _keccak(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


DEVNET_AGGREGATOR_PROGRAM_HASH = int.from_bytes(_keccak(b"madara-orchestrator devnet aggregator"), "big") % FELT_PRIME
"""The program hash the aggregator's facts are made with: the devnet core contract is deployed with it."""
HEADER_LEN = 12
"""Header words of the devnet OS output: the ten of SPEC §6.6 plus the two (empty) message counts."""


def gps_fact(program_hash: int, output: Sequence[int]) -> str:
    """The fact of a single-page output, as the core contract checks it."""
    return "0x" + program_output_fact(program_hash, output).hex()


def devnet_state_diff_felts(state_update: Mapping[str, Any]) -> list[int]:
    """A plain encoding of a state diff: contracts (address, n_storage, key/value..., nonce, class),
    then declared classes. The real DA encoding lives in ``starknet/``; this only has to round-trip."""
    diff = state_update.get("state_diff") or {}
    contracts: dict[int, dict[str, Any]] = {}

    def contract(address: str) -> dict[str, Any]:
        return contracts.setdefault(int(address, 16), {"storage": {}, "nonce": 0, "class": 0})

    for entry in diff.get("storage_diffs", []):
        for item in entry.get("storage_entries", []):
            contract(entry["address"])["storage"][int(item["key"], 16)] = int(item["value"], 16)
    for entry in diff.get("nonces", []):
        contract(entry["contract_address"])["nonce"] = int(entry["nonce"], 16)
    for entry in diff.get("deployed_contracts", []) + diff.get("replaced_classes", []):
        contract(entry["address"])["class"] = int(entry["class_hash"], 16)
    felts = [len(contracts)]
    for address in sorted(contracts):
        data = contracts[address]
        felts += [address, len(data["storage"])]
        for key in sorted(data["storage"]):
            felts += [key, data["storage"][key]]
        felts += [data["nonce"], data["class"]]
    declared = sorted(
        (int(c["class_hash"], 16), int(c["compiled_class_hash"], 16)) for c in diff.get("declared_classes", [])
    )
    felts.append(len(declared))
    for class_hash, compiled in declared:
        felts += [class_hash, compiled]
    return felts


def devnet_pie(kind: str, output: Sequence[int], *, program_hash: int | None = None, **info: Any) -> bytes:
    """A zip marked as a devnet artefact; it is not a Cairo PIE and no prover would accept it. It records
    ``program_hash``, the hash of the program it stands for, when given (the mock Atlantic server proves a
    stand-in under it, as the bootloader would the program)."""
    body: dict[str, Any] = {"devnet": kind, **info, "output": [hex(w) for w in output]}
    if program_hash is not None:
        body["program_hash"] = hex(program_hash)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("devnet.json", json.dumps(body))
    return buffer.getvalue()


def devnet_os_output(
    updates: Sequence[Mapping[str, Any]],
    *,
    start_block: int,
    end_block: int,
    previous_block_hash: int,
    state_diff: Sequence[int] | None = None,
    config_hash: int | None = None,
) -> list[int]:
    """The devnet OS output of blocks ``start_block..=end_block`` from their state updates: the header of
    SPEC §6.6 (no KZG DA, full output), no messages, then ``state_diff`` (default: each update's devnet
    diff, ``devnet_state_diff_felts``). Pure; the test SNOS runner program builds its output with it too."""
    if state_diff is None:
        state_diff = [len(updates)]
        for update in updates:
            state_diff += devnet_state_diff_felts(update)
    return [
        int(updates[0]["old_root"], 16),
        int(updates[-1]["new_root"], 16),
        start_block - 1 if start_block > 0 else FELT_PRIME - 1,
        end_block,
        previous_block_hash,
        int(updates[-1]["block_hash"], 16),
        DEVNET_OS_PROGRAM_HASH,
        devnet_config_hash() if config_hash is None else config_hash,
        0,  # use_kzg_da
        1,  # full_output
        0,  # L2 -> L1 messages
        0,  # L1 -> L2 messages
        *state_diff,
    ]


class DevnetSnosRunner:
    """Builds the OS output of a block range from the sequencer's state updates, over its RPC."""

    def __init__(
        self,
        sequencer: SequencerRpc,
        *,
        failures: dict[int, int] | None = None,
        config_hash: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        """``failures`` maps a block to how many runs touching it fail (with an OS execution error).
        ``config_hash`` gives the chain's OS config hash (its chain id, fee token and DA keys), which the
        output carries as the OS's does; without it, the devnet chain's (``devnet_config_hash()``)."""
        self.sequencer = sequencer
        self.failures = failures if failures is not None else {}
        self._config_hash = config_hash

    async def is_ready(self) -> bool:
        try:
            await self.sequencer.chain_id()
        except OrchestratorError:
            return False
        return True

    @typed_run  # the sequencer's errors as the SnosRun handler reads them (SPEC §2.8)
    async def run(self, start_block: int, end_block: int) -> SnosResult:
        for block in range(start_block, end_block + 1):
            if self.failures.get(block, 0) > 0:
                self.failures[block] -= 1
                raise JobError(
                    f"Snos Error: OS execution failed for block {block} (devnet failure injection)", retryable=False
                )
        updates = [await self.sequencer.get_state_update(b) for b in range(start_block, end_block + 1)]
        previous = await self.sequencer.get_block_with_tx_hashes(start_block - 1) if start_block > 0 else None
        output = devnet_os_output(
            updates,
            start_block=start_block,
            end_block=end_block,
            previous_block_hash=int(previous["block_hash"], 16) if previous else 0,
            config_hash=devnet_config_hash() if self._config_hash is None else await self._config_hash(),
        )
        return SnosResult(
            cairo_pie_zip=devnet_pie(
                "snos", output, program_hash=DEVNET_OS_PROGRAM_HASH, start_block=start_block, end_block=end_block
            ),
            os_output=output,
            program_output=output,
            fact=gps_fact(DEVNET_OS_PROGRAM_HASH, output),
            n_steps=100_000 + 1_000 * len(output),
        )


@dataclass(kw_only=True, eq=False, repr=False)
class DevnetAggregatorRunner:
    """Joins the children's outputs: first block's pre-state to last block's post-state, under the children's
    OS program hash and OS config hash (the aggregator outputs them as it checked them).

    With ``rpc`` the DA segment is what a real aggregator publishes: the batch's state diff squashed
    (SPEC §5.5) and compressed as batching does (§5.6: aliases, §5.8 encoding, stateless compression),
    read from the sequencer over ``rpc``. Without it, the children's devnet diffs appended.
    With ``kzg_da`` the output carries a real KZG section for the blobs of its DA segment (SPEC §6.6),
    which the devnet core contract checks against the blobs of the settlement transaction."""

    kzg_da: bool = False
    rpc: BatchRpc | None = None

    async def is_ready(self) -> bool:
        return True

    async def run(self, batch: AggregationInput) -> AggregationResult:
        return await self.aggregate([child.os_output for child in batch.children])

    async def aggregate(self, children_program_outputs: Sequence[Sequence[int]]) -> AggregationResult:
        """The aggregation of the children's outputs (the SNOS PIEs are not read: they are stand-ins too)."""
        if not children_program_outputs:
            raise JobError("aggregation needs at least one child output", retryable=False)
        first, last = children_program_outputs[0], children_program_outputs[-1]
        if self.rpc is not None:
            start = 0 if first[2] == FELT_PRIME - 1 else first[2] + 1
            da_segment = await self.compressed_state_diff(start, last[3])
        else:
            da_segment = [len(children_program_outputs)]
            for child in children_program_outputs:
                da_segment += list(child[HEADER_LEN:])
        if self.kzg_da:
            header = spanning_header(first, last)
            blobs = felts_to_blobs(da_segment)
            output = await asyncio.to_thread(build_program_output, header, blobs)
            return AggregationResult(
                cairo_pie_zip=devnet_pie("aggregator", output, children=len(children_program_outputs)),
                program_output=output,
                da_segment=da_segment,
                fact=gps_fact(DEVNET_AGGREGATOR_PROGRAM_HASH, output),
            )
        output = [*first[:5], last[5], first[6], first[7], 0, 0, 0, 0]
        output[1], output[3] = last[1], last[3]
        return AggregationResult(
            cairo_pie_zip=devnet_pie("aggregator", output, children=len(children_program_outputs)),
            program_output=output,
            da_segment=da_segment,
            fact=gps_fact(DEVNET_AGGREGATOR_PROGRAM_HASH, output),
        )

    async def compressed_state_diff(self, start_block: int, end_block: int) -> list[int]:
        """The squashed, compressed state diff of blocks ``start_block..=end_block``, read over ``rpc``."""
        rpc = self.rpc
        if rpc is None:
            raise JobError("the devnet aggregator has no sequencer RPC to read state updates from", retryable=False)
        if end_block < start_block:
            raise JobError(f"aggregation over an empty block range {start_block}..{end_block}", retryable=False)
        blocks = range(start_block, end_block + 1)
        calls = [RpcCall("starknet_getStateUpdate", {"block_id": block_id(b)}) for b in blocks]
        calls += [RpcCall("starknet_getBlockWithTxHashes", {"block_id": block_id(b)}) for b in blocks]
        try:
            results = await rpc.batch(calls)
            updates: list[StateUpdate] = []
            versions: set[str] = set()
            for i, block in enumerate(blocks):
                update, header = results[i], results[len(blocks) + i]
                for what, result in (("state update", update), ("block", header)):
                    if isinstance(result, RpcError):
                        raise JobError(f"reading the {what} of block {block} for aggregation failed: {result}")
                updates.append(parse_state_update(update, f"state update of block {block}"))
                versions.add(str(header.get("starknet_version", "")) if isinstance(header, dict) else "")
            if len(versions) != 1:
                raise JobError(
                    f"blocks {start_block}..{end_block} have different Starknet versions {sorted(versions)}; "
                    "an aggregator batch has one version",
                    retryable=False,
                )
            squashed = await squash_state_updates(
                updates, pre_range_block=start_block - 1 if start_block > 0 else None, rpc=rpc
            )
            return await compress_state_update(
                squashed, starknet_version=versions.pop(), reference_block=end_block, rpc=rpc
            )
        except JobError:
            raise
        except OrchestratorError as exc:
            raise JobError(f"building the DA segment of blocks {start_block}..{end_block} failed: {exc}") from exc


class DevnetProver(TaskDispatch):
    """Accepts every task and reports it proven after ``latency_s`` (measured in this process)."""

    def __init__(self, *, latency_s: float = 0.0) -> None:
        self.latency_s = latency_s
        self._submitted: dict[str, float] = {}

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def unsupported(self, task: ProverTask) -> Exception:
        return JobError("the devnet prover aggregates locally; it has no buckets", retryable=False)

    async def _submit_job(self, task: CreateJob) -> str:
        return self._submitted_key(task.dedup_id)

    async def _submit_aggregation_pie(self, task: RunAggregationWithPie) -> str:
        if not task.fact_hash:
            raise JobError("aggregation needs a fact", retryable=False)
        return self._submitted_key(task.fact_hash)

    def _submitted_key(self, key: str) -> str:
        self._submitted.setdefault(key, self._now())
        return key

    async def get_task_status(self, task_type: TaskType, job_key: str, fact: str | None = None) -> TaskStatus:
        submitted = self._submitted.setdefault(job_key, self._now())
        if self._now() - submitted < self.latency_s:
            return TaskStatus.processing()
        return TaskStatus.succeeded()

    async def get_proof(self, task_id: str) -> str:
        return json.dumps({"devnet_proof": task_id})

    async def submit_l2_query(
        self, task_id: str, proof: str, n_steps: int | None, *, dedup_id: str | None = None
    ) -> str:
        return f"devnet-l2-{task_id}"

    async def get_aggregation_artifacts(self, external_id: str, include_proof: bool) -> AggregationArtifacts:
        return AggregationArtifacts(proof=(await self.get_proof(external_id)).encode() if include_proof else None)


class SettlementRejected(OrchestratorError):
    pass


TURN_POLL_S = 0.05
TURN_TIMEOUT_S = 30.0
"""How often, and how long, a devnet settlement waits for the one before it (several in flight)."""


class DevnetSettlement:
    """The core contract's bookkeeping, persisted in a SQLite file so restarts and instances agree.

    It checks what the contract checks about blocks: the output's previous block is the last settled one."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS devnet_settlements (idempotency_key TEXT PRIMARY KEY,"
                " tx_hash TEXT NOT NULL, new_block INTEGER NOT NULL, n_blobs INTEGER NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=15, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def _last(self, conn: sqlite3.Connection) -> int | None:
        row = conn.execute("SELECT MAX(new_block) FROM devnet_settlements").fetchone()
        return None if row[0] is None else int(row[0])

    async def last_settled_block(self) -> int | None:
        def read() -> int | None:
            with self._connect() as conn:
                return self._last(conn)

        return await asyncio.to_thread(read)

    async def _await_turn(self, key: str, after: str) -> None:
        """Several in flight: a settlement is written only after the one it follows (the ledger settles at
        once, so "broadcast" is "written"); ``OutOfTurn`` after ``TURN_TIMEOUT_S``."""

        def written() -> bool:
            with self._connect() as conn:
                row = conn.execute("SELECT 1 FROM devnet_settlements WHERE idempotency_key = ?", (after,))
                return row.fetchone() is not None

        loop = asyncio.get_running_loop()
        deadline = loop.time() + TURN_TIMEOUT_S
        while not await asyncio.to_thread(written):
            if loop.time() >= deadline:
                raise OutOfTurn(f"devnet settlement {key} waits for {after} before it", wait_s=1.0)
            await asyncio.sleep(TURN_POLL_S)

    async def update_state_with_blobs(
        self,
        program_output: Sequence[int],
        blobs: Sequence[bytes],
        *,
        idempotency_key: str,
        after_key: str | None = None,
    ) -> SettlementResult:
        if after_key is not None:
            await self._await_turn(idempotency_key, after_key)
        if len(program_output) < 4:
            raise SettlementRejected("devnet settlement: program output too short to hold block numbers")
        if not blobs or any(len(b) != BLOB_BYTES for b in blobs):
            raise SettlementRejected(f"devnet settlement: every blob must be {BLOB_BYTES} bytes")
        prev_block, new_block = program_output[2], program_output[3]
        tx_hash = (
            "0x" + _keccak(idempotency_key.encode() + b"".join(w.to_bytes(32, "big") for w in program_output)).hex()
        )

        def write() -> SettlementResult:
            with self._connect() as conn:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    row = conn.execute(
                        "SELECT tx_hash FROM devnet_settlements WHERE idempotency_key = ?", (idempotency_key,)
                    ).fetchone()
                    if row is not None:
                        conn.execute("COMMIT")
                        return SettlementResult(tx_hash=row[0])
                    last = self._last(conn)
                    expected = FELT_PRIME - 1 if last is None else last
                    if prev_block != expected or new_block <= (-1 if last is None else last):
                        raise SettlementRejected(
                            f"devnet settlement rejected: output moves blocks {prev_block} -> {new_block}, "
                            f"but the last settled block is {last}"
                        )
                    conn.execute(
                        "INSERT INTO devnet_settlements VALUES (?,?,?,?)",
                        (idempotency_key, tx_hash, new_block, len(blobs)),
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            return SettlementResult(tx_hash=tx_hash)

        return await asyncio.to_thread(write)

    async def update_state_calldata(
        self,
        snos_output: Sequence[int],
        program_output: Sequence[int],
        *,
        idempotency_key: str,
        after_key: str | None = None,
    ) -> SettlementResult:
        raise SettlementRejected("devnet settlement takes blobs only")

    async def verify_tx_inclusion(self, tx_hash: str) -> str:
        def read() -> bool:
            with self._connect() as conn:
                return (
                    conn.execute("SELECT 1 FROM devnet_settlements WHERE tx_hash = ?", (tx_hash,)).fetchone()
                    is not None
                )

        return "Verified" if await asyncio.to_thread(read) else "Pending"

    async def blob_count(self) -> int:
        def read() -> int:
            with self._connect() as conn:
                return int(conn.execute("SELECT COALESCE(SUM(n_blobs), 0) FROM devnet_settlements").fetchone()[0])

        return await asyncio.to_thread(read)
