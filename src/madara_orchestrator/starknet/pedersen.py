"""The Pedersen hash of two felts: crypto-cpp-py's ``cpp_hash``, imported at the first hash.

Importing crypto-cpp-py's module imports sympy (about 0.3 s of CPU, a quarter of what ``orchestrator`` takes
to start), which a process that never hashes (``--help``, the operator's commands, a run before its first
fact) should not pay.
"""

from __future__ import annotations

import functools
from collections.abc import Callable


@functools.cache
def pedersen_function() -> Callable[[int, int], int]:
    """The hash, imported once at the first call; a loop takes it once and calls it (no look-up per hash)."""
    from crypto_cpp_py.cpp_bindings import cpp_hash

    return cpp_hash


def pedersen(a: int, b: int) -> int:
    return pedersen_function()(a, b)
