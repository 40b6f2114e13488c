"""A small JSON-RPC 2.0 server over real HTTP (starlette + uvicorn) for tests.

It answers single calls and batch arrays from a table of handlers, records every HTTP request body,
and can be told to answer the next N requests with HTTP 503 (to exercise retries). ``CannedStarknet``
provides handlers for the Starknet reads the encoders make: storage, class hashes and nonces.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Handler = Callable[[Any], Any]


class RpcFault(Exception):
    """Raised by a handler to answer with a JSON-RPC error object."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class JsonRpcServer:
    def __init__(self, handlers: dict[str, Handler]) -> None:
        self.handlers = handlers
        self.bodies: list[Any] = []
        """Every HTTP request body received, in order (a dict, or a list for a batch)."""
        self.fail_next_requests = 0
        self.url = ""
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- what tests look at ------------------------------------------------------------------------

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Every single call, batched or not, in arrival order."""
        out: list[dict[str, Any]] = []
        for body in self.bodies:
            out += body if isinstance(body, list) else [body]
        return out

    def batch_sizes(self) -> list[int]:
        return [len(b) for b in self.bodies if isinstance(b, list)]

    # -- HTTP ------------------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}})
        with self._lock:
            self.bodies.append(body)
            if self.fail_next_requests > 0:
                self.fail_next_requests -= 1
                return Response("temporarily unavailable", status_code=503)
        if isinstance(body, list):
            return JSONResponse([self._answer(call) for call in body])
        return JSONResponse(self._answer(body))

    def _answer(self, call: Any) -> dict[str, Any]:
        call_id = call.get("id") if isinstance(call, dict) else None
        if not isinstance(call, dict) or "method" not in call:
            return {"jsonrpc": "2.0", "id": call_id, "error": {"code": -32600, "message": "Invalid request"}}
        handler = self.handlers.get(call["method"])
        if handler is None:
            return {"jsonrpc": "2.0", "id": call_id, "error": {"code": -32601, "message": "Method not found"}}
        try:
            result = handler(call.get("params"))
        except RpcFault as fault:
            return {"jsonrpc": "2.0", "id": call_id, "error": {"code": fault.code, "message": fault.message}}
        return {"jsonrpc": "2.0", "id": call_id, "result": result}

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        app = Starlette(routes=[Route("/", self._endpoint, methods=["POST"])])
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, log_config=None)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the JSON-RPC test server did not start")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}/"

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None


@contextmanager
def running_jsonrpc_server(handlers: dict[str, Handler]) -> Iterator[JsonRpcServer]:
    server = JsonRpcServer(handlers)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------------
# Canned Starknet data

CONTRACT_NOT_FOUND = 20


def _block_number(block_id: Any) -> int | str:
    if isinstance(block_id, dict) and "block_number" in block_id:
        return int(block_id["block_number"])
    return str(block_id)


def _int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) and value.startswith("0x") else int(value)


@dataclass
class CannedStarknet:
    """Storage, class hashes and nonces; every read records the block it asked for."""

    storage: dict[tuple[int, int], int] = field(default_factory=dict)
    class_hashes: dict[int, int] = field(default_factory=dict)
    """Contracts that exist; any other address answers ContractNotFound (code 20)."""
    nonces: dict[int, int] = field(default_factory=dict)
    blocks_asked: list[int | str] = field(default_factory=list)
    failing_storage: set[tuple[int, int]] = field(default_factory=set)
    """Slots whose read answers a JSON-RPC internal error."""

    def handlers(self) -> dict[str, Handler]:
        return {
            "starknet_getStorageAt": self._storage_at,
            "starknet_getClassHashAt": self._class_hash_at,
            "starknet_getNonce": self._nonce,
        }

    def _storage_at(self, params: Any) -> str:
        address, key, block = (
            (params["contract_address"], params["key"], params["block_id"]) if isinstance(params, dict) else params
        )
        self.blocks_asked.append(_block_number(block))
        slot = (_int(address), _int(key))
        if slot in self.failing_storage:
            raise RpcFault(-32603, "Internal error")
        return hex(self.storage.get(slot, 0))

    def _class_hash_at(self, params: Any) -> str:
        block, address = (params["block_id"], params["contract_address"]) if isinstance(params, dict) else params
        self.blocks_asked.append(_block_number(block))
        found = self.class_hashes.get(_int(address))
        if found is None:
            raise RpcFault(CONTRACT_NOT_FOUND, "Contract not found")
        return hex(found)

    def _nonce(self, params: Any) -> str:
        block, address = (params["block_id"], params["contract_address"]) if isinstance(params, dict) else params
        self.blocks_asked.append(_block_number(block))
        address_int = _int(address)
        if address_int not in self.nonces:
            raise RpcFault(CONTRACT_NOT_FOUND, "Contract not found")
        return hex(self.nonces[address_int])
