"""The Pedersen hash of two felts, computed by StarkWare's crypto-cpp (the ``libcrypto_c_exports`` library
that the crypto-cpp-py package installs), called here through its C export ``Hash(in1, in2, out)``: two
32-byte little-endian felts in, the 32-byte little-endian hash out, 0 on success.

crypto-cpp-py's own Python module is not used for the hash: importing it imports sympy (for an extended
gcd that only its signing needs), about 0.3 s of CPU in every process that hashes, a quarter of what
``orchestrator`` takes to start. The library is loaded at the first hash, so a process that never hashes
(``--help``, the operator's commands, a run before its first fact) does not load it.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
from collections.abc import Callable
from pathlib import Path

_LIBRARY_PREFIX = "libcrypto_c_exports"
_PACKAGE = "crypto_cpp_py"
_OUT_BYTES = 1024
"""The output buffer: the hash's 32 bytes, or the library's error message."""


def library_path() -> Path:
    """The crypto-cpp library crypto-cpp-py installs beside its package (found without importing it)."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"the {_PACKAGE} package (crypto-cpp-py) is not installed: reinstall the orchestrator")
    folder = Path(spec.origin).resolve().parents[1]
    found = sorted(folder.glob(f"{_LIBRARY_PREFIX}*"))
    if not found:
        raise RuntimeError(f"{_LIBRARY_PREFIX} is missing beside {_PACKAGE} in {folder}: reinstall crypto-cpp-py")
    return found[0]


@functools.cache
def pedersen_function() -> Callable[[int, int], int]:
    """The hash, its library loaded once at the first call; a loop takes it once and calls it."""
    export = ctypes.CDLL(str(library_path())).Hash
    export.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
    export.restype = ctypes.c_int

    def pedersen_hash(a: int, b: int) -> int:
        out = ctypes.create_string_buffer(_OUT_BYTES)
        if export(a.to_bytes(32, "little"), b.to_bytes(32, "little"), out) != 0:
            message = out.raw.rstrip(b"\0").decode(errors="replace")
            raise ValueError(f"Pedersen hash of ({a:#x}, {b:#x}) refused: {message}")
        return int.from_bytes(out.raw[:32], "little")

    return pedersen_hash


def pedersen(a: int, b: int) -> int:
    return pedersen_function()(a, b)
