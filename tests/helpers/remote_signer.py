"""A remote signer double speaking Web3Signer's JSON-RPC (``eth_accounts``, ``eth_signTransaction``), holding its
keys in the test process, on its own thread (a worker process the test waits on blocking can still reach it).

It checks a request the way Web3Signer does: ``from`` must be one of its accounts, ``nonce`` is required, the
chain id is its own (a request's ``chainId`` is not used), ``gas``/``maxFeePerGas``/``maxPriorityFeePerGas``
make an EIP-1559 transaction, unknown fields are ignored. With ``blobs=True`` it also signs EIP-4844
transactions from ``maxFeePerBlobGas`` and ``blobVersionedHashes`` (as op-signer does); with ``blobs=False``
it ignores them as Web3Signer does and signs a type-2 transaction. Signatures come from eth-account, not from
the code under test. Optionally over TLS with a required client certificate, and with required headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import uvicorn
from eth_account import Account
from eth_utils import to_checksum_address
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

INVALID_PARAMS = -32602
NOT_UNLOCKED = -32000


class RemoteSignerDouble:
    def __init__(
        self,
        keys: list[str],
        *,
        chain_id: int = 31337,
        blobs: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.accounts = {Account.from_key(k).address.lower(): k for k in keys}
        self.chain_id = chain_id
        self.blobs = blobs
        self.required_headers = dict(headers or {})
        self.requests: list[dict[str, Any]] = []
        """Every JSON-RPC request received (the transaction objects as sent)."""
        self.refused_http: list[int] = []
        self.invalid: list[str] = []
        """Why each request answered "Invalid params" was invalid (for a failing test's message)."""
        self.app = Starlette(routes=[Route("/", self._endpoint, methods=["POST"])])

    def _error(self, call_id: object, code: int, message: str) -> JSONResponse:
        return JSONResponse({"jsonrpc": "2.0", "id": call_id, "error": {"code": code, "message": message}})

    async def _endpoint(self, request: Request) -> Response:
        for name, value in self.required_headers.items():
            if request.headers.get(name) != value:
                self.refused_http.append(401)
                return Response("Unauthorized", status_code=401)
        call = await request.json()
        self.requests.append(call)
        call_id, method, params = call.get("id"), call.get("method"), call.get("params") or []
        if method == "eth_accounts":
            return JSONResponse({"jsonrpc": "2.0", "id": call_id, "result": list(self.accounts)})
        if method != "eth_signTransaction":
            return self._error(call_id, -32601, "Method not found")
        if len(params) != 1 or not isinstance(params[0], dict):
            return self._error(call_id, INVALID_PARAMS, "Invalid params")
        try:
            raw = self.sign(params[0])
        except KeyError:
            return self._error(call_id, NOT_UNLOCKED, "Signing from is not an unlocked account")
        except (ValueError, TypeError) as exc:
            self.invalid.append(repr(exc))
            return self._error(call_id, INVALID_PARAMS, "Invalid params")
        return JSONResponse({"jsonrpc": "2.0", "id": call_id, "result": "0x" + raw.hex()})

    def sign(self, tx: dict[str, Any]) -> bytes:
        sender = str(tx.get("from") or "")
        if not sender:
            raise ValueError("from")
        key = self.accounts[sender.lower()]
        if tx.get("nonce") is None:
            raise ValueError("nonce")  # Web3Signer: "Nonce not present in request"
        fields: dict[str, Any] = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": int(tx["nonce"], 16),
            "gas": int(tx["gas"], 16),
            "maxFeePerGas": int(tx["maxFeePerGas"], 16),
            "maxPriorityFeePerGas": int(tx["maxPriorityFeePerGas"], 16),
            "to": to_checksum_address(tx["to"]) if tx.get("to") else b"",
            "value": int(tx.get("value") or "0x0", 16),
            "data": bytes.fromhex(str(tx.get("data") or "0x")[2:]),
            "accessList": [],
        }
        if self.blobs and tx.get("maxFeePerBlobGas") is not None:
            fields["type"] = 3
            fields["maxFeePerBlobGas"] = int(tx["maxFeePerBlobGas"], 16)
            fields["blobVersionedHashes"] = [bytes.fromhex(h[2:]) for h in tx["blobVersionedHashes"]]
        return bytes(Account.sign_transaction(fields, key).raw_transaction)


@contextlib.contextmanager
def serving(double: RemoteSignerDouble, *, tls: Mapping[str, Any] | None = None) -> Iterator[str]:
    """Serve ``double`` on 127.0.0.1 on a thread of its own; yields its URL (https with ``tls``: uvicorn's
    ``ssl_*`` options)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        double.app, log_level="warning", lifespan="off", access_log=False, log_config=None, **dict(tls or {})
    )
    server = uvicorn.Server(config)
    started = threading.Event()

    def run() -> None:
        async def main() -> None:
            task = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started and not task.done():  # noqa: ASYNC110 (uvicorn has no started event)
                await asyncio.sleep(0.01)
            started.set()
            await task

        asyncio.run(main())

    thread = threading.Thread(target=run, name="remote-signer", daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the remote signer double did not start")
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def mutual_tls(pki: Any) -> dict[str, Any]:
    """uvicorn's options for a server certificate of ``pki`` that requires a client certificate of its CA."""
    return {
        "ssl_certfile": pki.server_crt,
        "ssl_keyfile": pki.server_key,
        "ssl_ca_certs": pki.ca_crt,
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
    }
