"""The double's chain: its contracts' state, pre-confirmed and sealed blocks, accepted transactions, and the
checks an invoke passes before it runs (shared by ``addInvokeTransaction`` and ``estimateFee``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Sequence

from starknet_py.constants import EC_ORDER
from starknet_py.hash.utils import verify_message_signature

from madara_orchestrator.devnet.layout_bridge import (
    BRIDGE_VERIFIER_CONFIG,
    FELT_PRIME,
    VerifierConfiguration,
)
from madara_orchestrator.devnet.starknet_l2.constants import (
    CORE_CONTRACT_ADDRESS,
    DEFAULT_CHAIN_ID,
    DEV_ACCOUNTS,
    DEVNET_PROGRAM_INFO,
    FACT_REGISTRY_ADDRESS,
    DevAccount,
    ProgramInfo,
    _poseidon,
)
from madara_orchestrator.devnet.starknet_l2.contracts import L2Contracts
from madara_orchestrator.devnet.starknet_l2.model import (
    GENESIS_CORE_STATE,
    INVALID_TRANSACTION_NONCE,
    VALIDATION_FAILURE,
    ContractCall,
    CoreState,
    FinalityStatus,
    L2Transaction,
    RpcError,
)
from madara_orchestrator.devnet.starknet_l2.transactions import InvokeV3, decode_execute_calldata
from madara_orchestrator.devnet.starknet_l2.world import (
    MessageStatus,
    Verification,
    _add_verification,
    _SealedBlock,
    _World,
)
from madara_orchestrator.devnet.tasks import cancel_and_wait


class L2Node:
    """The chain under the JSON-RPC (``StarknetL2Double``): inspection and control for tests and the devnet."""

    def __init__(
        self,
        *,
        chain_id: str = DEFAULT_CHAIN_ID,
        block_time_s: float = 0.0,
        core_contract_address: int = CORE_CONTRACT_ADDRESS,
        fact_registry_address: int = FACT_REGISTRY_ADDRESS,
        program_info: ProgramInfo = DEVNET_PROGRAM_INFO,
        accounts: Sequence[DevAccount] = DEV_ACCOUNTS,
    ) -> None:
        """``accounts[0]`` is the core contract's owner and operator, ``accounts[1]`` (if any) the fact
        registry's verifier; ``program_info`` is the core contract's initial program info."""
        if not chain_id.isascii() or not 0 < len(chain_id) <= 31:
            raise ValueError(f"chain id {chain_id!r} must be 1 to 31 ASCII characters (a Cairo short string)")
        if block_time_s < 0:
            raise ValueError(f"block_time_s must be 0 (a block per transaction) or positive, got {block_time_s}")
        if not accounts:
            raise ValueError("at least one account (the operator) is needed")
        addresses = [a.address for a in accounts] + [core_contract_address, fact_registry_address]
        if len(set(addresses)) != len(addresses):
            raise ValueError("accounts, the core contract and the fact registry need distinct addresses")
        self.chain_id = chain_id
        self.chain_id_felt = int.from_bytes(chain_id.encode(), "big")
        self.block_time_s = block_time_s
        self.core_contract_address = core_contract_address
        self.fact_registry_address = fact_registry_address
        self.accounts: tuple[DevAccount, ...] = tuple(accounts)
        self._builtins = L2Contracts(
            core_contract_address=core_contract_address,
            fact_registry_address=fact_registry_address,
            accounts=self.accounts,
        )
        self.operator = self._builtins.operator
        self.verifiers: tuple[DevAccount, ...] = self._builtins.verifiers
        self._accounts_by_address = {a.address: a for a in self.accounts}
        self._contracts = self._builtins.deployed
        genesis_world = _World(
            nonces={a.address: 0 for a in self.accounts},
            core=GENESIS_CORE_STATE,
            program_info=program_info,
            verifications={},
        )
        now = int(time.time())
        genesis_root = genesis_world.root()
        self._blocks: list[_SealedBlock] = [
            _SealedBlock(
                number=0,
                block_hash=_poseidon([0, 0, genesis_root, now]),
                parent_hash=0,
                timestamp=now,
                tx_hashes=(),
                new_root=genesis_root,
                world=genesis_world,
            )
        ]
        self._pending_world = genesis_world.copy()
        self._pending_hashes: list[int] = []
        self._pending_timestamp = now
        self._txs: dict[int, L2Transaction] = {}
        self._is_holding_blocks = False
        self._producer: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    # -- inspection and control (tests, the devnet) -------------------------------------------------

    @property
    def state(self) -> CoreState:
        """The core contract's state including pre-confirmed transactions (``get_state`` at pre_confirmed)."""
        return self._pending_world.core

    @property
    def sealed_state(self) -> CoreState:
        """The core contract's state at the latest sealed block (``get_state`` at latest)."""
        return self._blocks[-1].world.core

    @property
    def update_state_count(self) -> int:
        """Successful ``update_state`` executions, pre-confirmed ones included."""
        return self._pending_world.update_state_count

    @property
    def transactions(self) -> tuple[L2Transaction, ...]:
        """Every accepted transaction, in order."""
        return tuple(self._txs.values())

    def transaction(self, transaction_hash: int) -> L2Transaction:
        return self._txs[transaction_hash]

    @property
    def block_number(self) -> int:
        """The latest sealed block's number (0 is the empty genesis block)."""
        return self._blocks[-1].number

    @property
    def pre_confirmed_transaction_hashes(self) -> tuple[int, ...]:
        return tuple(self._pending_hashes)

    def nonce_of(self, address: int) -> int:
        """An account's nonce including pre-confirmed transactions."""
        return self._pending_world.nonces[address]

    @property
    def program_info(self) -> ProgramInfo:
        """The core contract's program info, pre-confirmed transactions included."""
        return self._pending_world.program_info

    def is_fact_registered(self, fact: int) -> bool:
        """Whether the fact has a verification (pre-confirmed transactions included)."""
        return bool(self._pending_world.verifications.get(fact))

    def verifications_of(self, fact: int) -> tuple[Verification, ...]:
        return self._pending_world.verifications.get(fact, ())

    def message_to_appchain_status(self, message_hash: int) -> MessageStatus:
        return self._pending_world.to_appchain.get(message_hash, (MessageStatus.NOT_SENT, 0))[0]

    def messages_to_starknet(self, message_hash: int) -> int:
        """How many times a message from the appchain can still be consumed."""
        return self._pending_world.to_starknet.get(message_hash, 0)

    def register_fact_directly(
        self,
        fact: int,
        *,
        security_bits: int = 78,
        verifier_config: VerifierConfiguration = BRIDGE_VERIFIER_CONFIG,
    ) -> None:
        """Register a verification of a fact without a transaction, at once visible at both latest and
        pre_confirmed (a state override for tests that do not go through a verifier). The defaults are those
        of the mock Atlantic server's bridge proofs (16 queries × 3 + 30 proof-of-work bits)."""
        for world in (self._pending_world, self._blocks[-1].world):
            _add_verification(world, fact, security_bits, verifier_config)
        self._notify()

    @property
    def is_holding_blocks(self) -> bool:
        return self._is_holding_blocks

    def hold_blocks(self, hold: bool) -> None:
        """While held, accepted transactions stay pre-confirmed until ``seal_block()``. Releasing the hold with
        ``block_time_s == 0`` seals what is pending at once."""
        self._is_holding_blocks = hold
        if not hold and self.block_time_s == 0 and self._pending_hashes:
            self.seal_block()

    def seal_block(self) -> int:
        """Seal the pre-confirmed block (even an empty one) and return its number."""
        parent = self._blocks[-1]
        number = parent.number + 1
        world = self._pending_world.copy()
        tx_hashes = tuple(self._pending_hashes)
        new_root = world.root()
        timestamp = max(int(time.time()), self._pending_timestamp)
        block_hash = _poseidon([number, parent.block_hash, new_root, timestamp, *tx_hashes])
        self._blocks.append(
            _SealedBlock(
                number=number,
                block_hash=block_hash,
                parent_hash=parent.block_hash,
                timestamp=timestamp,
                tx_hashes=tx_hashes,
                new_root=new_root,
                world=world,
            )
        )
        for tx_hash in tx_hashes:
            self._txs[tx_hash] = dataclasses.replace(
                self._txs[tx_hash], finality_status=FinalityStatus.ACCEPTED_ON_L2, block_hash=block_hash
            )
        self._pending_hashes = []
        self._pending_timestamp = int(time.time())
        self._notify()
        return number

    async def start(self) -> None:
        """With ``block_time_s > 0``, seal a block every ``block_time_s`` when transactions are pending and
        blocks are not held. Nothing to do with ``block_time_s == 0``."""
        if self.block_time_s == 0 or self._producer is not None:
            return

        async def produce() -> None:
            while True:
                await asyncio.sleep(self.block_time_s)
                if self._pending_hashes and not self._is_holding_blocks:
                    self.seal_block()

        self._producer = asyncio.create_task(produce(), name="starknet-l2-double-blocks")

    async def stop(self) -> None:
        await cancel_and_wait(self._producer)
        self._producer = None

    async def wait_for_sealed_block(self, number: int, *, timeout_s: float = 10.0) -> None:
        """Return once block ``number`` is sealed; ``TimeoutError`` after ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            while self._blocks[-1].number < number:
                await self._changed.wait()

    async def wait_for_settlement(self, block_number: int, *, timeout_s: float = 10.0) -> CoreState:
        """Return the sealed core state once it has settled L3 block ``block_number`` (or a later one)."""
        async with asyncio.timeout(timeout_s):
            while (settled := self.sealed_state.last_settled_block) is None or settled < block_number:
                await self._changed.wait()
        return self.sealed_state

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- validation shared by addInvokeTransaction and estimateFee ----------------------------------------

    def _check_nonce(self, world: _World, tx: InvokeV3) -> None:
        expected = world.nonces[tx.sender_address]
        if tx.nonce != expected:
            raise RpcError(
                INVALID_TRANSACTION_NONCE,
                "Invalid transaction nonce",
                f"Invalid transaction nonce of contract at address {tx.sender_address:#066x}. "
                f"Account nonce: {expected:#x}; got: {tx.nonce:#x}.",
            )

    def _check_signature(self, tx: InvokeV3, tx_hash: int) -> tuple[ContractCall, ...]:
        """The account's ``__validate__``: the signature, then the calls' encoding."""
        account = self._accounts_by_address[tx.sender_address]
        is_valid = False
        if len(tx.signature) == 2:
            r, s = tx.signature
            if 0 < r < FELT_PRIME and 0 < s < EC_ORDER:
                with contextlib.suppress(Exception):
                    is_valid = verify_message_signature(tx_hash, [r, s], account.public_key)
        if not is_valid:
            raise RpcError(
                VALIDATION_FAILURE,
                "Account validation failed",
                f"invalid signature for transaction {tx_hash:#066x}: expected [r, s] by the key of account "
                f"{tx.sender_address:#066x}",
            )
        try:
            return decode_execute_calldata(tx.calldata)
        except ValueError as exc:
            raise RpcError(
                VALIDATION_FAILURE, "Account validation failed", f"cannot decode the __execute__ calldata: {exc}"
            ) from None

    def _check_sender(self, tx: InvokeV3) -> None:
        if tx.sender_address not in self._accounts_by_address:
            raise RpcError(
                VALIDATION_FAILURE,
                "Account validation failed",
                f"no account is deployed at {tx.sender_address:#066x}",
            )
