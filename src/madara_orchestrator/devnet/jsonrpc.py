"""The JSON-RPC 2.0 envelope the devnet's servers share (the sequencer, the Starknet L2 double), and the
header of an accepted block as both answer ``starknet_getBlockWith*``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

Dispatch = Callable[[Any], dict[str, Any]]
"""One request object in, its response object out (``result`` or ``error``)."""


class SealedBlock(Protocol):
    """A block of either double, as its header sees it."""

    @property
    def number(self) -> int: ...
    @property
    def block_hash(self) -> int: ...
    @property
    def parent_hash(self) -> int: ...
    @property
    def new_root(self) -> int: ...
    @property
    def timestamp(self) -> int: ...


def accepted_block_header(block: SealedBlock) -> dict[str, Any]:
    """The fields every ``starknet_getBlockWith*`` answer of an accepted block starts with."""
    return {
        "status": "ACCEPTED_ON_L2",
        "block_hash": hex(block.block_hash),
        "parent_hash": hex(block.parent_hash),
        "block_number": block.number,
        "new_root": hex(block.new_root),
        "timestamp": block.timestamp,
    }


async def jsonrpc_response(request: Request, dispatch: Dispatch) -> Response:
    """A single request or a batch; a body that is not JSON is a parse error (-32700). A client that went
    away before its body arrived (a process stopped mid-request) is nobody to answer: no traceback."""
    try:
        payload = json.loads(await request.body())
    except ClientDisconnect:
        return Response(status_code=499)
    except ValueError:
        return JSONResponse({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}})
    if isinstance(payload, list):
        return JSONResponse([dispatch(item) for item in payload])
    return JSONResponse(dispatch(payload))
