"""A throwaway PostgreSQL cluster for the test session, and a fresh database per test.

The cluster is made with the server's own tools (``initdb``, ``pg_ctl``: on PATH, else Debian's
``/usr/lib/postgresql/*/bin``) in a temporary directory, listens on 127.0.0.1 at a free port, runs
without durability (``fsync=off`` ...: nothing here must survive a crash) and is removed at the end of
the session. As root the server runs as the ``postgres`` user (it refuses to run as root).

Fixtures (registered by ``tests/conftest.py``): ``postgres_server`` (the session's cluster) and
``postgres_url`` (a new empty database for one test). Without the binaries the tests are skipped, or
fail under CI=true: ``make setup`` installs them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.conftest import require

SERVER_USER = "postgres"
"""The superuser of the cluster, and the OS user the server runs as when the tests run as root."""

HBA = """\
# Written by tests/helpers/postgres.py: the superuser without a password, other roles with one.
local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
"""

SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "32MB",
}
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
"""For a cluster that is crashed on purpose (``pause``): without them an immediate stop loses commits that
were acknowledged, which no real deployment does, and the test would check an impossible past."""


def find_bin_dir() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl``: PATH first, then the newest Debian install."""
    on_path = shutil.which("initdb")
    if on_path is not None:
        directory = Path(on_path).resolve().parent
        if (directory / "pg_ctl").exists():
            return directory
    candidates = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0,
    )
    return candidates[-1] if candidates else None


def _scratch_dir() -> str | None:
    """Where the cluster lives: tmpfs when there is room (creating a database there takes ~20 ms instead
    of ~200 ms on disk), else the default temporary directory."""
    shm = "/dev/shm"
    try:
        if os.path.isdir(shm) and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 2**30:
            return shm
    except OSError:
        pass
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PostgresCluster:
    bin_dir: Path
    root: Path
    port: int
    run_as: list[str]
    durable: bool = False

    @property
    def settings(self) -> dict[str, str]:
        return {**SETTINGS, **DURABLE} if self.durable else SETTINGS

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, dbname: str = "postgres", *, user: str = SERVER_USER, password: str | None = None) -> str:
        auth = user if password is None else f"{user}:{password}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url(), autocommit=True)

    def create_database(self) -> str:
        """A new empty database (from ``template0``: nothing of another test's in it); its URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def create_role(self, name: str, password: str) -> None:
        with self.admin() as conn:
            conn.execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'")

    def _tool(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.run_as, str(self.bin_dir / name), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def start(self) -> None:
        initdb = self._tool(
            "initdb",
            "--pgdata",
            str(self.data_dir),
            "--username",
            SERVER_USER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed: {initdb.stderr.strip() or initdb.stdout.strip()}")
        (self.data_dir / "pg_hba.conf").write_text(HBA)
        options = " ".join(f"-c {name}={value}" for name, value in self.settings.items())
        options += f" -c unix_socket_directories={self.root} -p {self.port}"
        for _ in range(3):  # the free port may be taken between the probe and the start
            started = self._tool(
                "pg_ctl",
                "--pgdata",
                str(self.data_dir),
                "--log",
                str(self.log),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            )
            if started.returncode == 0:
                return
            self.port = _free_port()
            options = options.rsplit(" -p ", 1)[0] + f" -p {self.port}"
        raise RuntimeError(f"pg_ctl start failed: {started.stderr.strip()}; server log: {self._log_tail()}")

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def _log_tail(self) -> str:
        try:
            return " | ".join(self.log.read_text().strip().splitlines()[-5:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        self._tool("pg_ctl", "--pgdata", str(self.data_dir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def pause(self) -> None:
        """Stop the server as a crash does (``-m immediate``: connections cut, no checkpoint); data kept."""
        stopped = self._tool("pg_ctl", "--pgdata", str(self.data_dir), "-m", "immediate", "-w", "stop")
        if stopped.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed: {stopped.stderr.strip()}")

    def resume(self) -> None:
        """Start the paused server again on the same port (crash recovery runs first)."""
        options = " ".join(f"-c {name}={value}" for name, value in self.settings.items())
        options += f" -c unix_socket_directories={self.root} -p {self.port}"
        started = self._tool(
            "pg_ctl", "--pgdata", str(self.data_dir), "--log", str(self.log), "-w", "-t", "60", "-o", options, "start"
        )
        if started.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {started.stderr.strip()}; server log: {self._log_tail()}")


OWNER_FILE = "owner.pid"
"""In the cluster's directory: the pid of the test process it serves."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_orphans(bin_dir: Path, run_as: list[str]) -> None:
    """Stop and remove the clusters of test processes that died without their teardown (kill -9)."""
    for scratch in {_scratch_dir(), tempfile.gettempdir()} - {None}:
        for root in Path(str(scratch)).glob("orchestrator-pg-*"):
            try:
                owner = int((root / OWNER_FILE).read_text())
            except (OSError, ValueError):
                continue  # being set up, or not ours
            if _alive(owner):
                continue
            PostgresCluster(bin_dir=bin_dir, root=root, port=0, run_as=run_as).stop()


def start_cluster(*, durable: bool = False) -> PostgresCluster:
    """A throwaway cluster; ``durable`` keeps acknowledged commits through a crash (``pause``)."""
    bin_dir = find_bin_dir()
    require(
        bin_dir is not None,
        "PostgreSQL server binaries (initdb, pg_ctl on PATH or in /usr/lib/postgresql/*/bin): run `make setup`",
    )
    assert bin_dir is not None
    run_as: list[str] = []
    # Not under pytest's tmp_path: its base directory is private to the user running the tests.
    root = Path(tempfile.mkdtemp(prefix="orchestrator-pg-", dir=_scratch_dir()))
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(SERVER_USER)
        except KeyError:
            shutil.rmtree(root, ignore_errors=True)
            require(False, f"an OS user {SERVER_USER!r} to run PostgreSQL as (tests run as root): run `make setup`")
            raise
        os.chown(root, account.pw_uid, account.pw_gid)
        run_as = ["runuser", "-u", SERVER_USER, "--"]
    _sweep_orphans(bin_dir, run_as)
    (root / OWNER_FILE).write_text(str(os.getpid()))
    cluster = PostgresCluster(bin_dir=bin_dir, root=root, port=_free_port(), run_as=run_as, durable=durable)
    try:
        cluster.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        with contextlib.suppress(OSError):
            cluster.stop()
        pytest.fail(f"cannot start a throwaway PostgreSQL cluster: {exc}")
    return cluster


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresCluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresCluster) -> Iterator[str]:
    """A new empty database of the session's cluster, for this test alone (dropped after it)."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)
