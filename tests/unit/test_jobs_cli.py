"""``orchestrator jobs retry`` changes a job: it POSTs with the admin token, read from ``--admin-token``,
``MADARA_ORCHESTRATOR_ADMIN_TOKEN_FILE`` or ``MADARA_ORCHESTRATOR_ADMIN_TOKEN``, and never prints it."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
import uuid
from pathlib import Path

import pytest

from madara_orchestrator.cli.compose import build_embedded_stack
from madara_orchestrator.cli.devnet import devnet_settings
from madara_orchestrator.cli.jobs import admin_token, jobs_command
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.domain.jobs import JobStatus, JobType
from madara_orchestrator.server.app import create_app
from madara_orchestrator.server.background import BackgroundServer
from tests.helpers.engine import proving_meta

TOKEN = "cli-admin-token-" + "x" * 16


def retry_args(url: str, job_id: uuid.UUID, token: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(url=url, action="retry", id=str(job_id), priority=False, admin_token=token)


def test_the_token_comes_from_the_flag_then_the_file_then_the_variable(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    env = {"MADARA_ORCHESTRATOR_ADMIN_TOKEN_FILE": str(token_file), "MADARA_ORCHESTRATOR_ADMIN_TOKEN": "from-var"}
    assert admin_token("from-flag", env) == "from-flag"
    assert admin_token(None, env) == TOKEN
    assert admin_token(None, {"MADARA_ORCHESTRATOR_ADMIN_TOKEN": "from-var"}) == "from-var"
    with pytest.raises(InvalidInput, match=r"^jobs retry changes a job and needs .*--admin-token") as refused:
        admin_token(None, {})
    assert "\n" not in str(refused.value)
    with pytest.raises(InvalidInput, match="cannot read"):
        admin_token(None, {"MADARA_ORCHESTRATOR_ADMIN_TOKEN_FILE": str(tmp_path / "missing")})


async def test_retry_posts_with_the_token_and_never_prints_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = await build_embedded_stack(devnet_settings(tmp_path / "data", "http://127.0.0.1:9", port=0))
    api = BackgroundServer(create_app(stack.runtime, admin_enabled=True, admin_token=TOKEN))
    await api.start()
    try:
        job = await stack.runtime.service.create_job(JobType.PROOF_CREATION, 1, proving_meta(1))
        assert job is not None
        job = await stack.store.update_job(dataclasses.replace(job, status=JobStatus.FAILED), now=time.time())
        monkeypatch.delenv("MADARA_ORCHESTRATOR_ADMIN_TOKEN_FILE", raising=False)
        monkeypatch.delenv("MADARA_ORCHESTRATOR_ADMIN_TOKEN", raising=False)
        with pytest.raises(InvalidInput, match="needs the orchestrator's admin token"):
            await asyncio.to_thread(jobs_command, retry_args(api.url, job.id))
        with pytest.raises(InvalidInput, match=r"need 'Authorization: Bearer <admin token>'"):
            await asyncio.to_thread(jobs_command, retry_args(api.url, job.id, "wrong-token"))
        fresh = await stack.store.get_job(job.id)
        assert fresh is not None and fresh.status == JobStatus.FAILED
        monkeypatch.setenv("MADARA_ORCHESTRATOR_ADMIN_TOKEN", TOKEN)
        assert await asyncio.to_thread(jobs_command, retry_args(api.url, job.id)) == 0
        fresh = await stack.store.get_job(job.id)
        assert fresh is not None and fresh.status == JobStatus.PENDING_RETRY
        out = capsys.readouterr()
        assert f"Job with id {job.id} queued for normal retry" in out.out
        assert TOKEN not in out.out + out.err
    finally:
        await api.stop()
        await stack.close()
