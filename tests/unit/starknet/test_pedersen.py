"""The Pedersen hash through crypto-cpp's C export: the same as crypto-cpp-py's binding, refusing what is not a
felt, and without crypto-cpp-py's Python module (and so sympy) in the process."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from crypto_cpp_py.cpp_bindings import cpp_hash

from madara_orchestrator.starknet.felt import STARKNET_PRIME
from madara_orchestrator.starknet.pedersen import library_path, pedersen

PEDERSEN_0_0 = 0x49EE3EBA8C1600700EE1B87EB599F16716B0B1022947733551FDE4050CA6804
"""cairo-lang's former DEFAULT_PUBLIC_KEY_HASH, documented as "the pedersen hash of data = [0, 0]"."""


def test_the_hash_of_zero_and_zero_is_the_documented_one() -> None:
    assert pedersen(0, 0) == PEDERSEN_0_0


def test_the_hash_equals_crypto_cpp_py_s_binding_on_random_and_edge_felts() -> None:
    draw = random.Random(20261206)
    edges = [0, 1, 2**128, 2**251, STARKNET_PRIME - 1]
    pairs = [(a, b) for a in edges for b in edges] + [
        (draw.randrange(STARKNET_PRIME), draw.randrange(STARKNET_PRIME)) for _ in range(500)
    ]
    assert [pedersen(a, b) for a, b in pairs] == [cpp_hash(a, b) for a, b in pairs]
    assert pedersen(1, 2) != pedersen(2, 1)


@pytest.mark.parametrize("value", [STARKNET_PRIME, 2**256 - 1])
def test_a_value_that_is_not_a_felt_is_refused_with_the_library_s_reason(value: int) -> None:
    with pytest.raises(ValueError, match="refused: x is supposed to be smaller"):
        pedersen(value, 1)


def test_a_value_beyond_32_bytes_is_refused_before_the_library() -> None:
    with pytest.raises(OverflowError):
        pedersen(2**256, 1)


def test_hashing_imports_neither_crypto_cpp_py_s_module_nor_sympy() -> None:
    code = (
        "import sys\n"
        "from madara_orchestrator.starknet.pedersen import pedersen\n"
        f"assert pedersen(0, 0) == {PEDERSEN_0_0}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sympy', 'crypto_cpp_py', 'ecdsa')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"
    assert library_path().name.startswith("libcrypto_c_exports")
