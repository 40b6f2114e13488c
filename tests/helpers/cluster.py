"""Several ``orchestrator run`` processes side by side, to kill and restart (chaos tests, benchmarks)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import REPO_ROOT


@dataclass
class Instance:
    """One orchestrator instance: the same name, port and arguments at every (re)start."""

    name: str
    port: int
    argv: Sequence[str]
    env: Mapping[str, str]
    log_dir: Path
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    kills: int = 0
    exit_codes: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    async def start(self) -> None:
        assert self.process is None or self.process.returncode is not None, f"{self.name} is running"
        environ = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MADARA_ORCHESTRATOR_")},
            "PYTHONPATH": str(REPO_ROOT / "src"),
            **self.env,
        }
        self.starts += 1
        with self.log.open("ab") as sink:
            sink.write(f"\n===== start {self.starts} =====\n".encode())
            sink.flush()
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "madara_orchestrator.cli.main",
                "run",
                "--port",
                str(self.port),
                "--instance-id",
                self.name,
                *self.argv,
                cwd=self.log_dir,
                env=environ,
                stdout=sink,
                stderr=sink,
            )

    async def kill(self) -> None:
        """SIGKILL: no clean-up of any kind."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()
            self.kills += 1

    async def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM and wait (SIGKILL after ``timeout_s``); the exit code."""
        if self.process is None:
            return None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout_s)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        code = self.process.returncode
        assert code is not None
        self.exit_codes.append(code)
        return code

    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    async def task_dump(self, timeout_s: float = 10.0) -> str:
        """SIGUSR1 (cli/task_dump.py): the stacks of the running instance's tasks, as it logs them; ``""``
        when it is not running or does not answer within ``timeout_s``."""
        if not self.running() or self.process is None:
            return ""
        size = self.log.stat().st_size if self.log.exists() else 0
        self.process.send_signal(signal.SIGUSR1)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            with self.log.open("rb") as f:
                f.seek(size)
                text = f.read().decode(errors="replace")
            start = text.find("task(s) (kill -USR1):")
            if start >= 0:
                return text[start:]
            await asyncio.sleep(0.2)
        return ""


async def stalled_report(instances: Sequence[Instance], what: str) -> str:
    """``what``, each instance's log tail, and what each running instance's tasks wait on (its task dump)."""
    dumps = [await instance.task_dump() for instance in instances]
    return what + "".join(
        f"\n--- {i.name} ---\n{i.log_tail()}" + (f"\n--- {i.name}: tasks ---\n{dump[:20_000]}" if dump else "")
        for i, dump in zip(instances, dumps, strict=True)
    )
