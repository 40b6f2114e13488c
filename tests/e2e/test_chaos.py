"""Many orchestrators on one PostgreSQL, killed with SIGKILL at random moments and restarted (issue 10).

Three ``orchestrator run`` processes share a throwaway PostgreSQL cluster (and, in the second test, SQS
queues and an S3 bucket on a moto server); a devnet sequencer makes the blocks, the mock Atlantic server
proves them (registering the aggregator facts on anvil), and anvil's core contract accepts a settlement
only if it follows the last settled block. Every few seconds one process is killed and started again.
At the end: every block settled, each exactly once and in order (no reverted or duplicate settlement), no
nonce gap, no job left anywhere but Completed, one prover query per proving job. The counts are printed.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from madara_orchestrator.devnet.anvil import DEV_PRIVATE_KEYS
from madara_orchestrator.devnet.mock_atlantic import (
    MockAtlanticConfig,
    MockAtlanticServer,
    mock_aggregator_program_hash,
)
from madara_orchestrator.devnet.sequencer import DevnetSequencer
from madara_orchestrator.server.background import BackgroundServer, free_port
from tests.e2e.test_run_provers import LocalL1, atlantic_args, local_l1, settlement_args
from tests.helpers.cluster import Instance, stalled_report
from tests.helpers.depth import chaos, deep

BLOCKS = chaos(full=60, default=24)
"""Aggregator batches of 4 blocks, SNOS batches of 2: under ``MADARA_TEST_DEPTH=deep`` 15 settlements and 30
proofs; in ``make test`` 6 settlements and 12 proofs, enough for every stage to run while instances die."""
SETTLEMENTS = BLOCKS // 4
PROOFS = BLOCKS // 2
INSTANCES = 3
MIN_KILLS = chaos(full=20, default=8)
"""One kill every 1–3 s (seeded) while blocks are made and settled. The default 8 kill each of the three
instances at least twice (seed 10 names them 3, 3 and 2 times; one still starting passes its turn), so
restarts take back jobs they held in more than one stage ("taking back" is counted below) and another
instance takes over the others' leases; the full 20, over 60 blocks, make the rarer moments (between signing
and sending a settlement, inside a batching run) likely.
``CHAOS_KILLS`` and ``CHAOS_SEED`` override the count and the seed."""
TIMEOUT_S = float(os.environ.get("CHAOS_TIMEOUT_S", "420"))


FAST_RECOVERY = [
    "--max-blocks-per-snos-batch",
    "2",
    "--verification-poll-seconds",
    "0.5",
    "--chain-poll-interval-seconds",
    "0.2",
    "--retry-base-delay-seconds",
    "0.5",
    "--heal-interval-seconds",
    "2",
    "--heal-stale-after-seconds",
    "15",
    # Short leases: a job whose worker was killed is taken over soon by another instance.
    "--snos-job-timeout-seconds",
    "10",
    "--proving-job-timeout-seconds",
    "10",
    "--state-transition-timeout-seconds",
    "20",
    "--batching-worker-lock-duration",
    "6",
]
"""The flags of a chaos run, either layer: short polls, leases and heal delays."""


def chaos_args(l1: LocalL1, atlantic: MockAtlanticServer, storage: Path) -> list[str]:
    return [
        "--storage-dir",
        str(storage),
        "--max-batch-size",
        "4",
        *FAST_RECOVERY,
        "--aggregator-job-timeout-seconds",
        "10",
        *atlantic_args(atlantic),
        *settlement_args(l1),
    ]


HEAL_SWEEP_OFF = ["--heal-interval-seconds", "86400"]
"""No heal sweep during the run: a message lost between a job's write and its send would never be re-sent."""
ONLY_DEEP = pytest.mark.skipif(
    not deep(), reason="make test-deep: each chaos case without the heal sweep is in the suite, on SQS here"
)
"""The suite runs the production default (PostgreSQL, heal sweep on) and the outbox's strictest case (SQS
through the relay, heal sweep off); ``make test-deep`` adds PostgreSQL's queue without the heal sweep and SQS
with it."""
HEAL_SENT = "heal: re-sent"


async def run_chaos(
    tmp_path: Path,
    *,
    backend_args: Sequence[str],
    env: dict[str, str],
    label: str,
    query: Any,
    heal: bool = True,
) -> None:
    """``query(sql)`` reads the shared PostgreSQL (the jobs table) for the final checks. ``heal=False``: the
    heal sweep is switched off, so every message must come from the job's own transaction (the outbox)."""
    seed = int(os.environ.get("CHAOS_SEED", "10"))
    min_kills = int(os.environ.get("CHAOS_KILLS", str(MIN_KILLS)))
    rng = random.Random(seed)
    sequencer = DevnetSequencer(block_time_s=0.4, tx_per_block=3)
    seq_server = BackgroundServer(sequencer.app)
    await seq_server.start()
    storage = tmp_path / "objects"
    ports = [free_port() for _ in range(INSTANCES)]
    key_file = tmp_path / "atlantic-api-key"
    key_file.write_text("test-key\n")
    async with (
        local_l1(tmp_path, program_hash=mock_aggregator_program_hash()) as l1,
        MockAtlanticServer(
            MockAtlanticConfig(processing_s=0.3, api_key="test-key", webhook_url=None),
            fact_registry=l1.fact_registry(),
        ) as atlantic,
    ):
        common = [*chaos_args(l1, atlantic, storage), *backend_args, *([] if heal else HEAL_SWEEP_OFF)]
        instances = [
            Instance(
                name=f"chaos-{n}",
                port=port,
                argv=["--data-dir", str(tmp_path / f"data-{n}"), *common],
                env={
                    "MADARA_ORCHESTRATOR_MADARA_RPC_URL": seq_server.url,
                    "MADARA_ORCHESTRATOR_ATLANTIC_API_KEY_FILE": str(key_file),
                    **env,
                },
                log_dir=tmp_path,
            )
            for n, port in enumerate(ports)
        ]
        started = time.monotonic()
        try:
            for instance in instances:
                await instance.start()
            for instance in instances:
                await wait_serving([instance], started)
            sequencer.start_producing(max_blocks=BLOCKS)
            kills = 0
            while True:
                elapsed = time.monotonic() - started
                if elapsed >= TIMEOUT_S:
                    what = f"not settled after {TIMEOUT_S} s" + await database_state(query)
                    raise AssertionError(await stalled_report(instances, what))
                settled = await l1.state_block_number()
                if settled >= BLOCKS - 1 and kills >= min_kills:
                    break
                await asyncio.sleep(rng.uniform(1.0, 3.0))
                if kills < min_kills:
                    await kill_and_restart(instances, rng, started)
                    kills += 1
                for instance in instances:
                    if not instance.running():
                        raise AssertionError(_report(instances, f"{instance.name} exited by itself"))
            await _wait_all_completed(instances[0], query)
        finally:
            for instance in instances:
                await instance.stop()
            await sequencer.stop_producing()
            await seq_server.stop()

        # -- the checks ------------------------------------------------------------------------------
        rows = await query("SELECT job_type, status, count(*) AS n FROM jobs GROUP BY job_type, status")
        by_status = {(r["job_type"], r["status"]): r["n"] for r in rows}
        assert {s for (_, s) in by_status} == {"Completed"}, f"jobs not Completed: {by_status}"
        counts = {t: n for (t, _), n in by_status.items()}
        expected = {"SnosRun": PROOFS, "ProofCreation": PROOFS}
        expected |= {"Aggregator": SETTLEMENTS, "StateTransition": SETTLEMENTS}
        assert counts == expected, counts

        operator = await _operator_transactions(l1)
        statuses = [int(r["status"], 16) for r in operator]
        assert statuses == [1] * SETTLEMENTS, f"settlement transactions (1 = success): {statuses}"
        settled_ranges = await query(
            "SELECT internal_id FROM jobs WHERE job_type = 'StateTransition' ORDER BY internal_id"
        )
        assert [r["internal_id"] for r in settled_ranges] == list(range(1, SETTLEMENTS + 1))
        latest = int(await l1.rpc.request("eth_getTransactionCount", [operator_address(), "latest"]), 16)
        pending = int(await l1.rpc.request("eth_getTransactionCount", [operator_address(), "pending"]), 16)
        assert latest == pending == SETTLEMENTS, (
            f"operator nonces: latest {latest}, pending {pending} (a gap leaves some)"
        )

        state = atlantic.state
        children = [q for q in state.queries.values() if q.data["bucketJobIndex"] is not None]
        per_job: dict[str, int] = {}
        for q in children:
            per_job[q.data["dedupId"]] = per_job.get(q.data["dedupId"], 0) + 1
        assert len(per_job) == PROOFS and set(per_job.values()) == {1}, f"prover queries per job: {per_job}"
        kills = sum(i.kills for i in instances)
        print(
            f"\n[{label}] seed={seed} blocks_settled={BLOCKS} settlements={len(operator)} reverted=0 kills={kills} "
            f"({', '.join(str(i.kills) for i in instances)}) "
            f"restarts={sum(i.starts for i in instances) - INSTANCES} prover_queries={len(children)} "
            f"jobs={sum(counts.values())} seconds={time.monotonic() - started:.0f}"
        )
        taken_back = 0
        for instance in instances:
            text = instance.log.read_text(errors="replace")
            assert "Traceback" not in text, instance.log_tail()
            assert heal or HEAL_SENT not in text, "the heal sweep ran: " + instance.log_tail()
            taken_back += text.count("taking back")
        print(f"[{label}] restarts that took back their earlier run's jobs: {taken_back}")


WORKING = b"HTTP API on"
"""``run`` logs this line once its start-up checks passed, just before it starts its workers (cli/run.py);
``/health/live`` answers earlier, while the run still waits for the sequencer and the settlement layer."""


def working(instance: Instance) -> bool:
    """The instance's current run has started its workers: its log since the run's start marker (written by
    ``Instance.start``) has the line ``run`` logs just before it starts them."""
    if not instance.running() or not instance.log.exists():
        return False
    log = instance.log.read_bytes()
    marker = f"===== start {instance.starts} =====".encode()
    at = log.rfind(marker)
    return at >= 0 and WORKING in log[at:]


async def wait_serving(instances: Sequence[Instance], started: float) -> list[Instance]:
    """The instances whose workers run (``working``), once one's do."""
    while True:
        assert time.monotonic() - started < TIMEOUT_S, _report(instances, "no instance has started its workers")
        for instance in instances:
            if not instance.running():
                raise AssertionError(_report(instances, f"{instance.name} exited by itself"))
        serving = [i for i in instances if working(i)]
        if serving:
            return serving
        await asyncio.sleep(0.1)


async def kill_and_restart(instances: Sequence[Instance], rng: random.Random, started: float) -> None:
    """SIGKILL one of the instances whose workers run (so the kill lands in their work, not in a start-up) and
    start it again. ``rng`` names the victim (one draw a kill, so a seed's draws do not depend on timing); an
    instance still starting passes its turn to the next one that works. Choosing among all three, a kill
    every 1–3 s mostly hit processes still importing or loading the KZG setup (several seconds on two busy
    cores): no instance died holding a job."""
    turn = rng.randrange(len(instances))
    serving = await wait_serving(instances, started)
    in_turn = [instances[(turn + k) % len(instances)] for k in range(len(instances))]
    victim = next(instance for instance in in_turn if instance in serving)
    await victim.kill()
    await victim.start()


def operator_address() -> str:
    from eth_account import Account

    return str(Account.from_key(DEV_PRIVATE_KEYS[0]).address)


async def _operator_transactions(l1: LocalL1) -> list[dict[str, Any]]:
    """The receipts of every transaction the operator's key sent (all blocks of the anvil chain)."""
    sender = operator_address().lower()
    head = int(await l1.rpc.request("eth_blockNumber", []), 16)
    receipts = []
    for number in range(head + 1):
        block = await l1.rpc.request("eth_getBlockByNumber", [hex(number), True])
        for tx in block["transactions"]:
            if tx["from"].lower() == sender:
                receipts.append(await l1.rpc.request("eth_getTransactionReceipt", [tx["hash"]]))
    return receipts


async def _wait_all_completed(instance: Instance, query: Any) -> None:
    """Until no job is in another status than Completed (the last verifications land after the L1 state)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = await query("SELECT count(*) AS n FROM jobs WHERE status <> 'Completed'")
        if rows[0]["n"] == 0:
            return
        await asyncio.sleep(0.5)
    async with httpx.AsyncClient(base_url=instance.url, timeout=10) as client:
        reply = await client.get("/jobs", params={"status": "Failed"})
    raise AssertionError(f"jobs left unfinished; failed: {reply.text[:2000]}")


def _report(instances: Sequence[Instance], what: str) -> str:
    return what + "\n" + "\n".join(f"--- {i.name} ---\n{i.log_tail()}" for i in instances)


async def database_state(query: Any) -> str:
    """For a stalled run's report: the jobs not completed, and what PostgreSQL's sessions are doing."""
    parts = []
    for title, sql in (
        ("jobs not completed", OPEN_JOBS_SQL),
        ("PostgreSQL sessions not idle", BUSY_SESSIONS_SQL),
    ):
        try:
            rows = await query(sql)
        except Exception as exc:  # the report must come out whatever the database says
            rows = [{"error": repr(exc)}]
        parts.append(f"\n--- {title} ---\n" + "\n".join(str(row) for row in rows))
    return "".join(parts)


OPEN_JOBS_SQL = (
    "SELECT job_type, internal_id, status, lease_owner, round(lease_expires_at - extract(epoch FROM now())) AS"
    " lease_left_s FROM jobs WHERE status <> 'Completed' ORDER BY job_type, internal_id"
)
BUSY_SESSIONS_SQL = (
    "SELECT pid, state, wait_event_type, wait_event, round(extract(epoch FROM now() - query_start)) AS running_s,"
    " left(query, 160) AS query FROM pg_stat_activity WHERE state <> 'idle' AND pid <> pg_backend_pid()"
)


def _pg_query(url: str) -> Any:
    import psycopg
    from psycopg.rows import dict_row

    async def query(sql: str) -> list[dict[str, Any]]:
        async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row, autocommit=True) as conn:
            return list(await (await conn.execute(sql)).fetchall())

    return query


@pytest.mark.slow
async def test_three_instances_on_postgres_survive_sigkills(tmp_path: Path, postgres_url: str) -> None:
    await run_chaos(
        tmp_path,
        backend_args=[],
        env={"MADARA_ORCHESTRATOR_POSTGRES_URL": postgres_url},
        label="postgres",
        query=_pg_query(postgres_url),
    )


@pytest.mark.slow
@ONLY_DEEP
async def test_three_instances_on_postgres_without_the_heal_sweep_survive_sigkills(
    tmp_path: Path, postgres_url: str
) -> None:
    """The outbox's must-show: a job's change and its next message in one transaction, so with no heal sweep
    to re-send a message lost between them, every block still settles once and in order."""
    await run_chaos(
        tmp_path,
        backend_args=[],
        env={"MADARA_ORCHESTRATOR_POSTGRES_URL": postgres_url},
        label="postgres, heal sweep off",
        query=_pg_query(postgres_url),
        heal=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "heal",
    [pytest.param(True, id="heal-sweep", marks=ONLY_DEEP), pytest.param(False, id="heal-sweep-off")],
)
async def test_three_instances_on_postgres_sqs_and_s3_survive_sigkills(
    tmp_path: Path, postgres_url: str, moto_reset: str, aws_prefix: str, heal: bool
) -> None:
    """The AWS shape: jobs in PostgreSQL, queues on SQS and artifacts in S3 (moto), made by ``setup --aws``.
    Without the heal sweep, every message reaches SQS through the outbox and its relays."""
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT
    from tests.helpers.moto import aws_environment

    aws = aws_environment(moto_reset)
    leases = ["--snos-job-timeout-seconds", "10", "--proving-job-timeout-seconds", "10"]
    leases += ["--aggregator-job-timeout-seconds", "10", "--state-transition-timeout-seconds", "20"]
    setup = [sys.executable, "-m", "madara_orchestrator.cli.main", "setup", "--aws", "--aws-s3", "--aws-sqs"]
    setup += ["--aws-sns", "--aws-event-bridge", "--event-bridge-type", "rule", "--aws-prefix", aws_prefix]
    setup += ["--poll-interval", "0.05", "--timeout", "20", *leases]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MADARA_ORCHESTRATOR_")}
    done = await asyncio.to_thread(
        subprocess.run,
        setup,
        env={**environ, **aws, "PYTHONPATH": str(REPO_ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    await run_chaos(
        tmp_path,
        backend_args=["--aws", "--aws-sqs", "--aws-s3", "--aws-prefix", aws_prefix],
        env={**aws, "MADARA_ORCHESTRATOR_POSTGRES_URL": postgres_url},
        label="postgres+sqs+s3" + ("" if heal else ", heal sweep off"),
        query=_pg_query(postgres_url),
        heal=heal,
    )
