"""The OS config hash (StarknetOsConfig3) against a real Starknet OS output."""

from __future__ import annotations

from pathlib import Path

from madara_orchestrator.starknet.os_config import os_config_hash, public_keys_hash
from madara_orchestrator.starknet.pie import read_pie

SEPOLIA_STRK = 0x04718F5A0FC34CC1AF16A1CDEE98FFB20C31F5CD61D6AB07201858F4287C938D


def test_the_hash_of_sepolia_is_the_one_its_os_output_carries(vectors_dir: Path) -> None:
    output = read_pie((vectors_dir / "pie" / "sepolia_924016.zip").read_bytes()).output_segment()
    assert os_config_hash("SN_SEPOLIA", SEPOLIA_STRK) == output[7]
    assert os_config_hash(int.from_bytes(b"SN_SEPOLIA", "big"), SEPOLIA_STRK) == output[7]


def test_da_keys_enter_the_hash_through_their_pedersen_hash_state() -> None:
    # cairo-lang's former DEFAULT_PUBLIC_KEY_HASH, documented as "the pedersen hash of data = [0, 0]".
    assert public_keys_hash([0, 0]) == 0x5D2A2613BCB66B00B159C4AC69E0ED00633E8CA159BF54FE13D356828D2CC13
    assert public_keys_hash([]) == 0, "no keys: no encryption, and no fourth word in the config hash"
    plain = os_config_hash("SN_SEPOLIA", SEPOLIA_STRK)
    keyed = os_config_hash("SN_SEPOLIA", SEPOLIA_STRK, [0x2F1E0D])
    assert len({plain, keyed, os_config_hash("SN_SEPOLIA", SEPOLIA_STRK, [0x2F1E0E])}) == 3
    assert os_config_hash("SN_SEPOLIA", SEPOLIA_STRK + 1) != plain, "the fee token is part of it"
