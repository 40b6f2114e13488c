"""Many L3 orchestrators on one PostgreSQL, settling on Starknet, killed with SIGKILL at random and restarted.

The L3 form of ``test_chaos.py``: three ``orchestrator run --layer l3`` processes share a throwaway
PostgreSQL database and an object store; a devnet sequencer makes the blocks, the mock Atlantic server
proves them and verifies each proof "on the L2" (registering the layout bridge's fact on the Starknet
double with the verifier's account), and the double's core contract accepts an ``update_state`` only if it
follows the last settled block. Every few seconds one process is killed and started again. At the end:
every block settled, each SNOS batch exactly once (no reverted or duplicate ``update_state``), no operator
nonce gap, no job left anywhere but Completed, one prover query per proving job. The counts are printed.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from madara_orchestrator.devnet.l2_fact_registrar import StarknetFactRegistrar
from madara_orchestrator.devnet.mock_atlantic import L2_VERIFICATION, MockAtlanticConfig, MockAtlanticServer
from madara_orchestrator.devnet.sequencer import DevnetSequencer
from madara_orchestrator.devnet.starknet_l2 import OPERATOR_ACCOUNT, VERIFIER_ACCOUNT, StarknetL2Double
from madara_orchestrator.server.background import BackgroundServer, free_port
from tests.e2e.test_chaos import (
    FAST_RECOVERY,
    _pg_query,
    _report,
    _wait_all_completed,
    kill_and_restart,
    wait_serving,
)
from tests.e2e.test_run_l3 import l3_args
from tests.helpers.cluster import Instance, stalled_report
from tests.helpers.depth import chaos

BLOCKS = chaos(full=40, default=16)
"""SNOS batches of 2 blocks, each with its proof, L2 verification and settlement (no aggregator on an L3):
20 of each under ``MADARA_TEST_DEPTH=deep``, 8 in ``make test``."""
BATCHES = BLOCKS // 2
INSTANCES = 3
MIN_KILLS = chaos(full=12, default=8)
"""One kill every 1–3 s (seeded). The default 8 kill each of the three instances at least twice (seed 10
names them 3, 3 and 2 times; one still starting passes its turn), in the middle of proving, L2 verification
and settlement; the full 12, over 40 blocks, make the rarer moments (between signing and sending an
``update_state``) likely. ``CHAOS_KILLS`` overrides it."""
TIMEOUT_S = float(os.environ.get("CHAOS_TIMEOUT_S", "420"))


def l3_chaos_args(l2_url: str, double: StarknetL2Double, atlantic: MockAtlanticServer, storage: Path) -> list[str]:
    return ["--storage-dir", str(storage), *FAST_RECOVERY, *l3_args(l2_url, double, atlantic)]


def _has_settled_through(double: StarknetL2Double, block: int) -> bool:
    settled = double.state.last_settled_block
    return settled is not None and settled >= block


async def _run_until_settled(
    instances: Sequence[Instance], double: StarknetL2Double, rng: random.Random, min_kills: int, started: float
) -> None:
    """Kill a random instance every 1–3 s (and start it again) until the kills are done and every block settled."""
    kills = 0
    while True:
        elapsed = time.monotonic() - started
        if elapsed >= TIMEOUT_S:
            raise AssertionError(await stalled_report(instances, f"not settled after {TIMEOUT_S} s"))
        if _has_settled_through(double, BLOCKS - 1) and kills >= min_kills:
            return
        await asyncio.sleep(rng.uniform(1.0, 3.0))
        if kills < min_kills:
            await kill_and_restart(instances, rng, started)
            kills += 1
        for instance in instances:
            if not instance.running():
                raise AssertionError(_report(instances, f"{instance.name} exited by itself"))


@pytest.mark.slow
async def test_three_l3_instances_on_postgres_survive_sigkills(tmp_path: Path, postgres_url: str) -> None:
    seed = int(os.environ.get("CHAOS_SEED", "10"))
    min_kills = int(os.environ.get("CHAOS_KILLS", str(MIN_KILLS)))
    rng = random.Random(seed)
    query = _pg_query(postgres_url)
    label = "l3 postgres"

    double = StarknetL2Double()
    l2 = BackgroundServer(double.app)
    await l2.start()
    registrar = StarknetFactRegistrar(
        rpc_url=l2.url,
        account_address=VERIFIER_ACCOUNT.address,
        private_key=VERIFIER_ACCOUNT.private_key,
        registry_address=double.fact_registry_address,
    )
    sequencer = DevnetSequencer(block_time_s=0.4, tx_per_block=3)
    seq_server = BackgroundServer(sequencer.app)
    await seq_server.start()
    key_file = tmp_path / "starknet.key"
    key_file.write_text(hex(OPERATOR_ACCOUNT.private_key) + "\n")
    try:
        async with MockAtlanticServer(MockAtlanticConfig(processing_s=0.3), l2_fact_registry=registrar) as atlantic:
            common = l3_chaos_args(l2.url, double, atlantic, tmp_path / "objects")
            instances = [
                Instance(
                    name=f"chaos-l3-{n}",
                    port=free_port(),
                    argv=["--data-dir", str(tmp_path / f"data-{n}"), *common],
                    env={
                        "MADARA_ORCHESTRATOR_MADARA_RPC_URL": seq_server.url,
                        "MADARA_ORCHESTRATOR_STARKNET_PRIVATE_KEY_FILE": str(key_file),
                        "MADARA_ORCHESTRATOR_ATLANTIC_API_KEY": "k",
                        "MADARA_ORCHESTRATOR_POSTGRES_URL": postgres_url,
                    },
                    log_dir=tmp_path,
                )
                for n in range(INSTANCES)
            ]
            started = time.monotonic()
            try:
                for instance in instances:
                    await instance.start()
                for instance in instances:
                    await wait_serving([instance], started)
                sequencer.start_producing(max_blocks=BLOCKS)
                await _run_until_settled(instances, double, rng, min_kills, started)
                await _wait_all_completed(instances[0], query)
            finally:
                for instance in instances:
                    await instance.stop()
                await sequencer.stop_producing()
            queries = list(atlantic.state.queries.values())
    finally:
        await seq_server.stop()
        await l2.stop()

    # -- the checks ----------------------------------------------------------------------------------
    rows = await query("SELECT job_type, status, count(*) AS n FROM jobs GROUP BY job_type, status")
    by_status = {(r["job_type"], r["status"]): r["n"] for r in rows}
    assert {s for (_, s) in by_status} == {"Completed"}, f"jobs not Completed: {by_status}"
    counts = {t: n for (t, _), n in by_status.items()}
    expected = ("SnosRun", "ProofCreation", "ProofRegistration", "DataSubmission", "StateTransition")
    assert counts == dict.fromkeys(expected, BATCHES), counts

    assert double.update_state_count == BATCHES, f"update_state executed {double.update_state_count} times"
    operator = [tx for tx in double.transactions if tx.sender_address == OPERATOR_ACCOUNT.address]
    reverted = [(tx.nonce, tx.revert_reason) for tx in operator if tx.is_reverted]
    assert not reverted, f"reverted operator transactions (nonce, reason): {reverted}"
    assert [tx.nonce for tx in operator] == list(range(BATCHES)), [tx.nonce for tx in operator]
    nonce = double.nonce_of(OPERATOR_ACCOUNT.address)
    assert nonce == len(operator) == BATCHES, f"operator nonce {nonce}, {len(operator)} operator transactions"
    settled_ranges = await query("SELECT internal_id FROM jobs WHERE job_type = 'StateTransition' ORDER BY internal_id")
    assert [r["internal_id"] for r in settled_ranges] == list(range(1, BATCHES + 1))

    proving = [q for q in queries if q.data["result"] != L2_VERIFICATION and q.pie is not None]
    per_job: dict[str, int] = {}
    for q in proving:
        per_job[q.data["dedupId"]] = per_job.get(q.data["dedupId"], 0) + 1
    assert len(per_job) == BATCHES and set(per_job.values()) == {1}, f"prover queries per job: {per_job}"
    # L2 verification queries carry no dedupId: each registration's own query is the one that must be DONE.
    verifications = {q.data["id"]: q.data["status"] for q in queries if q.data["result"] == L2_VERIFICATION}
    registrations = await query("SELECT internal_id, external_id FROM jobs WHERE job_type = 'ProofRegistration'")
    not_done = {
        r["internal_id"]: verifications.get(r["external_id"])
        for r in registrations
        if verifications.get(r["external_id"]) != "DONE"
    }
    assert not not_done, f"ProofRegistration jobs whose L2 verification query is not DONE: {not_done}"

    taken_back = 0
    for instance in instances:
        text = instance.log.read_text(errors="replace")
        assert "Traceback" not in text, instance.log_tail()
        taken_back += text.count("taking back")
    verifier_txs = sum(1 for tx in double.transactions if tx.sender_address == VERIFIER_ACCOUNT.address)
    print(
        f"\n[{label}] seed={seed} blocks_settled={BLOCKS} settlements={len(operator)} reverted=0 "
        f"kills={sum(i.kills for i in instances)} ({', '.join(str(i.kills) for i in instances)}) "
        f"restarts={sum(i.starts for i in instances) - INSTANCES} "
        f"prover_queries={len(proving)} l2_verifications={len(verifications)} fact_registrations={verifier_txs} "
        f"jobs={sum(counts.values())} took_back={taken_back} seconds={time.monotonic() - started:.0f}"
    )
