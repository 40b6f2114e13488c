"""The JSON-RPC 2.0 envelope the devnet's servers share (the sequencer, the Starknet L2 double)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

Dispatch = Callable[[Any], dict[str, Any]]
"""One request object in, its response object out (``result`` or ``error``)."""


async def jsonrpc_response(request: Request, dispatch: Dispatch) -> Response:
    """A single request or a batch; a body that is not JSON is a parse error (-32700)."""
    try:
        payload = json.loads(await request.body())
    except ValueError:
        return JSONResponse({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}})
    if isinstance(payload, list):
        return JSONResponse([dispatch(item) for item in payload])
    return JSONResponse(dispatch(payload))
