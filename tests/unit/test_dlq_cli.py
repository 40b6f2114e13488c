"""``orchestrator dlq list|show|redrive`` against a running orchestrator's API: every action needs the admin
token (never printed), errors are one line, and a redrive prints what it did."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from madara_orchestrator.cli.compose import build_embedded_stack
from madara_orchestrator.cli.devnet import devnet_settings
from madara_orchestrator.cli.main import main
from madara_orchestrator.domain.jobs import JobStatus, JobType
from madara_orchestrator.domain.queues import MAX_RECEIVE_COUNT, QueueType, parse_job_message
from madara_orchestrator.server.app import create_app
from madara_orchestrator.server.background import BackgroundServer
from tests.helpers.engine import proving_meta

TOKEN = "dlq-admin-token-" + "x" * 16
PT = JobType.PROOF_CREATION


async def test_dlq_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = await build_embedded_stack(devnet_settings(tmp_path / "data", "http://127.0.0.1:9", port=0))
    api = BackgroundServer(create_app(stack.runtime, admin_enabled=True, admin_token=TOKEN))
    await api.start()
    monkeypatch.delenv("MADARA_ORCHESTRATOR_ADMIN_TOKEN_FILE", raising=False)
    monkeypatch.delenv("MADARA_ORCHESTRATOR_ADMIN_TOKEN", raising=False)
    names = stack.runtime.config.queue_names
    service = stack.runtime.service

    async def cli(*argv: str) -> int:
        return await asyncio.to_thread(main, ["dlq", "--url", api.url, *argv])

    try:
        job = await service.create_job(PT, 3, proving_meta(3))
        assert job is not None
        for _ in range(MAX_RECEIVE_COUNT):
            message = await stack.queue.receive(names.processing(PT))
            assert message is not None
            await stack.queue.nack(message)
        assert await stack.queue.receive(names.processing(PT)) is None
        dead = await stack.queue.receive(names.of(QueueType.JOB_HANDLE_FAILURE))
        assert dead is not None
        await service.handle_job_failure(parse_job_message(dead.body), dead)
        await stack.queue.ack(dead)

        assert await cli("list") == 2
        err = capsys.readouterr().err
        assert err.startswith("error: orchestrator dlq needs the orchestrator's admin token") and err.count("\n") == 1
        assert await cli("list", "--admin-token", "wrong") == 2
        assert "Authorization: Bearer" in capsys.readouterr().err

        monkeypatch.setenv("MADARA_ORCHESTRATOR_ADMIN_TOKEN", TOKEN)
        assert await cli("list") == 0
        out = capsys.readouterr().out
        assert f"{names.processing(PT)}: 1" in out and dead.message_id in out and str(job.id) in out
        assert await cli("show", dead.message_id) == 0
        assert '"body"' in capsys.readouterr().out
        assert await cli("redrive") == 2
        assert "give one id" in capsys.readouterr().err
        assert await cli("redrive", str(job.id)) == 0
        assert f"redriven to {names.processing(PT)}" in capsys.readouterr().out
        fresh = await stack.store.get_job(job.id)
        assert fresh is not None and fresh.status == JobStatus.PENDING_RETRY

        assert await cli("redrive", "--all") == 0
        assert "No dead letters to redrive" in capsys.readouterr().out
        assert await cli("show", "nope") == 2
        err = capsys.readouterr().err
        assert "orchestrator dlq list" in err and err.count("\n") == 1
        out = capsys.readouterr()
        assert TOKEN not in out.out + out.err
    finally:
        await api.stop()
        await stack.close()
