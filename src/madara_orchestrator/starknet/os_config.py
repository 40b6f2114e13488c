"""The Starknet OS config hash (``starknet_os_config_hash``, word 7 of an OS output, SPEC §6.6).

The OS of Starknet 0.14.1 (cairo-lang ``os_config.cairo``, version ``StarknetOsConfig3``) hashes the chain
id, the fee token's address and, only when the state diff is encrypted for DA committee keys, the keys'
hash, with the Pedersen hash state (``h(h(h(0, a), b), …, n)``). The aggregator recomputes it from its
own input (chain id, fee token, public keys) and asserts it equals the children's, and the core contract
compares it with its ``configHash``: the chain id, the fee token and the DA keys have to be the chain's
everywhere. Pinned by the real OS output of Starknet Sepolia block 924016 (SN_SEPOLIA, STRK fee token).
"""

from __future__ import annotations

from collections.abc import Sequence

from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.starknet.felt import STARKNET_PRIME
from madara_orchestrator.starknet.pedersen import pedersen_function

OS_CONFIG_VERSION = int.from_bytes(b"StarknetOsConfig3", "big")


def hash_on_elements(values: Sequence[int]) -> int:
    """cairo-lang's Pedersen ``hash_state``: ``h(…h(h(0, v0), v1)…, len)``."""
    acc, hash_pair = 0, pedersen_function()
    for value in values:
        acc = hash_pair(acc, value)
    return int(hash_pair(acc, len(values)))


def public_keys_hash(public_keys: Sequence[int]) -> int:
    """0 without keys (no encryption), else the Pedersen hash state of the keys."""
    return hash_on_elements(public_keys) if public_keys else 0


def chain_id_felt(chain_id: str | int) -> int:
    """The chain id as the OS takes it: ``SN_SEPOLIA`` as the big-endian int of its ASCII bytes; an int
    (``starknet_chainId``'s value) as it is."""
    if isinstance(chain_id, int):
        value = chain_id
    else:
        try:
            value = int.from_bytes(chain_id.encode("ascii"), "big")
        except UnicodeEncodeError:
            raise InvalidInput(f"chain id {chain_id!r:.60} is not ASCII") from None
    if not 0 <= value < STARKNET_PRIME:
        raise InvalidInput(f"chain id {chain_id!r:.60} does not fit a felt")
    return value


def os_config_hash(chain_id: str | int, fee_token_address: int, public_keys: Sequence[int] = ()) -> int:
    """``starknet_os_config_hash`` of a chain: its id, its (STRK) fee token and its DA committee keys."""
    for name, value in (("fee token address", fee_token_address), *(("DA public key", k) for k in public_keys)):
        if not 0 <= value < STARKNET_PRIME:
            raise InvalidInput(f"{name} {value:#x} is not a felt")
    words = [OS_CONFIG_VERSION, chain_id_felt(chain_id), fee_token_address]
    keys_hash = public_keys_hash(public_keys)
    if keys_hash != 0:
        words.append(keys_hash)
    return hash_on_elements(words)


__all__ = ["chain_id_felt", "hash_on_elements", "os_config_hash", "public_keys_hash"]
