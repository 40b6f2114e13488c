"""A double of a Starknet L2 node: the settlement layer an L3 appchain settles on.

No Starknet node runs on this machine, so this speaks the real Starknet JSON-RPC (spec 0.10, what
starknet-py 0.30 expects) well enough for starknet-py's ``FullNodeClient`` and single-owner ``Account``
(v3 invokes) to work against it unmodified. It hosts three kinds of built-in contracts:

- dev accounts (OpenZeppelin-like): a v3 invoke is checked as the sequencer and the account would check
  it — version 0x3 (61), known sender (55), hash not seen before (59), nonce equal to the account's
  pre-confirmed nonce (52), resource bounds covering the fixed gas model (53), signature ``[r, s]`` of the
  transaction hash by the account's key (55), Cairo-1 ``__execute__`` calldata (55) — and else rejected;
- a Piltover core contract (keep-starknet-strange/piltover, ``src/appchain.cairo`` and its state, config and
  messaging components, read at main of 2025-05-12): ``update_state(snos_output, layout_bridge_output)``
  from the owner/operator makes Piltover's checks, in Piltover's order and with its error strings:
  ``snos_output[2]`` is the configured SNOS program hash ('snos: invalid program hash'),
  ``layout_bridge_output[2]`` the layout bridge program hash ('lb: invalid program hash'),
  ``layout_bridge_output[4]`` the Poseidon hash of ``snos_output`` ('snos: invalid output hash'); the
  (bootloaded) SNOS output is deserialized as ``deserialize_os_output`` does (3 bootloader words, the
  10-word header, the KZG section when ``use_kzg_da``, the messages to L1 and to L2: a malformed segment
  fails with Cairo's panic, e.g. 'Option::unwrap failed.', 'Invalid n_messages_to_l1', 'Invalid payload
  size', 'Invalid from address'); its config hash is the configured one ('snos: invalid config hash'); the
  fact ``poseidon(bootloader_program_hash, poseidon(layout_bridge_output))`` has a verification in the
  fact registry ('no fact registered'), the first with more than 50 security bits; the state component
  wants the stored block number to be the output's previous block number ('State: invalid block number')
  and the stored root its initial root ('State: invalid previous root'); messages to L1 become consumable,
  messages to L2 must have been sent with ``send_message_to_appchain`` ('INVALID_MESSAGE_TO_SEAL').
  Then ``LogStateUpdate``. ``get_state()`` returns ``[state_root, block_number, block_hash]`` (block number
  ``FELT_PRIME - 1``, i.e. -1, before the first settlement); ``get_program_info``/``set_program_info``,
  ``get_facts_registry`` and the messaging entry points (send, status, consume; no cancellation) are there.
  Piltover version: the stored Piltover still declares ``update_state(snos_output, layout_bridge_output,
  onchain_data_hash: felt252, onchain_data_size: u256)``, while the original orchestrator (newer) sends the
  two spans only and the current Piltover takes exactly those two. This double follows the current form:
  exactly two spans, any word more fails as Cairo's ABI wrapper does ('Input too long for arguments'), a
  missing one 'Failed to deserialize param #N'; it does not emit ``LogStateTransitionFact`` (made from the
  on-chain data words that form no longer has). Every other check is Piltover's as read;
- an Integrity fact registry (HerodotusDev/integrity): ``register_fact(verifier_config, fact_hash,
  security_bits)`` as Integrity's mocked registry takes it (verifier accounts only: the double cannot check a
  STARK proof, so only the mock prover registers), ``get_all_verifications_for_fact_hash(fact_hash)`` and
  ``get_verification(verification_hash)``, with Integrity's verification hashes.

A contract's failure reads as Starknet reports a Cairo panic: ``0x<felt> ('<short string>')``, or the
text of a byte-array panic in double quotes. An accepted transaction always lands: a failing call reverts
it (REVERTED, with a reason; nonce consumed), as on Starknet. Blocks are sealed at once per transaction
(``block_time_s == 0``), every ``block_time_s`` by ``start()``, or by ``seal_block()``;
``hold_blocks(True)`` keeps transactions pre-confirmed.

It does not run Cairo, verify STARK proofs, charge fees (no balances: the fee is computed from a fixed gas
model and reported), cancel messages, or persist anything. Roots and block hashes are Poseidon digests of
the double's own state, not Patricia-tree roots.

Files: ``constants`` (versions, gas model, dev accounts, addresses, selectors), ``model`` (transactions, events,
core state, JSON-RPC errors), ``transactions`` (v3 invokes, fees), ``world`` (the contracts' state, blocks),
``abi`` (calldata and SNOS output decoding), ``contracts`` (Piltover, Integrity, accounts), ``node`` (the chain,
inspection and control), ``rpc`` (``StarknetL2Double``: the JSON-RPC).
"""

from madara_orchestrator.devnet.starknet_l2.abi import deserialize_os_output
from madara_orchestrator.devnet.starknet_l2.constants import (
    CORE_CONTRACT_ADDRESS,
    DEFAULT_CHAIN_ID,
    DEV_ACCOUNTS,
    DEVNET_PROGRAM_INFO,
    FACT_REGISTRY_ADDRESS,
    L1_DATA_GAS_PRICE_FRI,
    L2_GAS_PRICE_FRI,
    OPERATOR_ACCOUNT,
    UPDATE_STATE_SELECTOR,
    VERIFIER_ACCOUNT,
    DevAccount,
    ProgramInfo,
    message_hash_to_appchain,
    message_hash_to_starknet,
    verification_hash,
)
from madara_orchestrator.devnet.starknet_l2.model import CoreState, L2Transaction, RpcError
from madara_orchestrator.devnet.starknet_l2.rpc import StarknetL2Double
from madara_orchestrator.devnet.starknet_l2.transactions import InvokeV3, decode_execute_calldata, fee_estimate
from madara_orchestrator.devnet.starknet_l2.world import MessageStatus, Verification

__all__ = [
    "CORE_CONTRACT_ADDRESS",
    "DEFAULT_CHAIN_ID",
    "DEVNET_PROGRAM_INFO",
    "DEV_ACCOUNTS",
    "FACT_REGISTRY_ADDRESS",
    "L1_DATA_GAS_PRICE_FRI",
    "L2_GAS_PRICE_FRI",
    "OPERATOR_ACCOUNT",
    "UPDATE_STATE_SELECTOR",
    "VERIFIER_ACCOUNT",
    "CoreState",
    "DevAccount",
    "InvokeV3",
    "L2Transaction",
    "MessageStatus",
    "ProgramInfo",
    "RpcError",
    "StarknetL2Double",
    "Verification",
    "decode_execute_calldata",
    "deserialize_os_output",
    "fee_estimate",
    "message_hash_to_appchain",
    "message_hash_to_starknet",
    "verification_hash",
]
