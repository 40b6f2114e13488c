"""Does an ``orchestrator run`` process grow with the blocks it settles? (on demand, not a test)

The soak's long-lived instance (bench/soak.py) grew about 0.3 MiB a minute. This runs ``orchestrator run``
with the soak's flags (the chaos flags: aggregator batches of 4 blocks, SNOS batches of 2, the mock Atlantic
prover, settlement on anvil) *in this process*, while a child process serves the doubles it talks to (the
devnet sequencer, the mock Atlantic server, anvil), so that nothing but the orchestrator is measured here.
Backends: the embedded SQLite (default) or, with ``--backend aws``, the soak's PostgreSQL (throwaway
cluster) + SQS + S3 (moto server, made by ``setup --aws``).

At each checkpoint (blocks settled on anvil, ``--at``; after ``gc.collect()``) a line: blocks settled, the
chain's head, RSS, what tracemalloc traces, what malloc has handed out and holds free (glibc's
``mallinfo2``), what SQLite uses, live objects and asyncio tasks. Then, between the first and the last
checkpoint: the growth per block settled, the object types whose count grew most, the containers our own
objects hold (``module.Class.attribute``) that grew most, who holds the newest object of the types that
grew most, and with tracemalloc on the top allocation sites by traceback (``Snapshot.compare_to(old,
"traceback")``, each shown by its innermost frame and the innermost frame of our own code) and the same
growth summed per own-code frame. Last, the growth per block between each pair of checkpoints.

tracemalloc (``--frames``, 25 by default) slows the pipeline about tenfold: ``--trace-from first`` traces
from the first checkpoint on only (what is traced at the last one is then what was allocated since and is
still alive), ``--frames 0`` not at all. ``--pause`` stops the chain at each checkpoint and takes it once
everything is settled, so every checkpoint sees the process idle, however fast it runs.

    .venv/bin/python bench/memory_growth.py --pause --at 100,300,500 --frames 0     # 3 min: counts, RSS
    .venv/bin/python bench/memory_growth.py --pause --at 60,100,140 --trace-from first  # 10 min: sites
    .venv/bin/python bench/memory_growth.py --backend aws --pause --at 100,300 --frames 0

Growth that is linear in blocks shows the same per-block figure between every pair of checkpoints; a
bounded cache or allocator noise flattens out (the traced total stops growing while RSS may still move).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ctypes
import ctypes.util
import gc
import itertools
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType, SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests/: the chaos flags and the throwaway services; bench/: the soak's set-up

BATCH = 4
"""Blocks per aggregator batch in the soak's flags (``--max-batch-size 4``)."""
OWN = f"{os.sep}madara_orchestrator{os.sep}"
"""A frame of our own code (src/madara_orchestrator)."""


# -- the doubles, in a child process -------------------------------------------------------------------------


def serve_doubles(work: str, block_time_s: float, conn: Connection) -> None:
    """Anvil (with the devnet contracts), the mock Atlantic server (registering facts on anvil) and the devnet
    sequencer, as the soak has them. Sends their addresses; then answers ``("produce", n)`` (make blocks until
    the chain has n, or without end for None), ``progress`` (settled blocks on anvil and the chain's head) and
    ``stop``."""
    from madara_orchestrator.devnet.mock_atlantic import (
        MockAtlanticConfig,
        MockAtlanticServer,
        mock_aggregator_program_hash,
    )
    from madara_orchestrator.devnet.sequencer import DevnetSequencer
    from madara_orchestrator.server.background import BackgroundServer
    from tests.e2e.test_run_provers import local_l1

    async def main() -> None:
        sequencer = DevnetSequencer(block_time_s=block_time_s, tx_per_block=3)
        server = BackgroundServer(sequencer.app)
        await server.start()
        async with (
            local_l1(Path(work), program_hash=mock_aggregator_program_hash()) as l1,
            MockAtlanticServer(
                MockAtlanticConfig(processing_s=0.3, api_key="test-key", webhook_url=None),
                fact_registry=l1.fact_registry(),
            ) as atlantic,
        ):
            conn.send(
                {
                    "sequencer": server.url,
                    "anvil": l1.anvil.url,
                    "core_contract": l1.contracts.core_contract,
                    "atlantic": atlantic.url,
                    "artifacts": atlantic.artifacts_url,
                }
            )
            while (message := await asyncio.to_thread(conn.recv)) != "stop":
                if isinstance(message, tuple):  # ("produce", up to this many blocks or None: no end)
                    await sequencer.stop_producing()
                    sequencer.start_producing(max_blocks=message[1])
                elif message == "progress":
                    conn.send((await l1.state_block_number() + 1, sequencer.chain.head))
            await sequencer.stop_producing()
        await server.stop()

    asyncio.run(main())


# -- what is measured ----------------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    blocks: int
    head: int
    seconds: float
    rss_kib: int
    traced: int
    objects: int
    tasks: int
    malloc_in_use: int
    malloc_free: int
    sqlite: int
    counts: Path
    """Live objects per type, and the items in the containers our own objects hold per ``module.Class.attribute``
    (summed over instances), as JSON: on disk, so that the checkpoints kept here are not traced as growth."""
    snapshot: Path | None

    @property
    def types(self) -> collections.Counter[str]:
        return collections.Counter(json.loads(self.counts.read_text())["types"])

    @property
    def containers(self) -> collections.Counter[str]:
        return collections.Counter(json.loads(self.counts.read_text())["containers"])


@dataclass
class Watch:
    """The watcher thread's state: the checkpoints it took, and what went wrong, if anything."""

    at: list[int]
    work: Path
    conn: Connection
    frames: int
    """tracemalloc's frames; 0: no tracing."""
    trace_from_first: bool
    timeout_s: float
    pause: bool = False
    settle_s: float = 5.0
    holder_kinds: int = 8
    checkpoints: list[Checkpoint] = field(default_factory=list)
    holders: list[str] = field(default_factory=list)
    error: str | None = None


class MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def c_memory() -> tuple[int, int, int]:
    """(bytes malloc has handed out and not had back, bytes free inside malloc's heap, bytes SQLite uses),
    from glibc's ``mallinfo2`` and ``sqlite3_memory_used`` (-1 where not available)."""
    in_use = free = sqlite = -1
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        info = libc.mallinfo2()
        in_use, free = info.uordblks + info.hblkhd, info.fordblks
    with contextlib.suppress(OSError, AttributeError, TypeError):
        lib = ctypes.CDLL(ctypes.util.find_library("sqlite3"))
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        sqlite = int(lib.sqlite3_memory_used())
    return in_use, free, sqlite


def rss_kib() -> int:
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))


CONTAINERS = (dict, list, set, frozenset, collections.deque, collections.OrderedDict)


def own_containers(objects: list[object]) -> collections.Counter[str]:
    """How many items the containers held by our own objects' attributes have, per ``module.Class.attr``."""
    sizes: collections.Counter[str] = collections.Counter()
    for obj in objects:
        kind = type(obj)
        module = kind.__dict__.get("__module__")
        if not isinstance(module, str) or not module.startswith("madara_orchestrator."):
            continue
        names = list(getattr(obj, "__dict__", {}))
        names += [n for c in kind.__mro__ for n in getattr(c, "__slots__", ()) if isinstance(n, str)]
        for name in names:
            value = getattr(obj, name, None)
            if isinstance(value, CONTAINERS):
                sizes[f"{module.removeprefix('madara_orchestrator.')}.{kind.__qualname__}.{name}"] += len(value)
    return sizes


def traced_snapshot(watch: Watch, blocks: int) -> tuple[int, Path | None]:
    """What tracemalloc traces now (bytes), its snapshot dumped to a file (kept out of this process)."""
    if not tracemalloc.is_tracing():
        return 0, None
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap*>")]
    )
    path = watch.work / f"snapshot-{blocks}.tracemalloc"
    snapshot.dump(str(path))
    return sum(stat.size for stat in snapshot.statistics("filename")), path


def checkpoint(watch: Watch, blocks: int, head: int, started: float) -> Checkpoint:
    gc.collect()
    objects = gc.get_objects()
    types = collections.Counter(type(o).__qualname__ for o in objects)
    counts = watch.work / f"counts-{blocks}.json"
    counts.write_text(json.dumps({"types": types, "containers": own_containers(objects)}))
    del objects
    total, tasks = sum(types.values()), types["Task"]  # asyncio's, pending or done but still referenced
    del types
    if watch.frames and watch.trace_from_first and not tracemalloc.is_tracing():
        tracemalloc.start(watch.frames)  # from here on: what is allocated and stays is traced
    traced, path = traced_snapshot(watch, blocks)
    gc.collect()
    in_use, free, sqlite = c_memory()
    return Checkpoint(
        blocks=blocks,
        head=head,
        seconds=time.monotonic() - started,
        rss_kib=rss_kib(),
        traced=traced,
        objects=total,
        tasks=tasks,
        malloc_in_use=in_use,
        malloc_free=free,
        sqlite=sqlite,
        counts=counts,
        snapshot=path,
    )


def label(holder: object, held: object) -> str:
    """What ``holder`` is, and where in it ``held`` is: ``dict['key']``, ``list[12 items]``, ``Class.attr``."""
    kind = type(holder)
    if isinstance(holder, dict):
        key = next((k for k, v in holder.items() if v is held), None)
        if key is None and held in holder:
            return f"dict key of a dict of {len(holder)}"
        return f"dict[{key!r:.60}] of {len(holder)}"
    if isinstance(holder, list | tuple | set | frozenset | collections.deque):
        return f"{kind.__qualname__} of {len(holder)}"
    names = [n for c in kind.__mro__ for n in getattr(c, "__slots__", ()) if isinstance(n, str)]
    for name in [*names, *getattr(holder, "__dict__", {})]:
        if getattr(holder, name, None) is held:
            return f"{kind.__module__}.{kind.__qualname__}.{name}"
    return f"{kind.__module__}.{kind.__qualname__}"


def referrer(current: object, skip: set[int]) -> tuple[str, object] | None:
    """The first referrer of ``current`` that is not a frame nor skipped, named; an instance's ``__dict__``
    is named by its owner (``module.Class.attr``) and the owner is returned."""
    refs = [r for r in gc.get_referrers(current) if id(r) not in skip and not isinstance(r, FrameType)]
    if not refs:
        return None
    holder = refs[0]
    del refs
    skip.add(id(holder))
    if isinstance(holder, dict):  # no closure over ``current`` or ``holder`` here: its cell would refer to them
        for owner in gc.get_referrers(holder):
            if getattr(owner, "__dict__", None) is holder:
                key = "?"
                for k, v in holder.items():
                    if v is current:
                        key = k
                skip.add(id(owner))
                return f"{type(owner).__module__}.{type(owner).__qualname__}.{key}", owner
    return label(holder, current), holder


def holders(grown: collections.Counter[str], kinds: int, depth: int = 6) -> list[str]:
    """For the ``kinds`` types that grew most: who holds their newest object, up to ``depth`` referrers up."""
    names = {name for name, n in grown.most_common(kinds) if n > 0}
    found: dict[str, object] = {}
    everything = gc.get_objects()
    for obj in everything:  # oldest first, roughly: the last one kept is among the newest
        name = type(obj).__qualname__
        if name in names:
            found[name] = obj
    del everything
    lines = []
    for name in list(found):
        current = found.pop(name)  # held here by ``current`` only (a frame's local: skipped)
        chain: list[str] = []
        skip = {id(found)}
        for _ in range(depth):
            step = referrer(current, skip)
            if step is None:
                break
            text, current = step
            del step  # the tuple would be the next object's first referrer
            chain.append(text)
        lines.append(f"  {name} <- " + " <- ".join(chain))
    return lines


def watcher(watch: Watch) -> None:
    """Until every checkpoint is taken: ask the child how far settlement is, take a checkpoint when it passes
    the next one; then stop the run as an operator would (SIGTERM). With ``pause``, the chain stops at each
    checkpoint's block and the checkpoint is taken once all of it is settled (and ``settle_s`` later, for
    the last jobs' verification): the process is then as idle at every checkpoint."""
    started = time.monotonic()
    try:
        pending = list(watch.at)
        watch.conn.send(("produce", pending[0] if watch.pause else None))
        while pending:
            time.sleep(1.0)
            if time.monotonic() - started > watch.timeout_s:
                raise TimeoutError(f"{watch.timeout_s:.0f} s and the checkpoint at {pending[0]} blocks not reached")
            watch.conn.send("progress")
            blocks, head = watch.conn.recv()
            if blocks < pending[0]:
                continue
            pending.pop(0)
            if watch.pause:
                time.sleep(watch.settle_s)
            point = checkpoint(watch, blocks, head, started)
            watch.checkpoints.append(point)
            print(
                f"checkpoint blocks_settled={point.blocks} head={point.head} t={point.seconds:.0f}s "
                f"rss_mib={point.rss_kib / 1024:.1f} traced_mib={point.traced / 2**20:.2f} "
                f"malloc_in_use_mib={point.malloc_in_use / 2**20:.1f} malloc_free_mib={point.malloc_free / 2**20:.1f} "
                f"sqlite_mib={point.sqlite / 2**20:.2f} objects={point.objects} asyncio_tasks={point.tasks}",
                flush=True,
            )
            if watch.pause and pending:
                watch.conn.send(("produce", pending[0]))
        if len(watch.checkpoints) >= 2:
            grown = watch.checkpoints[-1].types.copy()
            grown.subtract(watch.checkpoints[0].types)
            watch.holders = holders(grown, watch.holder_kinds)
    except Exception as exc:  # reported by the main thread once the run has stopped
        watch.error = f"{type(exc).__name__}: {exc}"
    os.kill(os.getpid(), signal.SIGTERM)


# -- the report ----------------------------------------------------------------------------------------------


def where(frames: tracemalloc.Traceback) -> tuple[str, str]:
    """(the innermost frame, the innermost frame of our own code or ``-``), each ``file:line``."""
    inner = frames[-1] if frames else None  # a Traceback runs from the oldest frame to the most recent
    own = next((f for f in reversed(frames) if OWN in f.filename), None)

    def show(frame: tracemalloc.Frame | None) -> str:
        if frame is None:
            return "-"
        name = frame.filename
        cut = name.rfind(OWN)
        short = name[cut + 1 :] if cut >= 0 else "/".join(Path(name).parts[-2:])
        return f"{short}:{frame.lineno}"

    return show(inner), show(own)


def report(first: Checkpoint, last: Checkpoint, top: int) -> None:
    blocks = max(1, last.blocks - first.blocks)
    print(
        f"\ngrowth from {first.blocks} to {last.blocks} blocks settled ({blocks} blocks, "
        f"{last.seconds - first.seconds:.0f} s): traced {(last.traced - first.traced) / 1024:+.0f} KiB "
        f"({(last.traced - first.traced) / blocks:+.0f} B/block), RSS {last.rss_kib - first.rss_kib:+d} KiB "
        f"({(last.rss_kib - first.rss_kib) * 1024 / blocks:+.0f} B/block), malloc in use "
        f"{(last.malloc_in_use - first.malloc_in_use) / blocks:+.0f} B/block, malloc free "
        f"{(last.malloc_free - first.malloc_free) / blocks:+.0f} B/block, SQLite "
        f"{(last.sqlite - first.sqlite) / blocks:+.0f} B/block, objects {last.objects - first.objects:+d}, "
        f"asyncio tasks {last.tasks - first.tasks:+d}"
    )
    types, containers = last.types, last.containers
    grown = types.copy()
    grown.subtract(first.types)
    print(f"\ntop {top} object types by count growth (gc.get_objects):")
    for name, n in grown.most_common(top):
        print(f"  {n:+7d}  {name}  ({types[name]} now)")
    sizes = containers.copy()
    sizes.subtract(first.containers)
    print(f"\ntop {top} containers held by our objects, by growth in items (class.attribute: growth, now):")
    for name, n in sizes.most_common(top):
        if n > 0:
            print(f"  {n:+7d}  {name}  ({containers[name]} now, {n / blocks:.2f} per block)")
    if first.snapshot is None or last.snapshot is None:
        return
    old = tracemalloc.Snapshot.load(str(first.snapshot))
    new = tracemalloc.Snapshot.load(str(last.snapshot))
    diffs = new.compare_to(old, "traceback")
    print(f"\ntop {top} allocation sites by traceback (size diff, count diff, innermost frame <- own frame):")
    for diff in diffs[:top]:
        inner, own = where(diff.traceback)
        print(f"  {diff.size_diff / 1024:+9.1f} KiB {diff.count_diff:+7d}  {inner}  <- {own}")
    per_own: collections.Counter[str] = collections.Counter()
    count_own: collections.Counter[str] = collections.Counter()
    for diff in diffs:
        own = where(diff.traceback)[1]
        per_own[own] += diff.size_diff
        count_own[own] += diff.count_diff
    print(f"\ntop {top} own-code frames by summed size diff (`-`: no frame of ours in 25):")
    for own, size in per_own.most_common(top):
        print(f"  {size / 1024:+9.1f} KiB {count_own[own]:+7d}  {own}")


# -- the run -------------------------------------------------------------------------------------------------


def run_flags(doubles: dict[str, Any], work: Path) -> list[str]:
    """The soak's flags for ``run``: the chaos test's (batches of 4 blocks, SNOS batches of 2, short leases
    and polls, the mock Atlantic prover, settlement on anvil)."""
    from tests.e2e.test_chaos import chaos_args

    l1 = SimpleNamespace(
        anvil=SimpleNamespace(url=doubles["anvil"]),
        contracts=SimpleNamespace(core_contract=doubles["core_contract"]),
    )
    atlantic = SimpleNamespace(url=doubles["atlantic"], artifacts_url=doubles["artifacts"])
    return chaos_args(l1, atlantic, work / "objects")  # type: ignore[arg-type]


async def aws_backends(work: Path, env: dict[str, str], stack: list[Any]) -> list[str]:
    """The soak's PostgreSQL + SQS + S3: a throwaway cluster, a moto server, ``setup --aws``."""
    from bench.soak import _aws_setup, _start_moto
    from tests.helpers.moto import aws_environment
    from tests.helpers.postgres import start_cluster

    moto, moto_url = _start_moto(work / "moto_server.log")
    stack.append(moto)
    cluster = await asyncio.to_thread(lambda: start_cluster(durable=True))
    stack.append(cluster)
    env["MADARA_ORCHESTRATOR_POSTGRES_URL"] = await asyncio.to_thread(cluster.create_database)
    aws = aws_environment(moto_url)
    await _aws_setup(aws, "memgrowth")
    env.update(aws)
    return ["--aws", "--aws-sqs", "--aws-s3", "--aws-prefix", "memgrowth"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--at", default="150,350,600", help="checkpoints, in blocks settled (default 150,350,600)")
    parser.add_argument("--block-time", type=float, default=0.25, help="the sequencer's block time (default 0.25)")
    parser.add_argument("--backend", choices=("sqlite", "aws"), default="sqlite")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--frames",
        type=int,
        default=25,
        help="tracemalloc's frames per allocation (default 25); 0: no tracemalloc (RSS and object counts only)",
    )
    parser.add_argument(
        "--trace-from",
        choices=("start", "first"),
        default="start",
        help="start tracing at start-up (default) or at the first checkpoint: the run is faster until then, "
        "and what is traced at the last checkpoint is what was allocated since the first and is still alive",
    )
    parser.add_argument(
        "--pause",
        action="store_true",
        help="stop the chain at each checkpoint and take it once all is settled (checkpoints rounded up to "
        f"whole batches of {BATCH} blocks): every checkpoint sees the process idle, whatever its speed",
    )
    parser.add_argument("--timeout-s", type=float, default=840.0, help="give up after this long (default 840)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, snapshots)")
    args = parser.parse_args(argv)
    at = sorted(int(n) for n in args.at.split(","))
    if args.pause:
        at = [-(-n // BATCH) * BATCH for n in at]
    if args.frames and args.trace_from == "start":
        tracemalloc.start(args.frames)

    import multiprocessing

    from madara_orchestrator.cli.main import main as orchestrator
    from madara_orchestrator.server.background import free_port

    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    import madara_orchestrator

    print(f"code: {Path(madara_orchestrator.__file__).parent}; work directory (run log, snapshots): {work}", flush=True)
    context = multiprocessing.get_context("spawn")
    conn, child_conn = context.Pipe()
    doubles = context.Process(target=serve_doubles, args=(str(work), args.block_time, child_conn), daemon=True)
    doubles.start()
    child_conn.close()  # the child's end lives in the child only: its death is an EOF here
    services: list[Any] = []
    code = 1
    try:
        addresses = conn.recv()
        env = {"MADARA_ORCHESTRATOR_MADARA_RPC_URL": addresses["sequencer"]}
        key_file = work / "atlantic-api-key"
        key_file.write_text("test-key\n")
        env["MADARA_ORCHESTRATOR_ATLANTIC_API_KEY_FILE"] = str(key_file)
        flags = run_flags(addresses, work)
        if args.backend == "aws":
            flags += asyncio.run(aws_backends(work, env, services))
        for name in [k for k in os.environ if k.startswith("MADARA_ORCHESTRATOR_")]:
            del os.environ[name]
        os.environ.update(env)
        watch = Watch(
            at=at,
            work=work,
            conn=conn,
            frames=args.frames,
            trace_from_first=args.trace_from == "first",
            timeout_s=args.timeout_s,
            pause=args.pause,
        )
        # ``run`` logs at INFO to stderr, as the soak's instances do (to their log file): here to run.log.
        log = (work / "run.log").open("ab")
        saved_stderr = os.dup(2)
        os.dup2(log.fileno(), 2)
        thread = threading.Thread(target=watcher, args=(watch,), daemon=True)
        thread.start()
        try:
            argv_run = [
                "run",
                "--port",
                str(free_port()),
                "--instance-id",
                "memory-0",
                "--data-dir",
                str(work / "data"),
            ]
            code = orchestrator([*argv_run, *flags])
        finally:
            os.dup2(saved_stderr, 2)
            log.close()
        thread.join(timeout=60)
        if watch.error is not None:
            print(f"error: {watch.error}; see {work / 'run.log'}", file=sys.stderr)
            args.keep, code = True, 1
        if len(watch.checkpoints) >= 2:  # what was measured is reported, even when a later checkpoint failed
            report(watch.checkpoints[0], watch.checkpoints[-1], args.top)
            if watch.holders:
                print("\nwho holds the newest object of the types that grew most (referrers, innermost first):")
                print("\n".join(watch.holders))
            for a, b in itertools.pairwise(watch.checkpoints):
                span = max(1, b.blocks - a.blocks)
                print(
                    f"blocks {a.blocks}->{b.blocks}: traced {(b.traced - a.traced) / span:+.0f} B/block, "
                    f"RSS {(b.rss_kib - a.rss_kib) * 1024 / span:+.0f} B/block, "
                    f"malloc in use {(b.malloc_in_use - a.malloc_in_use) / span:+.0f} B/block, "
                    f"SQLite {(b.sqlite - a.sqlite) / span:+.0f} B/block"
                )
        elif watch.error is None:
            print(f"error: fewer than two checkpoints; see {work / 'run.log'}", file=sys.stderr)
            args.keep, code = True, 1
    finally:
        conn.send("stop")
        doubles.join(timeout=30)
        for service in reversed(services):
            if hasattr(service, "terminate"):
                service.terminate()
                service.wait(timeout=10)
            else:
                service.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
