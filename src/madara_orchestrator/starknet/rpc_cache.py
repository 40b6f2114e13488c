"""A cache in front of the batched reads squashing and stateful compression make.

Batching squashes the open batch again with every block, against the same pre-range block, so the
same ``getStorageAt`` / ``getClassHashAt`` reads at that block come back every time. State at a
numbered (final) block never changes, so those answers are kept, until the batcher says no read
will come back below a block (``forget_before``: the open batch's pre-range block, when a batch
opens). An alias (contract 0x2) once assigned never changes either: a non-zero alias read at
block R also answers any read at a block ≥ R. Everything else (tags such as ``latest``, other
methods, errors other than "contract not found") goes to the node every time.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from madara_orchestrator.domain.errors import RpcError
from madara_orchestrator.interfaces import BatchRpc, RpcCall
from madara_orchestrator.starknet.compression import ALIAS_CONTRACT_ADDRESS
from madara_orchestrator.starknet.rpc_types import CONTRACT_NOT_FOUND

CACHED_METHODS = frozenset({"starknet_getStorageAt", "starknet_getClassHashAt"})


def _block_number(value: Any) -> int | None:
    if isinstance(value, dict) and isinstance(value.get("block_number"), int):
        return int(value["block_number"])
    return None


def _cache_key(call: RpcCall) -> tuple[str, int, tuple[str, ...]] | None:
    """(method, block, other params) for a read at a numbered block; None for anything else."""
    if call.method not in CACHED_METHODS or not isinstance(call.params, list):
        return None
    rest: tuple[str, ...]
    if call.method == "starknet_getStorageAt" and len(call.params) == 3:
        block = _block_number(call.params[2])
        rest = (str(call.params[0]).lower(), str(call.params[1]).lower())
    elif call.method == "starknet_getClassHashAt" and len(call.params) == 2:
        block = _block_number(call.params[0])
        rest = (str(call.params[1]).lower(),)
    else:
        return None
    return None if block is None else (call.method, block, rest)


def _alias_key(call: RpcCall) -> str | None:
    """The key of an alias read (``getStorageAt`` on contract 0x2, key ≠ 0: key 0 is the counter)."""
    if call.method != "starknet_getStorageAt" or not isinstance(call.params, list) or len(call.params) != 3:
        return None
    try:
        contract, key = int(str(call.params[0]), 16), int(str(call.params[1]), 16)
    except ValueError:
        return None
    return hex(key) if contract == ALIAS_CONTRACT_ADDRESS and key != 0 else None


@dataclass(eq=False, repr=False)
class CachingBatchRpc:
    """Implements ``BatchRpc`` over another one; bounded (least recently used entries go first, reads
    and aliases each), and reads at blocks below ``forget_before``'s are dropped. A read kept costs about
    0.5 KiB, an alias about 0.35 KiB (20,000 aliases: 7 MiB)."""

    inner: BatchRpc
    _: KW_ONLY
    max_entries: int = 500_000
    max_aliases: int = 20_000
    _values: OrderedDict[tuple[str, int, tuple[str, ...]], Any | RpcError] = field(
        default_factory=OrderedDict, init=False
    )
    _aliases: OrderedDict[str, tuple[int, Any]] = field(default_factory=OrderedDict, init=False)
    """Alias key → (the block it was first seen non-zero at, the value)."""
    hits: int = field(default=0, init=False)
    misses: int = field(default=0, init=False)

    def __len__(self) -> int:
        """Answers kept: reads at a block, and aliases."""
        return len(self._values) + len(self._aliases)

    def read_blocks(self) -> list[int]:
        """The blocks the kept reads are at, lowest first."""
        return sorted({key[1] for key in self._values})

    def forget_before(self, block: int) -> None:
        """No read at a block below ``block`` will come back (the batch that made them is closed): drop
        them. Aliases are kept (one answers reads at any later block)."""
        for key in [key for key in self._values if key[1] < block]:
            del self._values[key]

    def _lookup(self, call: RpcCall) -> tuple[bool, Any | RpcError]:
        key = _cache_key(call)
        if key is None:
            return False, None
        if key in self._values:
            self._values.move_to_end(key)
            return True, self._values[key]
        alias = _alias_key(call)
        if alias is not None and alias in self._aliases:
            seen_at, value = self._aliases[alias]
            if key[1] >= seen_at:
                self._aliases.move_to_end(alias)
                return True, value
        return False, None

    def _store(self, call: RpcCall, result: Any | RpcError) -> None:
        key = _cache_key(call)
        if key is None:
            return
        if isinstance(result, RpcError) and result.code != CONTRACT_NOT_FOUND:
            return
        self._values[key] = result
        if len(self._values) > self.max_entries:
            self._values.popitem(last=False)
        alias = _alias_key(call)
        if alias is not None and not isinstance(result, RpcError) and result is not None:
            try:
                assigned = int(str(result), 16) != 0
            except ValueError:
                assigned = False
            if assigned:
                seen = self._aliases.get(alias)
                if seen is None or key[1] < seen[0]:
                    self._aliases[alias] = (key[1], result)
                    self._aliases.move_to_end(alias)
                    if len(self._aliases) > self.max_aliases:
                        self._aliases.popitem(last=False)

    async def batch(self, calls: Sequence[RpcCall]) -> list[Any | RpcError]:
        results: list[Any | RpcError] = [None] * len(calls)
        missing: list[int] = []
        for i, call in enumerate(calls):
            hit, value = self._lookup(call)
            if hit:
                results[i] = value
            else:
                missing.append(i)
        self.hits += len(calls) - len(missing)
        self.misses += len(missing)
        if missing:
            fetched = await self.inner.batch([calls[i] for i in missing])
            for i, value in zip(missing, fetched, strict=True):
                results[i] = value
                self._store(calls[i], value)
        return results
