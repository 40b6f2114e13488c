"""The double's fixed world: versions, the gas model, the dev accounts, addresses, selectors, program info."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from Crypto.Hash import keccak
from poseidon_py.poseidon_hash import poseidon_hash_many
from starknet_py.constants import EC_ORDER
from starknet_py.hash.selector import get_selector_from_name
from starknet_py.hash.utils import private_to_stark_key

from madara_orchestrator.devnet.layout_bridge import (
    BOOTLOADER_PROGRAM_HASH,
    DEVNET_CAIRO_VERIFIER_PROGRAM_HASH,
    FELT_PRIME,
    VerifierConfiguration,
)
from madara_orchestrator.devnet.program_output import DEVNET_OS_PROGRAM_HASH, devnet_config_hash

SPEC_VERSION = "0.10.2"
"""The JSON-RPC spec version served: what starknet-py 0.30 (``EXPECTED_RPC_VERSION``) expects."""
STARKNET_VERSION = "0.14.0"
DEFAULT_CHAIN_ID = "SN_DEVNET_L2"
QUERY_VERSION_BASE = 2**128
"""Added to the version of a transaction signed only for fee estimation (never executable)."""
BLOCK_NUMBER_BEFORE_GENESIS = FELT_PRIME - 1
"""The core contract's block number before anything is settled: -1 as a felt (Piltover's ``Felt::MAX``)."""
BOOTLOADER_HEADER_WORDS = 3
"""What Piltover skips before the OS output: the bootloader's task count, task output size and program hash."""
SNOS_HEADER_WORDS = 10
"""initial_root, final_root, prev_block_number, new_block_number, prev_block_hash, new_block_hash,
os_program_hash, starknet_os_config_hash, use_kzg_da, full_output."""
MIN_SECURITY_BITS = 50
"""Piltover wants the first verification of the fact to have more than this many security bits."""
U32_BOUND = 2**32
CONTRACT_ADDRESS_BOUND = 2**251
L1_GAS_PRICE_FRI = 10**13
L1_DATA_GAS_PRICE_FRI = 10**9
L2_GAS_PRICE_FRI = 10**9
WEI_PER_FRI_DIVISOR = 1000
"""Block headers also quote prices in wei: the FRI price divided by this."""
L2_GAS_PER_TX = 1_000_000
L2_GAS_PER_WORD = 10_000
"""Per calldata and signature word."""
L1_DATA_GAS_PER_TX = 256
L1_GAS_PER_TX = 0


def _label_felt(label: str, modulus: int = 2**250) -> int:
    return int.from_bytes(keccak.new(digest_bits=256, data=label.encode()).digest(), "big") % modulus


@dataclass(frozen=True, slots=True)
class DevAccount:
    """A pre-deployed account with a fixed key, usable with starknet-py's ``Account`` and ``KeyPair``."""

    address: int
    private_key: int
    public_key: int


def _dev_account(index: int) -> DevAccount:
    private_key = _label_felt(f"madara-orchestrator devnet l2 account {index} key", EC_ORDER - 1) + 1
    return DevAccount(
        address=_label_felt(f"madara-orchestrator devnet l2 account {index} address"),
        private_key=private_key,
        public_key=private_to_stark_key(private_key),
    )


DEV_ACCOUNTS: tuple[DevAccount, ...] = tuple(_dev_account(i) for i in range(3))
"""[0] the operator (calls ``update_state``), [1] the verifier (calls ``register_fact``), [2] a bystander."""
OPERATOR_ACCOUNT = DEV_ACCOUNTS[0]
VERIFIER_ACCOUNT = DEV_ACCOUNTS[1]
CORE_CONTRACT_ADDRESS = _label_felt("madara-orchestrator devnet l2 core contract")
FACT_REGISTRY_ADDRESS = _label_felt("madara-orchestrator devnet l2 fact registry")
ACCOUNT_CLASS_HASH = _label_felt("madara-orchestrator devnet l2 account class", FELT_PRIME)
CORE_CONTRACT_CLASS_HASH = _label_felt("madara-orchestrator devnet l2 core contract class", FELT_PRIME)
FACT_REGISTRY_CLASS_HASH = _label_felt("madara-orchestrator devnet l2 fact registry class", FELT_PRIME)
SEQUENCER_ADDRESS = _label_felt("madara-orchestrator devnet l2 sequencer")
EXECUTE_SELECTOR = get_selector_from_name("__execute__")
UPDATE_STATE_SELECTOR = get_selector_from_name("update_state")
GET_STATE_SELECTOR = get_selector_from_name("get_state")
GET_PROGRAM_INFO_SELECTOR = get_selector_from_name("get_program_info")
SET_PROGRAM_INFO_SELECTOR = get_selector_from_name("set_program_info")
GET_FACTS_REGISTRY_SELECTOR = get_selector_from_name("get_facts_registry")
SEND_MESSAGE_TO_APPCHAIN_SELECTOR = get_selector_from_name("send_message_to_appchain")
SN_TO_APPCHAIN_MESSAGES_SELECTOR = get_selector_from_name("sn_to_appchain_messages")
APPCHAIN_TO_SN_MESSAGES_SELECTOR = get_selector_from_name("appchain_to_sn_messages")
CONSUME_MESSAGE_FROM_APPCHAIN_SELECTOR = get_selector_from_name("consume_message_from_appchain")
REGISTER_FACT_SELECTOR = get_selector_from_name("register_fact")
GET_ALL_VERIFICATIONS_SELECTOR = get_selector_from_name("get_all_verifications_for_fact_hash")
GET_VERIFICATION_SELECTOR = get_selector_from_name("get_verification")
LOG_STATE_UPDATE_KEY = get_selector_from_name("LogStateUpdate")
FACT_REGISTERED_KEY = get_selector_from_name("FactRegistered")
PROGRAM_INFO_CHANGED_KEY = get_selector_from_name("ProgramInfoChanged")
MESSAGE_SENT_KEY = get_selector_from_name("MessageSent")
MESSAGE_CONSUMED_KEY = get_selector_from_name("MessageConsumed")
MESSAGE_TO_STARKNET_RECEIVED_KEY = get_selector_from_name("MessageToStarknetReceived")
MESSAGE_TO_APPCHAIN_SEALED_KEY = get_selector_from_name("MessageToAppchainSealed")


def _poseidon(values: Sequence[int]) -> int:
    return int(poseidon_hash_many(list(values)))


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgramInfo:
    """Piltover's ``ProgramInfo`` (``config/interface.cairo``), in its field order."""

    bootloader_program_hash: int
    snos_config_hash: int
    snos_program_hash: int
    layout_bridge_program_hash: int

    def to_felts(self) -> list[int]:
        return [
            self.bootloader_program_hash,
            self.snos_config_hash,
            self.snos_program_hash,
            self.layout_bridge_program_hash,
        ]


DEVNET_PROGRAM_INFO = ProgramInfo(
    bootloader_program_hash=BOOTLOADER_PROGRAM_HASH,
    snos_config_hash=devnet_config_hash(),
    snos_program_hash=DEVNET_OS_PROGRAM_HASH,
    layout_bridge_program_hash=DEVNET_CAIRO_VERIFIER_PROGRAM_HASH,
)
"""The programs the devnet runs: its SNOS runner's program and config, the layout bridge it passes as
``--cairo-verifier-program-hash``, and the bootloader."""


def message_hash_to_appchain(
    from_address: int, to_address: int, selector: int, payload: Sequence[int], nonce: int
) -> int:
    """Piltover's ``compute_message_hash_sn_to_appc``."""
    return _poseidon([from_address, to_address, nonce, selector, len(payload), *payload])


def message_hash_to_starknet(from_address: int, to_address: int, payload: Sequence[int]) -> int:
    """Piltover's ``compute_message_hash_appc_to_sn``."""
    return _poseidon([from_address, to_address, len(payload), *payload])


def verification_hash(fact_hash: int, verifier_config: VerifierConfiguration, security_bits: int) -> int:
    """Integrity's ``get_verification_hash(fact_hash, get_verifier_config_hash(config), security_bits)``."""
    return _poseidon([fact_hash, _poseidon(verifier_config.to_felts()), security_bits])
