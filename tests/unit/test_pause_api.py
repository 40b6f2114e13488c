"""Pause and resume through the API and the CLI (issue 21, item 2): ``POST /pause/{stage}`` and ``POST
/resume/{stage}`` need the admin token (401 without, 400 without --admin-enabled); ``/health``, ``/pauses``
and the dashboard say what is paused, by whom and since when; ``orchestrator admin pause|resume|pauses``
talks to the API and never prints the token."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from madara_orchestrator.cli.admin import admin_command, default_by
from madara_orchestrator.cli.compose import EmbeddedStack, build_embedded_stack
from madara_orchestrator.cli.devnet import devnet_settings
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.domain.pause import Stage
from madara_orchestrator.server.app import create_app
from madara_orchestrator.server.background import BackgroundServer
from tests.helpers.jsonrpc_server import JsonRpcServer, running_jsonrpc_server

TOKEN = "p" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Api:
    stack: EmbeddedStack
    http: httpx.AsyncClient


HEAD = 5


@pytest.fixture
def sequencer() -> Iterator[JsonRpcServer]:
    handlers = {"starknet_chainId": lambda _: "0x534e5f5345504f4c4941", "starknet_blockNumber": lambda _: HEAD}
    with running_jsonrpc_server(handlers) as server:
        yield server


async def _api(tmp_path: Path, sequencer: JsonRpcServer, **app_options: object) -> AsyncIterator[Api]:
    stack = await build_embedded_stack(devnet_settings(tmp_path / "data", sequencer.url, port=0))
    app = create_app(stack.runtime, **app_options)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        yield Api(stack, http)
    await stack.runtime.triggers.stop()
    await stack.close()


@pytest.fixture
async def api(tmp_path: Path, sequencer: JsonRpcServer) -> AsyncIterator[Api]:
    async for value in _api(tmp_path, sequencer, admin_enabled=True, admin_token=TOKEN):
        yield value


@pytest.fixture
async def plain_api(tmp_path: Path, sequencer: JsonRpcServer) -> AsyncIterator[Api]:
    async for value in _api(tmp_path, sequencer):
        yield value


@pytest.mark.parametrize("action", ["pause", "resume"])
async def test_pausing_needs_the_admin_token(api: Api, action: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        reply = await api.http.post(f"/{action}/settlement", headers=headers)
        assert reply.status_code == 401, reply.text
        assert "Authorization: Bearer <admin token>" in reply.json()["message"] and TOKEN not in reply.text
    assert await api.stack.runtime.pauses.current() == {}
    assert (await api.http.get(f"/{action}/settlement", headers=AUTH)).status_code == 405


@pytest.mark.parametrize("action", ["pause", "resume"])
async def test_without_admin_enabled_pausing_refuses_saying_how_to_enable(plain_api: Api, action: str) -> None:
    reply = await plain_api.http.post(f"/{action}/settlement", headers=AUTH)
    assert reply.status_code == 400, reply.text
    assert "--admin-enabled" in reply.json()["message"]
    assert await plain_api.stack.runtime.pauses.current() == {}


async def test_an_unknown_stage_is_refused(api: Api) -> None:
    reply = await api.http.post("/pause/snos", headers=AUTH)
    assert reply.status_code == 400 and "batching, proving, settlement" in reply.json()["message"], reply.text


async def test_health_pauses_and_the_dashboard_say_what_is_paused_by_whom_since_when(api: Api) -> None:
    assert (await api.http.get("/pauses")).json()["message"] == "nothing is paused"
    reply = await api.http.post(
        "/pause/settlement", params={"reason": "incident 42: key rotation", "by": "alice@laptop"}, headers=AUTH
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    pause = body["data"]["pause"]
    assert body["data"]["paused"] is True and pause["by"] == "alice@laptop"
    assert pause["reason"] == "incident 42: key rotation" and isinstance(pause["since"], float)
    assert body["message"].startswith("settlement paused by alice@laptop since ")
    assert body["message"].endswith(": incident 42: key rotation")

    again = await api.http.post("/pause/settlement", params={"reason": "other"}, headers=AUTH)
    assert "paused already; that pause stands" in again.json()["message"]
    assert again.json()["data"]["pause"] == pause

    health = await api.http.get("/health")
    assert health.status_code == 200, "a pause is deliberate: still UP"
    lines = health.text.splitlines()
    assert lines[0] == "UP" and lines[1] == body["message"]
    document = (await api.http.get("/health", headers={"Accept": "application/json"})).json()
    assert document["paused"] == {"settlement": pause}
    assert (await api.http.get("/pauses")).json()["data"] == {"paused": {"settlement": pause}}
    overview = (await api.http.get("/api/v1/dashboard/overview")).json()["data"]
    assert overview["paused"] == {"settlement": pause}
    metrics = (await api.http.get("/metrics")).text
    assert 'orchestrator_stage_paused{stage="settlement"} 1.0' in metrics
    assert 'orchestrator_stage_paused{stage="batching"} 0.0' in metrics

    reply = await api.http.post("/resume/settlement", params={"by": "bob"}, headers=AUTH)
    assert reply.status_code == 200 and reply.json()["message"].startswith("settlement resumed (settlement paused by")
    assert (await api.http.get("/health")).text == "UP"
    assert (await api.http.post("/resume/settlement", headers=AUTH)).json()["message"] == "settlement was not paused"
    subjects = [subject for subject, _ in api.stack.recorded_alerts.sent]
    assert subjects == ["Settlement paused", "Settlement resumed"]


async def test_without_a_by_the_pause_names_the_instance(api: Api) -> None:
    reply = await api.http.post("/pause/proving", headers=AUTH)
    pause = reply.json()["data"]["pause"]
    assert pause["by"] == f"admin API on {api.stack.runtime.service.owner}" and pause["reason"] == "no reason given"


def admin_args(url: str, action: str, stage: str | None = None, **extra: object) -> argparse.Namespace:
    values: dict[str, object] = {"url": url, "action": action, "admin_token": None, "by": None, "reason": None}
    if stage is not None:
        values["stage"] = stage
    return argparse.Namespace(**(values | extra))


async def test_the_cli_pauses_and_resumes_and_never_prints_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = await build_embedded_stack(devnet_settings(tmp_path / "data", "http://127.0.0.1:9", port=0))
    server = BackgroundServer(create_app(stack.runtime, admin_enabled=True, admin_token=TOKEN))
    await server.start()
    try:
        monkeypatch.delenv("MADARA_ORCHESTRATOR_ADMIN_TOKEN_FILE", raising=False)
        monkeypatch.delenv("MADARA_ORCHESTRATOR_ADMIN_TOKEN", raising=False)
        with pytest.raises(InvalidInput, match=r"^admin pause changes what every instance does and needs"):
            await asyncio.to_thread(admin_command, admin_args(server.url, "pause", "batching"))
        monkeypatch.setenv("MADARA_ORCHESTRATOR_ADMIN_TOKEN", TOKEN)
        args = admin_args(server.url, "pause", "batching", reason="reorg upstream")
        assert await asyncio.to_thread(admin_command, args) == 0
        pause = (await stack.runtime.pauses.current())[Stage.BATCHING]
        assert (pause.reason, pause.by) == ("reorg upstream", default_by())
        assert await asyncio.to_thread(admin_command, admin_args(server.url, "pauses")) == 0
        assert await asyncio.to_thread(admin_command, admin_args(server.url, "resume", "batching")) == 0
        assert await stack.runtime.pauses.current() == {}
        out = capsys.readouterr()
        printed = out.out.splitlines()
        assert printed[0] == pause.describe() and printed[1] == pause.describe()
        assert printed[2].startswith("batching resumed (")
        assert TOKEN not in out.out + out.err
    finally:
        await server.stop()
        await stack.runtime.triggers.stop()
        await stack.close()
