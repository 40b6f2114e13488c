"""The double's JSON-RPC (spec 0.10, what starknet-py 0.30 expects): the methods a ``FullNodeClient`` and an
``Account`` call, served from the chain of ``L2Node``."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from starknet_py.hash.selector import get_selector_from_name
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from madara_orchestrator.devnet.jsonrpc import accepted_block_header, jsonrpc_response
from madara_orchestrator.devnet.starknet_l2 import parse
from madara_orchestrator.devnet.starknet_l2.constants import (
    ACCOUNT_CLASS_HASH,
    EXECUTE_SELECTOR,
    L1_DATA_GAS_PRICE_FRI,
    L1_GAS_PRICE_FRI,
    L2_GAS_PRICE_FRI,
    QUERY_VERSION_BASE,
    SEQUENCER_ADDRESS,
    SPEC_VERSION,
    STARKNET_VERSION,
    WEI_PER_FRI_DIVISOR,
    _poseidon,
)
from madara_orchestrator.devnet.starknet_l2.model import (
    BLOCK_NOT_FOUND,
    CLASS_HASH_NOT_FOUND,
    CONTRACT_ERROR,
    CONTRACT_NOT_FOUND,
    DUPLICATE_TX,
    TRANSACTION_EXECUTION_ERROR,
    TXN_HASH_NOT_FOUND,
    UNSUPPORTED_TX_VERSION,
    ContractCall,
    ExecutionStatus,
    FinalityStatus,
    L2Transaction,
    RpcError,
)
from madara_orchestrator.devnet.starknet_l2.node import L2Node
from madara_orchestrator.devnet.starknet_l2.transactions import (
    InvokeV3,
    _check_resource_bounds,
    decode_execute_calldata,
    fee_estimate,
    gas_usage,
)
from madara_orchestrator.devnet.starknet_l2.world import _CallContext, _Revert, _SealedBlock, _World


class StarknetL2Double(L2Node):
    """The node: JSON-RPC at ``POST /`` (and ``/rpc/<version>``), its contracts, and its blocks."""

    @property
    def app(self) -> Starlette:
        return self._app

    @functools.cached_property
    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/", self._endpoint, methods=["POST"]),
                Route("/rpc/{version}", self._endpoint, methods=["POST"]),
            ]
        )

    @functools.cached_property
    def _methods(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "starknet_specVersion": lambda _: SPEC_VERSION,
            "starknet_chainId": lambda _: hex(self.chain_id_felt),
            "starknet_syncing": lambda _: False,
            "starknet_blockNumber": lambda _: self._blocks[-1].number,
            "starknet_blockHashAndNumber": self._rpc_block_hash_and_number,
            "starknet_getBlockWithTxHashes": lambda p: self._rpc_block(p, "hashes"),
            "starknet_getBlockWithTxs": lambda p: self._rpc_block(p, "txs"),
            "starknet_getBlockWithReceipts": lambda p: self._rpc_block(p, "receipts"),
            "starknet_getBlockTransactionCount": self._rpc_block_transaction_count,
            "starknet_getNonce": self._rpc_get_nonce,
            "starknet_getClassHashAt": self._rpc_get_class_hash_at,
            "starknet_getClassAt": self._rpc_get_class_at,
            "starknet_getClass": self._rpc_get_class,
            "starknet_call": self._rpc_call,
            "starknet_estimateFee": self._rpc_estimate_fee,
            "starknet_addInvokeTransaction": self._rpc_add_invoke,
            "starknet_getTransactionReceipt": self._rpc_receipt,
            "starknet_getTransactionStatus": self._rpc_status,
            "starknet_getTransactionByHash": self._rpc_transaction,
        }

    async def _endpoint(self, request: Request) -> Response:
        return await jsonrpc_response(request, self._dispatch)

    def _dispatch(self, request: Any) -> dict[str, Any]:
        request_id = request.get("id") if isinstance(request, dict) else None
        try:
            if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                raise RpcError(-32600, "Invalid request")
            method = self._methods.get(request["method"])
            if method is None:
                raise RpcError(-32601, "Method not found", request["method"])
            params = request.get("params", [])
            if not isinstance(params, dict | list):
                raise parse.invalid_params("params must be an object or an array")
            return {"jsonrpc": "2.0", "id": request_id, "result": method(params)}
        except RpcError as error:
            return {"jsonrpc": "2.0", "id": request_id, "error": error.to_json()}

    def call(self, method: str, params: Any) -> Any:
        """Serve one JSON-RPC method in-process (raises ``RpcError``)."""
        handler = self._methods.get(method)
        if handler is None:
            raise RpcError(-32601, "Method not found", method)
        return handler(params)

    @staticmethod
    def _param(params: Any, name: str, position: int, *, default: Any = ...) -> Any:
        if isinstance(params, dict) and name in params:
            return params[name]
        if isinstance(params, list) and len(params) > position:
            return params[position]
        if default is not ...:
            return default
        raise parse.invalid_params(f"missing parameter {name!r}")

    def _block_by_id(self, block_id: Any) -> _SealedBlock | None:
        """The sealed block ``block_id`` names, or None for ``pre_confirmed``."""
        if block_id == "pre_confirmed":
            return None
        if block_id == "latest":
            return self._blocks[-1]
        if block_id == "l1_accepted":
            raise RpcError(BLOCK_NOT_FOUND, "Block not found", "this double has no L1: no block is L1-accepted")
        if isinstance(block_id, dict):
            if "block_number" in block_id:
                number = block_id["block_number"]
                if isinstance(number, int) and not isinstance(number, bool) and 0 <= number < len(self._blocks):
                    return self._blocks[number]
                raise RpcError(BLOCK_NOT_FOUND, "Block not found")
            if "block_hash" in block_id:
                wanted = parse.felt(block_id["block_hash"], "block_hash")
                for block in self._blocks:
                    if block.block_hash == wanted:
                        return block
                raise RpcError(BLOCK_NOT_FOUND, "Block not found")
        raise parse.invalid_params(f"invalid block id {block_id!r}")

    def _world_at(self, block_id: Any) -> _World:
        block = self._block_by_id(block_id)
        return self._pending_world if block is None else block.world

    def _contract_address_param(self, params: Any, position: int) -> int:
        address = parse.felt(self._param(params, "contract_address", position), "contract_address")
        if address not in self._contracts:
            raise RpcError(CONTRACT_NOT_FOUND, "Contract not found")
        return address

    def _rpc_block_hash_and_number(self, _: Any) -> dict[str, Any]:
        head = self._blocks[-1]
        return {"block_hash": hex(head.block_hash), "block_number": head.number}

    def _price(self, fri: int) -> dict[str, str]:
        return {"price_in_fri": hex(fri), "price_in_wei": hex(fri // WEI_PER_FRI_DIVISOR)}

    def _header_prices(self) -> dict[str, Any]:
        return {
            "sequencer_address": hex(SEQUENCER_ADDRESS),
            "l1_gas_price": self._price(L1_GAS_PRICE_FRI),
            "l2_gas_price": self._price(L2_GAS_PRICE_FRI),
            "l1_data_gas_price": self._price(L1_DATA_GAS_PRICE_FRI),
            "l1_da_mode": "BLOB",
            "starknet_version": STARKNET_VERSION,
        }

    def _rpc_block(self, params: Any, shape: str) -> dict[str, Any]:
        block = self._block_by_id(self._param(params, "block_id", 0))
        tx_hashes = tuple(self._pending_hashes) if block is None else block.tx_hashes
        if shape == "hashes":
            transactions: list[Any] = [hex(h) for h in tx_hashes]
        elif shape == "txs":
            transactions = [self._txs[h].wire for h in tx_hashes]
        else:
            transactions = [
                {"transaction": self._txs[h].wire, "receipt": self._receipt_json(self._txs[h], with_block=False)}
                for h in tx_hashes
            ]
        if block is None:
            return {
                "block_number": self._blocks[-1].number + 1,
                "timestamp": self._pending_timestamp,
                **self._header_prices(),
                "transactions": transactions,
            }
        n_events = sum(len(self._txs[h].events) for h in tx_hashes)
        return {
            **accepted_block_header(block),
            **self._header_prices(),
            "transaction_commitment": hex(_poseidon(list(tx_hashes))),
            "event_commitment": hex(_poseidon([n_events, *tx_hashes])),
            "receipt_commitment": hex(_poseidon([block.number, *tx_hashes])),
            "state_diff_commitment": hex(block.new_root),
            "event_count": n_events,
            "transaction_count": len(tx_hashes),
            "state_diff_length": len(tx_hashes),
            "transactions": transactions,
        }

    def _rpc_block_transaction_count(self, params: Any) -> int:
        block = self._block_by_id(self._param(params, "block_id", 0))
        return len(self._pending_hashes) if block is None else len(block.tx_hashes)

    def _rpc_get_nonce(self, params: Any) -> str:
        world = self._world_at(self._param(params, "block_id", 0))
        address = self._contract_address_param(params, 1)
        return hex(world.nonces.get(address, 0))

    def _rpc_get_class_hash_at(self, params: Any) -> str:
        self._block_by_id(self._param(params, "block_id", 0))
        return hex(self._contracts[self._contract_address_param(params, 1)][0])

    def _rpc_get_class_at(self, params: Any) -> dict[str, Any]:
        self._block_by_id(self._param(params, "block_id", 0))
        return self._sierra_class(self._contracts[self._contract_address_param(params, 1)][0])

    def _rpc_get_class(self, params: Any) -> dict[str, Any]:
        self._block_by_id(self._param(params, "block_id", 0))
        return self._sierra_class(parse.felt(self._param(params, "class_hash", 1), "class_hash"))

    def _sierra_class(self, class_hash: int) -> dict[str, Any]:
        """A stub Sierra class (no program): enough for a client to see a Cairo 1 contract and its entry points."""
        entry_points = {cls: sorted(entries) for cls, entries in self._contracts.values()}
        entry_points[ACCOUNT_CLASS_HASH] = [EXECUTE_SELECTOR, get_selector_from_name("__validate__")]
        selectors = entry_points.get(class_hash)
        if selectors is None:
            raise RpcError(CLASS_HASH_NOT_FOUND, "Class hash not found")
        return {
            "sierra_program": [hex(1), hex(class_hash)],
            "contract_class_version": "0.1.0",
            "entry_points_by_type": {
                "CONSTRUCTOR": [],
                "EXTERNAL": [{"selector": hex(s), "function_idx": i} for i, s in enumerate(sorted(selectors))],
                "L1_HANDLER": [],
            },
            "abi": "[]",
        }

    def _rpc_call(self, params: Any) -> list[str]:
        request = self._param(params, "request", 0)
        world = self._world_at(self._param(params, "block_id", 1))
        if not isinstance(request, dict):
            raise parse.invalid_params("request: expected an object")
        address = parse.felt(parse.field(request, "contract_address", "request"), "contract_address")
        selector = parse.felt(parse.field(request, "entry_point_selector", "request"), "entry_point_selector")
        calldata = parse.felts(parse.field(request, "calldata", "request"), "calldata")
        if address not in self._contracts:
            raise RpcError(CONTRACT_NOT_FOUND, "Contract not found")
        if selector not in self._contracts[address][1]:
            raise RpcError(21, "Requested entrypoint does not exist in the contract")
        ctx = _CallContext(world=world.copy(), caller=0, events=[])
        try:
            result = self._builtins.invoke(ctx, ContractCall(to=address, selector=selector, calldata=calldata))
        except _Revert as failure:
            raise RpcError(
                CONTRACT_ERROR, "Contract error", {"revert_error": f"Execution failed. Failure reason: {failure}."}
            ) from None
        return parse.hexes(result)

    def _rpc_estimate_fee(self, params: Any) -> list[dict[str, Any]]:
        """Validate and execute each transaction in turn on a scratch copy of the state; a validation failure or
        a revert is error 41, naming the transaction, as on Starknet."""
        requests = self._param(params, "request", 0)
        flags = self._param(params, "simulation_flags", 1, default=[])
        world = self._world_at(self._param(params, "block_id", 2, default="pre_confirmed")).copy()
        if not isinstance(requests, list) or not isinstance(flags, list):
            raise parse.invalid_params("request and simulation_flags must be arrays")
        skip_validate = "SKIP_VALIDATE" in flags
        estimates: list[dict[str, Any]] = []
        for index, raw in enumerate(requests):
            tx = InvokeV3.from_json(raw)
            try:
                if tx.version not in (3, QUERY_VERSION_BASE + 3):
                    raise RpcError(UNSUPPORTED_TX_VERSION, "The transaction version is not supported", hex(tx.version))
                self._check_sender(tx)
                self._check_nonce(world, tx)
                if skip_validate:
                    calls = decode_execute_calldata(tx.calldata)
                else:
                    calls = self._check_signature(tx, tx.calculate_hash(self.chain_id_felt))
            except (RpcError, ValueError) as failure:
                detail = failure.data if isinstance(failure, RpcError) else str(failure)
                raise RpcError(
                    TRANSACTION_EXECUTION_ERROR,
                    "Transaction execution error",
                    {"transaction_index": index, "execution_error": f"validation failed: {detail}"},
                ) from None
            outcome = self._builtins.execute(world, tx.sender_address, calls)
            if outcome.revert_reason is not None:
                raise RpcError(
                    TRANSACTION_EXECUTION_ERROR,
                    "Transaction execution error",
                    {"transaction_index": index, "execution_error": outcome.revert_reason},
                )
            world = outcome.world
            world.nonces[tx.sender_address] += 1
            estimates.append(fee_estimate(tx))
        return estimates

    def _rpc_add_invoke(self, params: Any) -> dict[str, str]:
        tx = InvokeV3.from_json(self._param(params, "invoke_transaction", 0))
        if tx.version != 3:
            raise RpcError(
                UNSUPPORTED_TX_VERSION,
                "The transaction version is not supported",
                f"version {tx.version:#x}: only 0x3 invokes are executed (query versions are for estimates only)",
            )
        tx_hash = tx.calculate_hash(self.chain_id_felt)
        if tx_hash in self._txs:
            raise RpcError(DUPLICATE_TX, "A transaction with the same hash already exists in the mempool", hex(tx_hash))
        self._check_sender(tx)
        self._check_nonce(self._pending_world, tx)
        gas = gas_usage(tx)
        _check_resource_bounds(tx.resource_bounds, gas)
        calls = self._check_signature(tx, tx_hash)

        outcome = self._builtins.execute(self._pending_world, tx.sender_address, calls)
        outcome.world.nonces[tx.sender_address] += 1
        self._pending_world = outcome.world
        if not self._pending_hashes:
            self._pending_timestamp = int(time.time())
        self._pending_hashes.append(tx_hash)
        self._txs[tx_hash] = L2Transaction(
            transaction_hash=tx_hash,
            sender_address=tx.sender_address,
            nonce=tx.nonce,
            calls=calls,
            execution_status=ExecutionStatus.REVERTED if outcome.revert_reason else ExecutionStatus.SUCCEEDED,
            revert_reason=outcome.revert_reason,
            finality_status=FinalityStatus.PRE_CONFIRMED,
            block_number=self._blocks[-1].number + 1,
            block_hash=None,
            gas=gas,
            events=outcome.events,
            wire=tx.to_json(tx_hash),
        )
        if self.block_time_s == 0 and not self._is_holding_blocks:
            self.seal_block()
        else:
            self._notify()
        return {"transaction_hash": hex(tx_hash)}

    def _known_tx(self, params: Any) -> L2Transaction:
        tx_hash = parse.felt(self._param(params, "transaction_hash", 0), "transaction_hash")
        tx = self._txs.get(tx_hash)
        if tx is None:
            raise RpcError(TXN_HASH_NOT_FOUND, "Transaction hash not found")
        return tx

    def _receipt_json(self, tx: L2Transaction, *, with_block: bool) -> dict[str, Any]:
        receipt: dict[str, Any] = {
            "type": "INVOKE",
            "transaction_hash": hex(tx.transaction_hash),
            "actual_fee": {"amount": hex(tx.gas.fee_fri), "unit": "FRI"},
            "execution_status": tx.execution_status.value,
            "finality_status": tx.finality_status.value,
            "messages_sent": [],
            "events": [event.to_json() for event in tx.events],
            "execution_resources": {
                "l1_gas": tx.gas.l1_gas,
                "l1_data_gas": tx.gas.l1_data_gas,
                "l2_gas": tx.gas.l2_gas,
            },
        }
        if tx.revert_reason is not None:
            receipt["revert_reason"] = tx.revert_reason
        if with_block:
            receipt["block_number"] = tx.block_number
            if tx.block_hash is not None:
                receipt["block_hash"] = hex(tx.block_hash)
        return receipt

    def _rpc_receipt(self, params: Any) -> dict[str, Any]:
        return self._receipt_json(self._known_tx(params), with_block=True)

    def _rpc_status(self, params: Any) -> dict[str, Any]:
        tx = self._known_tx(params)
        status: dict[str, Any] = {
            "finality_status": tx.finality_status.value,
            "execution_status": tx.execution_status.value,
        }
        if tx.revert_reason is not None:
            status["failure_reason"] = tx.revert_reason
        return status

    def _rpc_transaction(self, params: Any) -> dict[str, Any]:
        return self._known_tx(params).wire
