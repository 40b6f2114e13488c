"""``kill -USR1``: every task's name and where it waits, in one log record (cli/task_dump.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import pytest

from madara_orchestrator.cli import task_dump


async def _waits_on(event: asyncio.Event, secret: str) -> None:
    await event.wait()
    del secret


async def test_the_dump_names_each_task_and_the_line_it_waits_on_without_local_values() -> None:
    event = asyncio.Event()
    task = asyncio.create_task(_waits_on(event, "0xdeadbeefsecret"), name="stuck-job")
    await asyncio.sleep(0)  # the task runs up to its wait
    try:
        running = len(asyncio.all_tasks())
        text = task_dump.describe_tasks()
    finally:
        event.set()
        await task
    assert text.splitlines()[0] == f"{running} task(s) (kill -USR1):"
    block = text[text.index("task stuck-job (_waits_on)") :]
    assert "in _waits_on" in block
    assert "await event.wait()" in block
    assert "0xdeadbeefsecret" not in text


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 on this platform")
async def test_sigusr1_logs_the_dump_and_the_loop_runs_on(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    task_dump.install(loop)
    logged = asyncio.Event()

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "(kill -USR1)" in record.getMessage():
                logged.set()

    seen = Seen()
    task_dump.log.addHandler(seen)
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.wait_for(logged.wait(), 10)
    finally:
        task_dump.log.removeHandler(seen)
        loop.remove_signal_handler(signal.SIGUSR1)
    assert "test_sigusr1_logs_the_dump_and_the_loop_runs_on" in caplog.text


async def _outer(event: asyncio.Event) -> None:
    await _middle(event)


async def _middle(event: asyncio.Event) -> None:
    await event.wait()


async def test_the_dump_follows_the_awaited_coroutines_to_the_innermost_wait() -> None:
    event = asyncio.Event()
    task = asyncio.create_task(_outer(event), name="nested")
    await asyncio.sleep(0)
    try:
        text = task_dump.describe_tasks({task})
    finally:
        event.set()
        await task
    assert text.index("in _outer") < text.index("in _middle") < text.index("in wait")
