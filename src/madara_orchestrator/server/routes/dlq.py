"""Dead-letter routes (``/admin/dlq``): the dead letters by source queue, one in full, and redrive
(``engine/dead_letters.py``). Mounted only with ``--admin-enabled``; each requires
``Authorization: Bearer <admin token>``, as the other admin routes."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from madara_orchestrator.domain.dead_letters import DeadLetter
from madara_orchestrator.domain.errors import NotFound
from madara_orchestrator.domain.jobs import JobStatus, JobType
from madara_orchestrator.domain.queues import QueueType
from madara_orchestrator.engine import dead_letters as dl
from madara_orchestrator.server.http import Endpoint, Param, api, envelope

ADMIN = "Admin endpoints"

IDENT = Param(
    "id", "path", str, required=True, description="The dead letter's job id (the id in its body) or message id"
)


class DeadLetterItem(BaseModel):
    message_id: str
    source_queue: str | None
    """As the backend said (None: not said; the list then files it under its job's queue of its phase)."""
    job_id: uuid.UUID
    job_type: JobType
    internal_id: int
    job_status: JobStatus
    last_status: JobStatus
    """The job's status when its message was dead-lettered."""
    receive_count: int
    sent_at: float | None
    first_receive_at: float | None
    last_receive_at: float | None
    dead_lettered_at: float
    reason: str | None


class DeadLetterFull(DeadLetterItem):
    body: str
    failure_reason: str | None
    previous_failure_reasons: list[str]


class QueueDeadLetters(BaseModel):
    queue: str
    count: int
    messages: list[DeadLetterItem]


class DeadLetterList(BaseModel):
    dead_letter_queue: str
    waiting: int
    """Messages in the dead-letter queue its consumer has not handled (recorded) yet."""
    count: int
    queues: list[QueueDeadLetters]


class RedriveItem(BaseModel):
    job_id: uuid.UUID
    changed: bool
    note: str
    queue: str | None
    job_status: JobStatus


class RedriveResult(BaseModel):
    redriven: int
    unchanged: int
    results: list[RedriveItem]


def _item(listed: dl.Listed, letter: DeadLetter) -> dict[str, Any]:
    job = listed.job
    return {
        "message_id": letter.message_id,
        "source_queue": letter.source_queue,
        "job_id": str(job.id),
        "job_type": job.job_type.value,
        "internal_id": job.internal_id,
        "job_status": job.status.value,
        "last_status": letter.last_status.value,
        "receive_count": letter.receive_count,
        "sent_at": letter.sent_at,
        "first_receive_at": letter.first_receive_at,
        "last_receive_at": letter.last_receive_at,
        "dead_lettered_at": letter.dead_lettered_at,
        "reason": letter.reason,
    }


async def list_route(request: Request) -> Response:
    api(request).check_admin(request, ADMIN)
    service = api(request).runtime.service
    by_queue: dict[str, list[dict[str, Any]]] = {}
    for listed in await dl.dead_letters(service):
        assert listed.letter is not None
        by_queue.setdefault(dl.queue_of(service, listed), []).append(_item(listed, listed.letter))
    waiting = await dl.waiting(service)
    total = sum(len(items) for items in by_queue.values())
    data = {
        "dead_letter_queue": service.names.of(QueueType.JOB_HANDLE_FAILURE),
        "waiting": waiting,
        "count": total,
        "queues": [{"queue": q, "count": len(items), "messages": items} for q, items in sorted(by_queue.items())],
    }
    message = f"{total} dead letter(s) in {len(by_queue)} queue(s)"
    if waiting:
        message += f"; {waiting} in the dead-letter queue not handled yet"
    return envelope(data=data, message=message)


async def show_route(request: Request) -> Response:
    api(request).check_admin(request, ADMIN)
    listed = await dl.find(api(request).runtime.service, request.path_params["id"])
    if listed.letter is None:
        raise NotFound(
            f"job {listed.job.id} ({listed.job.status}) carries no dead letter; `orchestrator dlq list` shows them"
        )
    common = listed.job.common
    data = _item(listed, listed.letter) | {
        "body": listed.letter.body,
        "failure_reason": common.failure_reason,
        "previous_failure_reasons": list(common.previous_failure_reasons),
    }
    return envelope(data=data, message=f"dead letter {listed.letter.message_id} of job {listed.job.id}")


def _redriven(result: dl.Redriven) -> dict[str, Any]:
    return {
        "job_id": str(result.job.id),
        "changed": result.changed,
        "note": result.note,
        "queue": result.queue,
        "job_status": result.job.status.value,
    }


def _answer(results: list[dl.Redriven], message: str) -> Response:
    changed = sum(1 for r in results if r.changed)
    data = {"redriven": changed, "unchanged": len(results) - changed, "results": [_redriven(r) for r in results]}
    return envelope(data=data, message=message)


async def redrive_one(request: Request) -> Response:
    api(request).check_admin(request, ADMIN)
    service = api(request).runtime.service
    result = await dl.redrive(service, await dl.find(service, request.path_params["id"]))
    return _answer([result], f"job {result.job.id}: {result.note}")


async def redrive_all(request: Request) -> Response:
    api(request).check_admin(request, ADMIN)
    service = api(request).runtime.service
    results = [await dl.redrive(service, listed) for listed in await dl.dead_letters(service)]
    changed = sum(1 for r in results if r.changed)
    message = "No dead letters to redrive" if not results else f"Redriven: {changed} of {len(results)} dead letter(s)"
    return _answer(results, message)


def endpoints() -> list[Endpoint]:
    common: dict[str, Any] = {"tag": "admin", "admin": True}
    return [
        Endpoint(
            "/admin/dlq",
            list_route,
            "adminDeadLetters",
            "The dead letters by source queue (and how many wait in the dead-letter queue)",
            data=DeadLetterList,
            errors=(400, 401, 503),
            **common,
        ),
        Endpoint(
            "/admin/dlq/redrive",
            redrive_all,
            "adminRedriveAll",
            "Redrive every dead letter",
            method="POST",
            data=RedriveResult,
            errors=(400, 401, 409, 413, 503),
            **common,
        ),
        Endpoint(
            "/admin/dlq/{id}",
            show_route,
            "adminDeadLetter",
            "One dead letter in full",
            data=DeadLetterFull,
            errors=(400, 401, 404, 503),
            params=(IDENT,),
            **common,
        ),
        Endpoint(
            "/admin/dlq/{id}/redrive",
            redrive_one,
            "adminRedriveOne",
            "Redrive one dead letter (a job no longer Failed is left as it is, and the answer says so)",
            method="POST",
            data=RedriveResult,
            errors=(400, 401, 404, 409, 413, 503),
            params=(IDENT,),
            **common,
        ),
    ]
