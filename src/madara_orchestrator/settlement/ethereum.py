"""Ethereum settlement client (SPEC §8.2): ``updateStateKzgDA`` blob transactions through the durable
transaction manager, ``stateBlockNumber``, inclusion checks.

The blob sidecar is built here with the cached trusted setup, in the EIP-7594 form (128 cell proofs per
blob, the default, what an Osaka L1 takes) or, with ``disable_peerdas``, the EIP-4844 form (one blob
proof per blob, what a Prague L1 takes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from madara_orchestrator.domain.chain import BYTES_PER_BLOB
from madara_orchestrator.domain.chain import MAX_BLOBS_PER_TXN as MAX_BLOBS_PER_STATE_UPDATE
from madara_orchestrator.domain.errors import ConfigError, InvalidInput
from madara_orchestrator.domain.redaction import url_origin
from madara_orchestrator.interfaces import SettlementResult, TxSigner, TxStore
from madara_orchestrator.settlement.blob_tx import SidecarForm, build_sidecar
from madara_orchestrator.settlement.durable import KeyGuard
from madara_orchestrator.settlement.encoding import (
    STATE_BLOCK_HASH_SELECTOR,
    STATE_BLOCK_NUMBER_SELECTOR,
    STATE_ROOT_SELECTOR,
    build_kzg_proofs,
    decode_int256,
    encode_update_state,
    encode_update_state_kzg_da,
)
from madara_orchestrator.settlement.eth_rpc import EthRpc, EthRpcError
from madara_orchestrator.settlement.txmgr import FeePolicy, TxManager, TxOutcome, TxRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class EthereumSettlementConfig:
    """The ``orchestrator run`` Ethereum settlement options (SPEC §16.2)."""

    rpc_url: str = field(repr=False)
    """--ethereum-rpc-url (never shown whole: it may carry a key)"""
    core_contract_address: str
    """--l1-core-contract-address"""
    max_fee_bumps: int = 2
    """--ethereum-max-fee-bumps"""
    l2_state_update_max_fee_wei: int = 10**16
    """--ethereum-l2-state-update-max-fee-wei"""
    tx_confirmation_timeout_s: float = 300.0
    """--ethereum-tx-confirmation-timeout-secs: one fee attempt's confirmation window."""
    finality_retry_wait_s: float = 60.0
    """--ethereum-finality-retry-wait-in-secs: receipt polling interval."""
    disable_peerdas: bool = False
    """--disable-peerdas: EIP-4844 sidecar (one blob proof per blob) instead of EIP-7594 cell proofs."""
    confirmations: int = 3
    gas_limit: int = 1_500_000
    rpc_timeout_s: float = 30.0
    private_key: str | None = field(default=None, repr=False)
    """--ethereum-private-key (never logged); None when the client is given a ``TxSigner`` (remote, KMS)."""

    def problems(self) -> list[str]:
        out = []
        if not self.rpc_url.startswith(("http://", "https://")):
            out.append("--ethereum-rpc-url must be an http(s) URL")
        key = None if self.private_key is None else self.private_key.removeprefix("0x")
        if key is not None and (len(key) != 64 or any(c not in "0123456789abcdefABCDEF" for c in key)):
            out.append("--ethereum-private-key must be 32 bytes in hex")
        addr = self.core_contract_address.removeprefix("0x")
        if len(addr) != 40 or any(c not in "0123456789abcdefABCDEF" for c in addr):
            out.append("--l1-core-contract-address must be a 20-byte hex address")
        if self.max_fee_bumps < 0:
            out.append("--ethereum-max-fee-bumps must be >= 0")
        if self.l2_state_update_max_fee_wei <= 0:
            out.append("--ethereum-l2-state-update-max-fee-wei must be > 0")
        if self.tx_confirmation_timeout_s <= 0 or self.finality_retry_wait_s <= 0:
            out.append("the confirmation timeout and the finality retry wait must be > 0")
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class EthereumSettlementResult(SettlementResult):
    block_number: int | None = None
    n_blobs: int = 0


def ethereum_tx_manager(
    config: EthereumSettlementConfig,
    *,
    rpc: EthRpc,
    store: TxStore,
    signer: TxSigner | None = None,
    key_guard: KeyGuard | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    crash_hook: Callable[[str], None] | None = None,
) -> TxManager:
    """The durable sender of Ethereum settlement as ``config`` sets it (SPEC §8.2: gas limit, fee bumps, fee
    cap, confirmations, window, polling), over ``rpc`` and ``store``; for the composition root (and tests:
    ``monotonic``, ``sleep``, ``crash_hook``). It signs with ``signer``, else ``config.private_key`` (one
    of them is needed); ``key_guard`` keeps two processes from sending the same settlement at once."""
    _check(config)
    return TxManager(
        backend=rpc,
        store=store,
        private_key=None if signer is not None else config.private_key,
        signer=signer,
        policy=FeePolicy(
            gas_limit=config.gas_limit,
            max_fee_bumps=config.max_fee_bumps,
            max_total_fee_wei=config.l2_state_update_max_fee_wei,
        ),
        confirmations=config.confirmations,
        confirmation_timeout_s=config.tx_confirmation_timeout_s,
        poll_interval_s=config.finality_retry_wait_s,
        monotonic=monotonic,
        sleep=sleep,
        crash_hook=crash_hook,
        key_guard=key_guard,
    )


def _check(config: EthereumSettlementConfig) -> None:
    problems = config.problems()
    if problems:
        raise ConfigError(problems)


class EthereumSettlementClient:
    """``SettlementClient`` for an Ethereum L1 (or anvil), sending through a durable ``TxManager``."""

    def __init__(self, config: EthereumSettlementConfig, *, rpc: EthRpc, txmgr: TxManager) -> None:
        """``rpc`` and ``txmgr`` (``ethereum_tx_manager``, sending over that ``rpc``) are the composition
        root's; ``aclose`` closes the rpc."""
        _check(config)
        self.config = config
        self.rpc = rpc
        self.core_contract = config.core_contract_address
        self.sidecar_form = SidecarForm.EIP4844 if config.disable_peerdas else SidecarForm.EIP7594
        self.txmgr = txmgr

    def __repr__(self) -> str:
        return f"EthereumSettlementClient(core_contract={self.core_contract}, operator={self.txmgr.address})"

    @property
    def operator_address(self) -> str:
        return self.txmgr.address

    async def aclose(self) -> None:
        await self.rpc.aclose()

    # --- reads -------------------------------------------------------------------------------------

    async def check_at_startup(self) -> str:
        """That ``--ethereum-rpc-url`` is an Ethereum node (``eth_chainId``) and that the core contract is
        there (``eth_getCode``) and answers ``stateBlockNumber()``; what was found, as a line for the log.
        A node or contract that answers wrongly raises ``InvalidInput`` naming what to check; one that does
        not answer, ``BackendUnavailable``."""
        where = url_origin(self.config.rpc_url)
        core = self.core_contract
        try:
            chain_id = await self.rpc.chain_id()
        except EthRpcError as exc:
            raise InvalidInput(
                f"the node at {where} refused eth_chainId ({exc.rpc_message}): it is not an Ethereum node "
                "(a Starknet sequencer?); check --ethereum-rpc-url"
            ) from exc
        try:
            code = await self.rpc.code(core)
        except EthRpcError as exc:
            raise InvalidInput(
                f"the Ethereum node at {where} refused eth_getCode ({exc.rpc_message}); check --ethereum-rpc-url"
            ) from exc
        if not code:
            raise InvalidInput(
                f"no contract at --l1-core-contract-address {core} on the chain at {where} (chain id {chain_id}): "
                "check the address, and that --ethereum-rpc-url is the settlement chain"
            )
        try:
            settled = await self.last_settled_block()
        except (EthRpcError, InvalidInput) as exc:
            raise InvalidInput(
                f"the contract at --l1-core-contract-address {core} (chain id {chain_id}) does not answer "
                f"stateBlockNumber() ({exc}): is it the Starknet core contract? check the address"
            ) from exc
        state = "nothing settled yet" if settled is None else f"settled up to block {settled}"
        return f"Ethereum chain id {chain_id} at {where}, core contract {core}: {state}"

    async def _call_word(self, selector: bytes) -> bytes:
        result = await self.rpc.call(self.core_contract, selector)
        if len(result) < 32:
            raise InvalidInput(
                f"the core contract at {self.core_contract} answered {len(result)} bytes: is it deployed there?"
            )
        return result[:32]

    async def last_settled_block(self) -> int | None:
        """``stateBlockNumber()``; -1 (nothing settled yet) → None."""
        value = decode_int256(await self._call_word(STATE_BLOCK_NUMBER_SELECTOR))
        return None if value < 0 else value

    async def state_root(self) -> int:
        return int.from_bytes(await self._call_word(STATE_ROOT_SELECTOR), "big")

    async def state_block_hash(self) -> int:
        return int.from_bytes(await self._call_word(STATE_BLOCK_HASH_SELECTOR), "big")

    async def get_nonce(self) -> int:
        return await self.rpc.transaction_count(self.txmgr.address, "latest")

    async def verify_tx_inclusion(self, tx_hash: str) -> str:
        receipt = await self.rpc.transaction_receipt(tx_hash)
        if receipt is None or receipt.get("blockNumber") is None:
            return "Pending"
        if int(receipt.get("status", "0x0"), 16) == 1:
            return "Verified"
        return f"Rejected: Txn {tx_hash} of type {int(receipt.get('type', '0x0'), 16)} rejected"

    async def wait_for_tx_finality(self, tx_hash: str, *, max_polls: int = 30) -> int | None:
        """The block number once the receipt has ``confirmations`` blocks on top; None if not mined."""
        for _ in range(max_polls):
            receipt = await self.rpc.transaction_receipt(tx_hash)
            if receipt is not None and receipt.get("blockNumber") is not None:
                if int(receipt.get("status", "0x0"), 16) != 1:
                    raise InvalidInput(f"Transaction {tx_hash} was rejected by the settlement layer")
                block = int(receipt["blockNumber"], 16)
                if await self.rpc.block_number() - block >= self.config.confirmations:
                    return block
            await asyncio.sleep(self.config.finality_retry_wait_s)
        return None

    # --- writes ------------------------------------------------------------------------------------

    async def update_state_with_blobs(
        self,
        program_output: Sequence[int],
        blobs: Sequence[bytes],
        *,
        idempotency_key: str,
        after_key: str | None = None,
    ) -> EthereumSettlementResult:
        """Settle with blob DA through ``updateStateKzgDA``; a key already settled is not sent again."""
        if not blobs:
            raise InvalidInput("update_state_with_blobs needs at least one blob")
        if len(blobs) > MAX_BLOBS_PER_STATE_UPDATE:
            raise InvalidInput(f"{len(blobs)} blobs exceed the {MAX_BLOBS_PER_STATE_UPDATE} per state update")
        for index, blob in enumerate(blobs):
            if len(blob) != BYTES_PER_BLOB:
                raise InvalidInput(f"blob #{index} is {len(blob)} bytes; a blob is exactly {BYTES_PER_BLOB} bytes")
        output = list(program_output)
        blob_list = [bytes(b) for b in blobs]

        async def build() -> TxRequest:
            def compute() -> TxRequest:
                proofs = build_kzg_proofs(output, blob_list)
                return TxRequest(
                    to=self.core_contract,
                    data=encode_update_state_kzg_da(output, proofs),
                    sidecar=build_sidecar(blob_list, self.sidecar_form),
                )

            return await asyncio.to_thread(compute)

        outcome = await self.txmgr.send(idempotency_key, build, after=after_key)
        return self._result(outcome, n_blobs=len(blob_list))

    async def update_state_calldata(
        self,
        snos_output: Sequence[int],
        program_output: Sequence[int],
        *,
        idempotency_key: str,
        after_key: str | None = None,
    ) -> EthereumSettlementResult:
        """Settle with calldata DA through ``updateState(programOutput, 0, 0)`` (the L3 path's arguments)."""
        del snos_output  # the Ethereum core contract only takes the program output
        output = list(program_output)

        async def build() -> TxRequest:
            return TxRequest(to=self.core_contract, data=encode_update_state(output, 0, 0), sidecar=None)

        outcome = await self.txmgr.send(idempotency_key, build, after=after_key)
        return self._result(outcome, n_blobs=0)

    def _result(self, outcome: TxOutcome, *, n_blobs: int) -> EthereumSettlementResult:
        return outcome.result(EthereumSettlementResult, block_number=outcome.block_number, n_blobs=n_blobs)
