"""Bouncer weights over real HTTP: the devnet sequencer's feeder gateway route and ``FeederGatewayClient``."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from madara_orchestrator.devnet.sequencer import DevnetChain, DevnetSequencer
from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput, Retryable
from madara_orchestrator.interfaces import FeederGateway
from madara_orchestrator.server.background import BackgroundServer, free_port
from madara_orchestrator.starknet.feeder import BlockNotKnownYet, FeederGatewayClient, FeederGatewayError

WEIGHTS_PATH = "/feeder_gateway/get_block_bouncer_weights"


@pytest.fixture
async def devnet() -> AsyncIterator[tuple[DevnetSequencer, str]]:
    chain = DevnetChain(tx_per_block=30)
    for _ in range(4):
        chain.produce_block()
    sequencer = DevnetSequencer(chain)
    server = BackgroundServer(sequencer.app)
    url = await server.start()
    yield sequencer, url
    await server.stop()


async def serve(answer: Response) -> tuple[BackgroundServer, list[str]]:
    """A gateway that always gives ``answer``; the list records the query strings it was asked."""
    asked: list[str] = []

    async def endpoint(request: Request) -> Response:
        asked.append(request.url.query)
        return answer

    server = BackgroundServer(Starlette(routes=[Route(WEIGHTS_PATH, endpoint)]))
    await server.start()
    return server, asked


# -- the devnet's route --------------------------------------------------------------------------------


async def test_the_devnet_serves_each_blocks_weights_as_madara_does(devnet: tuple[DevnetSequencer, str]) -> None:
    sequencer, url = devnet
    async with httpx.AsyncClient(base_url=url) as http:
        for block in sequencer.chain.blocks:
            response = await http.get(WEIGHTS_PATH, params={"blockNumber": block.number})
            assert response.status_code == 200
            body = response.json()
            assert body == block.weights.to_json()
            assert body["n_txs"] == len(block.tx_hashes)
            assert all(isinstance(v, int) for v in body.values())


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({}, "StarknetErrorCode.MALFORMED_REQUEST"),
        ({"blockNumber": "latest"}, "StarknetErrorCode.MALFORMED_REQUEST"),
        ({"blockNumber": "-1"}, "StarknetErrorCode.MALFORMED_REQUEST"),
        ({"blockNumber": "5"}, "StarknetErrorCode.BLOCK_NOT_FOUND"),
    ],
)
async def test_a_bad_or_unknown_block_is_a_400_with_a_starknet_error_code(
    devnet: tuple[DevnetSequencer, str], query: dict[str, str], code: str
) -> None:
    _, url = devnet
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.get(WEIGHTS_PATH, params=query)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]


# -- the client ----------------------------------------------------------------------------------------


async def test_the_client_reads_the_weights_the_devnet_recorded(devnet: tuple[DevnetSequencer, str]) -> None:
    sequencer, url = devnet
    client = FeederGatewayClient(url, retry_pause_s=0)
    gateway: FeederGateway = client
    try:
        for block in sequencer.chain.blocks:
            assert await gateway.get_block_bouncer_weights(block.number) == block.weights
        sequencer.chain.produce_block()
        assert await gateway.get_block_bouncer_weights(5) == sequencer.chain.blocks[5].weights
    finally:
        await client.aclose()


async def test_a_url_ending_in_feeder_gateway_reaches_the_same_route(devnet: tuple[DevnetSequencer, str]) -> None:
    sequencer, url = devnet
    client = FeederGatewayClient(url + "/feeder_gateway/", retry_pause_s=0)
    try:
        assert await client.get_block_bouncer_weights(2) == sequencer.chain.blocks[2].weights
    finally:
        await client.aclose()


async def test_a_block_the_gateway_does_not_know_yet_is_invalid_input_that_may_be_retried(
    devnet: tuple[DevnetSequencer, str],
) -> None:
    _, url = devnet
    client = FeederGatewayClient(url, retry_pause_s=0)
    try:
        with pytest.raises(BlockNotKnownYet, match="does not know block 9 yet") as caught:
            await client.get_block_bouncer_weights(9)
    finally:
        await client.aclose()
    assert isinstance(caught.value, InvalidInput) and isinstance(caught.value, Retryable)
    assert caught.value.code == "StarknetErrorCode.BLOCK_NOT_FOUND"
    assert caught.value.status == 400


async def test_another_refusal_is_a_feeder_gateway_error_without_retries() -> None:
    answer = JSONResponse({"code": "StarknetErrorCode.MALFORMED_REQUEST", "message": "nope"}, status_code=400)
    server, asked = await serve(answer)
    client = FeederGatewayClient(server.url, retry_pause_s=0)
    try:
        with pytest.raises(FeederGatewayError, match="MALFORMED_REQUEST: nope") as caught:
            await client.get_block_bouncer_weights(3)
    finally:
        await client.aclose()
        await server.stop()
    assert not isinstance(caught.value, BlockNotKnownYet)
    assert asked == ["blockNumber=3"]


async def test_a_502_is_retried_the_given_number_of_times_then_backend_unavailable() -> None:
    server, asked = await serve(PlainTextResponse("bad gateway", status_code=502))
    client = FeederGatewayClient(server.url, attempts=3, retry_pause_s=0)
    try:
        with pytest.raises(BackendUnavailable) as caught:
            await client.get_block_bouncer_weights(7)
    finally:
        await client.aclose()
        await server.stop()
    assert asked == ["blockNumber=7"] * 3
    message = str(caught.value)
    assert "\n" not in message
    assert f"{server.url}{WEIGHTS_PATH}" in message and "block 7" in message
    assert "after 3 attempts" in message and "HTTP 502" in message


async def test_an_unreachable_gateway_is_backend_unavailable_naming_url_block_and_cause() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = FeederGatewayClient(url, attempts=2, retry_pause_s=0, timeout_s=2)
    try:
        with pytest.raises(BackendUnavailable) as caught:
            await client.get_block_bouncer_weights(4)
    finally:
        await client.aclose()
    message = str(caught.value)
    assert url in message and "block 4" in message and "after 2 attempts" in message
    assert "ConnectError" in message


@pytest.mark.parametrize(
    "answer",
    [
        JSONResponse([1, 2, 3]),
        JSONResponse({"n_txs": "many"}),
        JSONResponse({"n_txs": 3, "gas": 5}),
        JSONResponse({"n_txs": -1}),
        PlainTextResponse("not json"),
    ],
)
async def test_an_answer_of_the_wrong_shape_is_invalid_input(answer: Response) -> None:
    server, asked = await serve(answer)
    client = FeederGatewayClient(server.url, retry_pause_s=0)
    try:
        with pytest.raises(InvalidInput, match="bouncer weights of block 1 from"):
            await client.get_block_bouncer_weights(1)
    finally:
        await client.aclose()
        await server.stop()
    assert len(asked) == 1, "a malformed answer is not retried"


# -- the URL built from an RPC URL with a path, a query and credentials (issue 17) ---------------------


async def test_an_rpc_url_with_a_query_keeps_it_as_the_query_of_the_feeder_request(
    devnet: tuple[DevnetSequencer, str],
) -> None:
    """``http://bob:pw@host/?apikey=K``: the route is ``/feeder_gateway/get_block_bouncer_weights`` (not
    ``/?apikey=K/feeder_gateway/...``, which a node answers 405), the key travels as a query parameter next
    to ``blockNumber``, and the credentials as basic authentication."""
    sequencer, url = devnet
    seen: list[httpx.Request] = []
    client = FeederGatewayClient(
        url.replace("http://", "http://bob:pw@") + "/?apikey=K3y",
        retry_pause_s=0,
        client=httpx.AsyncClient(event_hooks={"request": [lambda r: _record(seen, r)]}),
    )
    try:
        assert await client.get_block_bouncer_weights(2) == sequencer.chain.blocks[2].weights
    finally:
        await client.aclose()
    [request] = seen
    assert request.url.path == WEIGHTS_PATH
    assert dict(request.url.params) == {"apikey": "K3y", "blockNumber": "2"}
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"bob:pw").decode()


async def _record(seen: list[httpx.Request], request: httpx.Request) -> None:
    seen.append(request)


async def test_a_base_path_is_kept_and_the_route_appended() -> None:
    asked: list[str] = []

    async def endpoint(request: Request) -> Response:
        asked.append(f"{request.url.path}?{request.url.query}")
        return JSONResponse({"n_txs": 1})

    server = BackgroundServer(Starlette(routes=[Route("/v2/abc" + WEIGHTS_PATH, endpoint)]))
    await server.start()
    client = FeederGatewayClient(server.url + "/v2/abc/feeder_gateway?key=1", retry_pause_s=0)
    try:
        await client.get_block_bouncer_weights(4)
    finally:
        await client.aclose()
        await server.stop()
    assert asked == ["/v2/abc/feeder_gateway/get_block_bouncer_weights?key=1&blockNumber=4"]


@pytest.mark.parametrize("status", [404, 405, 401, 403])
async def test_an_answer_that_is_not_a_feeder_gateways_is_an_outage_naming_the_flag(status: int) -> None:
    """An RPC port answers the gateway's GET with 405: not a job or batching error with a traceback, but a
    wait (BackendUnavailable: one line a try) saying to check --madara-feeder-gateway-url. The key in the
    URL is never named."""
    server, asked = await serve(PlainTextResponse("Method Not Allowed", status_code=status))
    client = FeederGatewayClient(server.url + "/?apikey=K3yK3y", retry_pause_s=0)
    try:
        with pytest.raises(BackendUnavailable) as caught:
            await client.get_block_bouncer_weights(1)
    finally:
        await client.aclose()
        await server.stop()
    message = str(caught.value)
    assert isinstance(caught.value, FeederGatewayError) and caught.value.status == status
    assert f"HTTP {status}" in message and "--madara-feeder-gateway-url" in message and "--gateway-port" in message
    assert "K3yK3y" not in message and "\n" not in message
    assert asked == ["apikey=K3yK3y&blockNumber=1"], "not retried"


async def test_the_fee_tokens_are_the_chains_own() -> None:
    chain = DevnetChain(tx_per_block=5, fee_token=0xFEE)
    chain.produce_block()
    assert any(d["address"] == "0xfee" for d in chain.blocks[1].state_diff["storage_diffs"]), "fees paid in it"
    server = BackgroundServer(DevnetSequencer(chain).app)
    client = FeederGatewayClient(await server.start() + "?apikey=k")
    try:
        tokens = await client.get_fee_tokens()
        assert (tokens.strk, tokens.eth) == (0xFEE, 0x049D36570D4E46F48E99674BD3FCC84644DDD6B96F7C741B1562B82F9E004DC7)
    finally:
        await client.aclose()
        await server.stop()
    answer = JSONResponse({"strk_l2_token_address": "0xfee"})  # no ETH token
    broken = BackgroundServer(Starlette(routes=[Route("/feeder_gateway/get_contract_addresses", lambda _: answer)]))
    client = FeederGatewayClient(await broken.start())
    try:
        with pytest.raises(InvalidInput, match="eth_l2_token_address is missing or not a felt"):
            await client.get_fee_tokens()
    finally:
        await client.aclose()
        await broken.stop()
