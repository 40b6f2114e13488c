"""The Pedersen hash of two felts: crypto-cpp-py's C library, called as its ``cpp_hash`` calls it.

Importing crypto-cpp-py's Python module (``crypto_cpp_py.cpp_bindings``) imports sympy, which only its
signing helpers need (``igcdex``): about 0.3 s of CPU, a quarter of what ``orchestrator`` takes to start,
spent again by every process that hashes (the devnet's OS config hash is computed when its doubles load).
So the library that crypto-cpp-py installs next to its package (``libcrypto_c_exports``, found as its
``get_cpp_lib_file`` finds it) is loaded here at the first hash, and its ``Hash`` called with the same
arguments, buffer and errors as ``cpp_hash``; where it is not found, crypto-cpp-py's own ``cpp_hash`` is used.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

OUT_BUFFER_SIZE = 1024
"""crypto-cpp-py's ``OUT_BUFFER_SIZE``: the hash in its first 32 bytes, or an error message."""


def crypto_cpp_library() -> Path | None:
    """The C library crypto-cpp-py installs beside its package (its ``get_cpp_lib_file``), or None."""
    spec = importlib.util.find_spec("crypto_cpp_py")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parents[1]
    try:
        name = next(f for f in os.listdir(folder) if f.startswith("libcrypto_c_exports"))
    except (StopIteration, FileNotFoundError):
        return None
    return folder / name


def bind_hash(library: Path) -> Callable[[int, int], int]:
    """``cpp_hash`` over ``library``'s ``Hash``: little-endian 32-byte felts in, ``ValueError`` with the
    library's message for a value outside the field (``OverflowError`` for one outside 256 bits), as there."""
    c_hash = ctypes.CDLL(str(library)).Hash
    c_hash.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]

    def cpp_hash(left: int, right: int) -> int:
        res = ctypes.create_string_buffer(OUT_BUFFER_SIZE)
        if c_hash(left.to_bytes(32, "little", signed=False), right.to_bytes(32, "little", signed=False), res) != 0:
            raise ValueError(res.raw.rstrip(b"\00"))
        return int.from_bytes(res.raw[:32], "little", signed=False)

    return cpp_hash


@functools.cache
def pedersen_function() -> Callable[[int, int], int]:
    """The hash, bound once at the first call; a loop takes it once and calls it (no look-up per hash)."""
    library = crypto_cpp_library()
    if library is None:
        from crypto_cpp_py.cpp_bindings import cpp_hash

        return cpp_hash
    return bind_hash(library)


def pedersen(a: int, b: int) -> int:
    return pedersen_function()(a, b)
