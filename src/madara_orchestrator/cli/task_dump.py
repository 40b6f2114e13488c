"""``kill -USR1 <pid>``: what each of a running orchestrator's tasks is waiting on, in its log.

A job that stays "processing" while its instance is alive holds its lease (the heartbeat renews it), so no
other instance takes it over: the operator wants to see where it waits. SIGUSR1 writes one log record: the
number of tasks, then each task's name and the frames it is suspended in (innermost last), as a traceback
shows them. Nothing else changes; the service runs on. A frame's local values are not printed (no secret
can reach the log through this).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import traceback
from types import FrameType

log = logging.getLogger("madara_orchestrator.tasks")

FRAMES_PER_TASK = 12
"""The innermost frames shown for each task (a deep stack is cut at its outer end)."""


def _awaited_frames(task: asyncio.Task[object]) -> list[FrameType]:
    """The frames of the task's coroutine and of each coroutine it awaits, outermost first (``Task.get_stack``
    gives only the outermost one of a suspended coroutine)."""
    frames: list[FrameType] = []
    awaitable: object = task.get_coro()
    while awaitable is not None and len(frames) < 100:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is None:
            break
        frames.append(frame)
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
    return frames


def describe_tasks(tasks: set[asyncio.Task[object]] | None = None) -> str:
    """Every task of the running loop (or ``tasks``): its name, its coroutine, and where it waits."""
    tasks = asyncio.all_tasks() if tasks is None else tasks
    lines = [f"{len(tasks)} task(s) (kill -USR1):"]
    for task in sorted(tasks, key=lambda t: t.get_name()):
        coro = task.get_coro()
        name = getattr(coro, "__qualname__", type(coro).__name__)
        lines.append(f"task {task.get_name()} ({name}){' done' if task.done() else ''}")
        frames = _awaited_frames(task)[-FRAMES_PER_TASK:]
        summary = traceback.StackSummary.extract(
            ((frame, frame.f_lineno) for frame in frames), lookup_lines=True, capture_locals=False
        )
        lines.extend("  " + line.rstrip("\n").replace("\n", "\n  ") for line in summary.format())
    return "\n".join(lines)


def log_tasks() -> None:
    log.warning("%s", describe_tasks())


def install(loop: asyncio.AbstractEventLoop) -> None:
    """SIGUSR1 logs every task's stack (``log_tasks``); where the platform has no SIGUSR1, nothing."""
    usr1 = getattr(signal, "SIGUSR1", None)
    if usr1 is not None:
        loop.add_signal_handler(usr1, log_tasks)
