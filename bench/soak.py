"""A long soak, on demand (not a test): the AWS-shaped chaos run of tests/e2e/test_chaos.py, for an hour.

Three ``orchestrator run`` instances share a throwaway PostgreSQL cluster (durable: it is crashed on the
way), SQS queues and an S3 bucket on a moto server (made by ``setup --aws``, as the chaos test does); a
devnet sequencer makes blocks, the mock Atlantic server proves them (registering facts on anvil) and
anvil's core contract takes the settlements. Every ``--kill-every-s`` seconds a random instance gets
SIGKILL and is started again, except the first ``--spare`` (default 1), which live the whole run: a leak
shows in their memory and sockets series, which a process killed every few seconds cannot show.
On the way: a sequencer outage and an L1 outage (each a cut proxy in front
of the sequencer / anvil, answering 502) and a PostgreSQL crash and restart.

Every ``--sample-every-s`` seconds (default 60; the first after 20 s) a line: per instance RSS (VmRSS),
sockets among its open files and how long the process has been up (with a kill every 5 s the sampled process
is often young: the series is of whichever process runs then), and the database's PostgreSQL backends per
application name (the instances set none: ``-``). One last sample after the chaos, once all is settled.
At the end: the chaos test's checks (settled once, in order, nonces contiguous, one prover submission per
proving job), then per instance the memory and connections series (start, max, end), and ``kills=``. Exit
code 1 when a check fails (the logs directory is then kept).

    .venv/bin/python bench/soak.py [--minutes 60] [--kill-every-s 5] [--seed 10]
    .venv/bin/python bench/soak.py --minutes 3        # a quick check
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests/: the chaos test's set-up and checks, the throwaway services

from madara_orchestrator.devnet.mock_atlantic import (  # noqa: E402
    MockAtlanticConfig,
    MockAtlanticServer,
    mock_aggregator_program_hash,
)
from madara_orchestrator.devnet.sequencer import DevnetSequencer  # noqa: E402
from madara_orchestrator.server.background import BackgroundServer, free_port  # noqa: E402
from tests.e2e.test_chaos import (  # noqa: E402
    _operator_transactions,
    _pg_query,
    _wait_all_completed,
    chaos_args,
    operator_address,
)
from tests.e2e.test_run_provers import local_l1  # noqa: E402
from tests.helpers.cluster import Instance  # noqa: E402
from tests.helpers.flaky_proxy import FlakyProxy  # noqa: E402
from tests.helpers.moto import _wait_until_up, aws_environment, find_moto_server  # noqa: E402
from tests.helpers.postgres import PostgresCluster, start_cluster  # noqa: E402

INSTANCES = 3
BATCH = 4
"""Blocks per aggregator batch (``--max-batch-size 4`` in the chaos flags): the chain ends on a multiple."""
LEASES = ["--snos-job-timeout-seconds", "10", "--proving-job-timeout-seconds", "10"]
LEASES += ["--aggregator-job-timeout-seconds", "10", "--state-transition-timeout-seconds", "20"]


@dataclass
class Series:
    """One instance's samples: RSS in KiB and open sockets (of whichever process is running then)."""

    rss_kib: list[int] = field(default_factory=list)
    sockets: list[int] = field(default_factory=list)
    self_exits: int = 0

    def summary(self, values: list[int]) -> str:
        return f"{values[0]}/{max(values)}/{values[-1]}" if values else "-"


def _proc_sample(pid: int) -> tuple[int, int] | None:
    """(VmRSS in KiB, sockets among the open files) of a live process; None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        sockets = 0
        for fd in os.scandir(f"/proc/{pid}/fd"):
            try:
                sockets += os.readlink(fd.path).startswith("socket:")
            except OSError:
                continue
        return rss, sockets
    except (OSError, StopIteration):
        return None


def _uptime_s(pid: int) -> float:
    """Seconds since the process started (/proc/<pid>/stat's start time, in clock ticks after boot)."""
    try:
        started = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        return float(Path("/proc/uptime").read_text().split()[0]) - started / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _start_moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = find_moto_server()
    if binary is None:
        raise SystemExit("moto_server not found: pip install 'moto[server]' into the venv")
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    _wait_until_up(url, process, log)
    return process, url


async def _aws_setup(aws: dict[str, str], prefix: str) -> None:
    """``setup --aws`` exactly as the chaos test runs it: queues, bucket, topic, rule."""
    setup = [sys.executable, "-m", "madara_orchestrator.cli.main", "setup", "--aws", "--aws-s3", "--aws-sqs"]
    setup += ["--aws-sns", "--aws-event-bridge", "--event-bridge-type", "rule", "--aws-prefix", prefix]
    setup += ["--poll-interval", "0.05", "--timeout", "20", *LEASES]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MADARA_ORCHESTRATOR_")}
    done = await asyncio.to_thread(
        subprocess.run,
        setup,
        env={**environ, **aws, "PYTHONPATH": str(REPO / "src")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"setup --aws failed: {(done.stdout + done.stderr)[-2000:]}")


@dataclass
class Soak:
    instances: list[Instance]
    sequencer: DevnetSequencer
    seq_proxy: FlakyProxy
    l1_proxy: FlakyProxy
    cluster: PostgresCluster
    db_url: str
    rng: random.Random
    rng_seed: int
    spared: int = 0
    series: dict[str, Series] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def log(self, line: str) -> None:
        print(f"[soak {time.monotonic() - self.started:7.1f}s] {line}", flush=True)

    async def sample(self) -> None:
        backends: dict[str, int] = {}
        try:
            rows = await _pg_query(self.db_url)(
                "SELECT application_name AS app, count(*) AS n FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY application_name"
            )
            backends = {str(r["app"]) or "-": int(r["n"]) for r in rows}
        except Exception as exc:  # PostgreSQL may be down right now
            backends = {"unavailable": 0}
            self.log(f"pg_stat_activity: {type(exc).__name__}")
        parts = []
        for instance in self.instances:
            got = _proc_sample(instance.process.pid) if instance.process and instance.running() else None
            if got is None:
                parts.append(f"{instance.name}=down")
                continue
            rss, sockets = got
            age = _uptime_s(instance.process.pid) if instance.process else 0.0
            s = self.series.setdefault(instance.name, Series())
            s.rss_kib.append(rss)
            s.sockets.append(sockets)
            parts.append(f"{instance.name} rss={rss // 1024}MiB sockets={sockets} up={age:.0f}s")
        settled = await self._settled()
        self.log(f"sample head={self.sequencer.chain.head} settled={settled} {' | '.join(parts)} pg={backends}")

    async def _settled(self) -> int | str:
        try:
            rows = await _pg_query(self.db_url)(
                "SELECT count(*) AS n FROM jobs WHERE job_type = 'StateTransition' AND status = 'Completed'"
            )
            return int(rows[0]["n"])
        except Exception:
            return "?"

    async def kill_one(self) -> None:
        victim = self.rng.choice(self.instances[self.spared :])
        if not victim.running():  # it died since the last look: not a kill of ours
            self.series.setdefault(victim.name, Series()).self_exits += 1
            self.log(f"{victim.name} exited by itself ({victim.process and victim.process.returncode})")
        await victim.kill()
        await victim.start()

    async def restart_exited(self) -> None:
        for instance in self.instances:
            if not instance.running():
                self.series.setdefault(instance.name, Series()).self_exits += 1
                self.log(f"{instance.name} exited by itself ({instance.process and instance.process.returncode})")
                await instance.start()

    async def outage(self, what: str, seconds: float) -> None:
        self.log(f"{what} outage: {seconds:.0f} s")
        self.events.append(what)
        if what == "postgres":
            await asyncio.to_thread(self.cluster.pause)
        else:
            (self.seq_proxy if what == "sequencer" else self.l1_proxy).down = True
        try:
            await asyncio.sleep(seconds)
        finally:
            if what == "postgres":
                await asyncio.to_thread(self.cluster.resume)
            else:
                (self.seq_proxy if what == "sequencer" else self.l1_proxy).down = False
        self.log(f"{what} back")


async def chaos_loop(soak: Soak, minutes: float, kill_every_s: float, sample_every_s: float) -> None:
    """Kill, sample, and the three outages at 25 %, 45 % and 65 % of the run (each 10 %, 10–60 s)."""
    total = minutes * 60
    outage_s = max(10.0, min(60.0, total * 0.1))
    plan = [(0.25 * total, "sequencer"), (0.45 * total, "l1"), (0.65 * total, "postgres")]
    next_sample = min(20.0, sample_every_s)  # not at once: a process just started says nothing yet
    outages: list[asyncio.Task[None]] = []
    while (elapsed := time.monotonic() - soak.started) < total:
        if elapsed >= next_sample:
            await soak.sample()
            next_sample += sample_every_s
        while plan and elapsed >= plan[0][0]:
            outages.append(asyncio.create_task(soak.outage(plan.pop(0)[1], outage_s)))
        await asyncio.sleep(kill_every_s)
        await soak.kill_one()
        await soak.restart_exited()
    await asyncio.gather(*outages)


async def finish(soak: Soak, l1: Any, timeout_s: float) -> int:
    """Stop the chain on a batch boundary; wait until it is all settled and every job Completed."""
    await soak.sequencer.stop_producing()
    while (soak.sequencer.chain.head + 1) % BATCH:
        soak.sequencer.chain.produce_block()
    blocks = soak.sequencer.chain.head + 1
    soak.log(f"chain stopped at {blocks} blocks; settling the rest (no more kills)")
    deadline = time.monotonic() + timeout_s
    while await l1.state_block_number() < blocks - 1:
        if time.monotonic() > deadline:
            soak.log(f"NOT settled after {timeout_s:.0f} s: L1 at {await l1.state_block_number()}")
            return blocks
        await soak.restart_exited()
        await asyncio.sleep(1)
    await _wait_all_completed(soak.instances[0], _pg_query(soak.db_url))
    return blocks


async def checks(soak: Soak, l1: Any, atlantic: MockAtlanticServer, blocks: int) -> list[str]:
    """The chaos test's checks, for a chain of ``blocks`` blocks; the failures (empty: all passed)."""
    query = _pg_query(soak.db_url)
    failures = []
    rows = await query("SELECT job_type, status, count(*) AS n FROM jobs GROUP BY job_type, status")
    by_status = {(r["job_type"], r["status"]): int(r["n"]) for r in rows}
    if {s for (_, s) in by_status} != {"Completed"}:
        failures.append(f"jobs not Completed: {by_status}")
    counts = {t: n for (t, s), n in by_status.items() if s == "Completed"}
    expected = {"SnosRun": blocks // 2, "ProofCreation": blocks // 2}
    expected |= {"Aggregator": blocks // BATCH, "StateTransition": blocks // BATCH}
    if counts != expected:
        failures.append(f"jobs per type {counts}, expected {expected}")
    settled_at = await l1.state_block_number()
    if settled_at != blocks - 1:
        failures.append(f"L1 state block {settled_at}, expected {blocks - 1}")
    operator = await _operator_transactions(l1)
    statuses = [int(r["status"], 16) for r in operator]
    if statuses != [1] * (blocks // BATCH):
        failures.append(f"settlement transactions (1 = success, one per batch): {statuses}")
    ids = [r["internal_id"] for r in await query("SELECT internal_id FROM jobs WHERE job_type = 'StateTransition'")]
    if sorted(ids) != list(range(1, blocks // BATCH + 1)):
        failures.append(f"settled batches not 1..{blocks // BATCH} once each: {sorted(ids)}")
    latest = int(await l1.rpc.request("eth_getTransactionCount", [operator_address(), "latest"]), 16)
    pending = int(await l1.rpc.request("eth_getTransactionCount", [operator_address(), "pending"]), 16)
    if not latest == pending == len(operator):
        failures.append(f"operator nonces: latest {latest}, pending {pending}, sent {len(operator)} (a gap)")
    children = [q for q in atlantic.state.queries.values() if q.data["bucketJobIndex"] is not None]
    per_job: dict[str, int] = {}
    for q in children:
        per_job[q.data["dedupId"]] = per_job.get(q.data["dedupId"], 0) + 1
    if len(per_job) != blocks // 2 or set(per_job.values()) != {1}:
        over = {k: v for k, v in per_job.items() if v != 1}
        failures.append(f"prover queries: {len(per_job)} jobs for {blocks // 2} proofs, more than one: {over}")
    kills = sum(i.kills for i in soak.instances)
    restarts = sum(i.starts for i in soak.instances) - INSTANCES
    print(
        f"\n[soak postgres+sqs+s3] seed={soak.rng_seed} blocks_settled={settled_at + 1} settlements={len(operator)} "
        f"reverted={statuses.count(0)} kills={kills} restarts={restarts} prover_queries={len(children)} "
        f"jobs={sum(counts.values())} nonces={latest}/{pending} outages={','.join(soak.events)} "
        f"seconds={time.monotonic() - soak.started:.0f}"
    )
    return failures


def report_series(soak: Soak) -> None:
    print("[soak] per instance, start/max/end over the samples (RSS in MiB, open sockets):")
    for instance in soak.instances:
        s = soak.series.get(instance.name, Series())
        rss = [v // 1024 for v in s.rss_kib]
        print(
            f"[soak] {instance.name} rss_mib={s.summary(rss)} sockets={s.summary(s.sockets)} samples={len(rss)} "
            f"kills={instance.kills} starts={instance.starts} self_exits={s.self_exits} "
            f"tracebacks={instance.log.read_text(errors='replace').count('Traceback') if instance.log.exists() else 0}"
        )
    print(f"kills={sum(i.kills for i in soak.instances)}")


async def soak(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    print(f"[soak] logs in {work}", flush=True)
    moto, moto_url = _start_moto(work / "moto_server.log")
    cluster = await asyncio.to_thread(lambda: start_cluster(durable=True))
    try:
        db_url = await asyncio.to_thread(cluster.create_database)
        aws = aws_environment(moto_url)
        prefix = f"soak{random.Random(args.seed).getrandbits(32):08x}"
        await _aws_setup(aws, prefix)
        code = await _run(args, work, cluster, db_url, aws, prefix)
        args.keep = args.keep or code != 0
        return code
    except BaseException:
        args.keep = True
        raise
    finally:
        await asyncio.to_thread(cluster.stop)
        moto.terminate()
        moto.wait(timeout=10)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


async def _run(
    args: argparse.Namespace, work: Path, cluster: PostgresCluster, db_url: str, aws: dict[str, str], prefix: str
) -> int:
    sequencer = DevnetSequencer(block_time_s=args.block_time_s, tx_per_block=3)
    seq_server = BackgroundServer(sequencer.app)
    await seq_server.start()
    seq_proxy = FlakyProxy(seq_server.url)
    await seq_proxy.start()
    key_file = work / "atlantic-api-key"
    key_file.write_text("test-key\n")
    async with (
        local_l1(work, program_hash=mock_aggregator_program_hash()) as l1,
        MockAtlanticServer(
            MockAtlanticConfig(processing_s=0.3, api_key="test-key", webhook_url=None),
            fact_registry=l1.fact_registry(),  # the prover reaches anvil directly: only the orchestrator's L1 is cut
        ) as atlantic,
    ):
        l1_proxy = FlakyProxy(l1.anvil.url)
        await l1_proxy.start()
        common = [a if a != l1.anvil.url else l1_proxy.url for a in chaos_args(l1, atlantic, work / "objects")]
        common += ["--aws", "--aws-sqs", "--aws-s3", "--aws-prefix", prefix]
        env = {
            "MADARA_ORCHESTRATOR_MADARA_RPC_URL": seq_proxy.url,
            "MADARA_ORCHESTRATOR_ATLANTIC_API_KEY_FILE": str(key_file),
            "MADARA_ORCHESTRATOR_POSTGRES_URL": db_url,
            **aws,
        }
        instances = [
            Instance(f"soak-{n}", free_port(), ["--data-dir", str(work / f"data-{n}"), *common], env, work)
            for n in range(INSTANCES)
        ]
        state = Soak(
            instances, sequencer, seq_proxy, l1_proxy, cluster, db_url, random.Random(args.seed), args.seed, args.spare
        )
        try:
            for instance in instances:
                await instance.start()
            sequencer.start_producing()
            await chaos_loop(state, args.minutes, args.kill_every_s, args.sample_every_s)
            blocks = await finish(state, l1, args.settle_timeout_s)
            await state.sample()
            failures = await checks(state, l1, atlantic, blocks)
        finally:
            for instance in instances:
                await instance.stop()
            await sequencer.stop_producing()
            await l1_proxy.stop()
            await seq_proxy.stop()
            await seq_server.stop()
        report_series(state)
        for failure in failures:
            print(f"[soak] FAILED: {failure}")
        print("[soak] all checks passed" if not failures else f"[soak] {len(failures)} check(s) failed; logs: {work}")
        return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=60.0, help="how long the kills and outages go on")
    parser.add_argument("--kill-every-s", type=float, default=5.0, help="seconds between two SIGKILLs")
    parser.add_argument(
        "--spare",
        type=int,
        default=1,
        choices=range(INSTANCES),
        help="instances never killed (the first ones): a process that lives the whole run shows a leak",
    )
    parser.add_argument("--sample-every-s", type=float, default=60.0, help="seconds between two samples")
    parser.add_argument("--block-time-s", type=float, default=2.0, help="the devnet sequencer's block time")
    parser.add_argument("--settle-timeout-s", type=float, default=600.0, help="after the chaos, to settle all")
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the logs directory (kept anyway on failure)")
    args = parser.parse_args(argv)
    return asyncio.run(soak(args))


if __name__ == "__main__":
    sys.exit(main())
