"""The Pedersen hash called on crypto-cpp-py's library (starknet/pedersen.py) is crypto-cpp-py's ``cpp_hash``:
the same value for any two 256-bit numbers, the same errors, and ``cpp_hash`` itself without the library."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from crypto_cpp_py.cpp_bindings import cpp_hash
from hypothesis import given, settings
from hypothesis import strategies as st

from madara_orchestrator.starknet import pedersen as module
from madara_orchestrator.starknet.felt import STARKNET_PRIME
from madara_orchestrator.starknet.pedersen import bind_hash, crypto_cpp_library, pedersen, pedersen_function

felts = st.integers(min_value=0, max_value=STARKNET_PRIME - 1)
words = st.integers(min_value=0, max_value=2**256 - 1)


def outcome(function: Callable[[int, int], int], a: int, b: int) -> object:
    try:
        return function(a, b)
    except (ValueError, OverflowError) as exc:
        return (type(exc), exc.args)


@pytest.fixture
def fresh() -> Iterator[None]:
    """``pedersen_function`` binds once per process: forgotten before and after the test."""
    pedersen_function.cache_clear()
    yield
    pedersen_function.cache_clear()


def test_the_library_is_found_where_crypto_cpp_py_installs_it() -> None:
    library = crypto_cpp_library()
    assert library is not None and library.name.startswith("libcrypto_c_exports")
    assert pedersen_function() is not cpp_hash, "the library is called directly, without crypto-cpp-py's module"


@settings(max_examples=300, deadline=None)
@given(felts, felts)
def test_any_two_felts_hash_as_cpp_hash_hashes_them(a: int, b: int) -> None:
    assert pedersen(a, b) == cpp_hash(a, b)


@settings(max_examples=100, deadline=None)
@given(words | st.integers(max_value=-1), words)
def test_values_outside_the_field_fail_as_in_cpp_hash(a: int, b: int) -> None:
    library = crypto_cpp_library()
    assert library is not None
    bound = bind_hash(library)
    assert outcome(bound, a, b) == outcome(cpp_hash, a, b)
    assert outcome(bound, b, a) == outcome(cpp_hash, b, a)


def test_the_bound_function_raises_the_librarys_message_for_the_modulus() -> None:
    with pytest.raises(ValueError) as ours:
        pedersen(STARKNET_PRIME, 1)
    with pytest.raises(ValueError) as theirs:
        cpp_hash(STARKNET_PRIME, 1)
    assert ours.value.args == theirs.value.args and ours.value.args[0]


def test_without_the_library_crypto_cpp_pys_own_function_is_used(monkeypatch: pytest.MonkeyPatch, fresh: None) -> None:
    monkeypatch.setattr(module, "crypto_cpp_library", lambda: None)
    assert pedersen_function() is cpp_hash
    assert pedersen(1, 2) == cpp_hash(1, 2)
