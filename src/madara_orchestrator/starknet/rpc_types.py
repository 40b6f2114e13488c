"""The Starknet JSON-RPC vocabulary the pure modules share with the client: error codes and block ids.

No I/O and no HTTP library here: ``starknet/squash.py``, ``starknet/aliases.py`` and ``starknet/rpc_cache.py``
(which the engine uses) build calls and read errors with these, and only ``starknet/rpc.py`` sends them.
"""

from __future__ import annotations

# Starknet JSON-RPC error codes (starknet_api_openrpc.json / starknet_write_api.json).
CONTRACT_NOT_FOUND = 20
BLOCK_NOT_FOUND = 24
TXN_HASH_NOT_FOUND = 29
NO_BLOCKS = 32
"""``starknet_blockNumber`` of a chain without any block yet."""
CONTRACT_ERROR = 40
TRANSACTION_EXECUTION_ERROR = 41
INVALID_TRANSACTION_NONCE = 52
INSUFFICIENT_RESOURCES_FOR_VALIDATE = 53
INSUFFICIENT_ACCOUNT_BALANCE = 54
VALIDATION_FAILURE = 55
DUPLICATE_TX = 59
METHOD_NOT_FOUND = -32601
"""JSON-RPC 2.0: the node has no such method."""


def block_id(block_number: int | str) -> dict[str, int] | str:
    """``{"block_number": N}`` for a number; tags (``latest``, ``pre_confirmed``) pass through."""
    return {"block_number": block_number} if isinstance(block_number, int) else block_number
