"""v3 invokes as the sequencer reads them: parsing, hashing, the fixed gas model and fees, the account's calldata."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starknet_py.hash.transaction import (
    CommonTransactionV3Fields,
    TransactionHashPrefix,
    compute_invoke_v3_transaction_hash,
)
from starknet_py.net.client_models import DAMode, ResourceBounds, ResourceBoundsMapping

from madara_orchestrator.devnet.starknet_l2 import parse
from madara_orchestrator.devnet.starknet_l2.constants import (
    L1_DATA_GAS_PER_TX,
    L1_DATA_GAS_PRICE_FRI,
    L1_GAS_PER_TX,
    L1_GAS_PRICE_FRI,
    L2_GAS_PER_TX,
    L2_GAS_PER_WORD,
    L2_GAS_PRICE_FRI,
)
from madara_orchestrator.devnet.starknet_l2.model import (
    INSUFFICIENT_RESOURCES_FOR_VALIDATE,
    ContractCall,
    GasUsage,
    RpcError,
)

_RESOURCES = ("l1_gas", "l2_gas", "l1_data_gas")


@dataclass(frozen=True, slots=True, kw_only=True)
class InvokeV3:
    """A broadcasted INVOKE_TXN_V3, parsed."""

    sender_address: int
    calldata: tuple[int, ...]
    version: int
    signature: tuple[int, ...]
    nonce: int
    resource_bounds: ResourceBoundsMapping
    tip: int
    paymaster_data: tuple[int, ...]
    account_deployment_data: tuple[int, ...]
    nonce_data_availability_mode: DAMode
    fee_data_availability_mode: DAMode
    proof_facts: tuple[int, ...] | None

    @classmethod
    def from_json(cls, raw: Any) -> InvokeV3:
        what = "invoke_transaction"
        if not isinstance(raw, dict):
            raise parse.invalid_params(f"{what}: expected an object, got {raw!r}")
        if raw.get("type", "INVOKE") != "INVOKE":
            raise parse.invalid_params(f"{what}: only INVOKE transactions are served, got type {raw.get('type')!r}")
        bounds_raw = parse.field(raw, "resource_bounds", what)
        if not isinstance(bounds_raw, dict):
            raise parse.invalid_params(f"{what}.resource_bounds: expected an object")
        bounds: dict[str, ResourceBounds] = {}
        for resource in _RESOURCES:
            entry = parse.field(bounds_raw, resource, f"{what}.resource_bounds")
            if not isinstance(entry, dict):
                raise parse.invalid_params(f"{what}.resource_bounds.{resource}: expected an object")
            where = f"{what}.resource_bounds.{resource}"
            bounds[resource] = ResourceBounds(
                max_amount=parse.felt(parse.field(entry, "max_amount", where), f"{where}.max_amount", bound=2**64),
                max_price_per_unit=parse.felt(
                    parse.field(entry, "max_price_per_unit", where), f"{where}.max_price_per_unit", bound=2**128
                ),
            )
        proof_facts = raw.get("proof_facts")
        return cls(
            sender_address=parse.felt(parse.field(raw, "sender_address", what), "sender_address"),
            calldata=parse.felts(parse.field(raw, "calldata", what), "calldata"),
            version=parse.felt(parse.field(raw, "version", what), "version"),
            signature=parse.felts(parse.field(raw, "signature", what), "signature"),
            nonce=parse.felt(parse.field(raw, "nonce", what), "nonce"),
            resource_bounds=ResourceBoundsMapping(
                l1_gas=bounds["l1_gas"], l2_gas=bounds["l2_gas"], l1_data_gas=bounds["l1_data_gas"]
            ),
            tip=parse.felt(parse.field(raw, "tip", what), "tip", bound=2**64),
            paymaster_data=parse.felts(parse.field(raw, "paymaster_data", what), "paymaster_data"),
            account_deployment_data=parse.felts(
                parse.field(raw, "account_deployment_data", what), "account_deployment_data"
            ),
            nonce_data_availability_mode=_da_mode(parse.field(raw, "nonce_data_availability_mode", what)),
            fee_data_availability_mode=_da_mode(parse.field(raw, "fee_data_availability_mode", what)),
            proof_facts=None if proof_facts is None else parse.felts(proof_facts, "proof_facts"),
        )

    def calculate_hash(self, chain_id: int) -> int:
        """The transaction hash exactly as Starknet (and starknet-py's signer) computes it."""
        common = CommonTransactionV3Fields(
            tx_prefix=TransactionHashPrefix.INVOKE,
            version=self.version,
            address=self.sender_address,
            tip=self.tip,
            resource_bounds=self.resource_bounds,
            paymaster_data=list(self.paymaster_data),
            chain_id=chain_id,
            nonce=self.nonce,
            nonce_data_availability_mode=self.nonce_data_availability_mode,
            fee_data_availability_mode=self.fee_data_availability_mode,
        )
        return compute_invoke_v3_transaction_hash(
            account_deployment_data=list(self.account_deployment_data),
            calldata=list(self.calldata),
            common_fields=common,
            proof_facts=None if self.proof_facts is None else list(self.proof_facts),
        )

    def to_json(self, transaction_hash: int) -> dict[str, Any]:
        bounds = self.resource_bounds
        wire: dict[str, Any] = {
            "type": "INVOKE",
            "transaction_hash": hex(transaction_hash),
            "sender_address": hex(self.sender_address),
            "calldata": parse.hexes(self.calldata),
            "version": hex(self.version),
            "signature": parse.hexes(self.signature),
            "nonce": hex(self.nonce),
            "resource_bounds": {
                name: {"max_amount": hex(b.max_amount), "max_price_per_unit": hex(b.max_price_per_unit)}
                for name, b in (
                    ("l1_gas", bounds.l1_gas),
                    ("l2_gas", bounds.l2_gas),
                    ("l1_data_gas", bounds.l1_data_gas),
                )
            },
            "tip": hex(self.tip),
            "paymaster_data": parse.hexes(self.paymaster_data),
            "account_deployment_data": parse.hexes(self.account_deployment_data),
            "nonce_data_availability_mode": self.nonce_data_availability_mode.name,
            "fee_data_availability_mode": self.fee_data_availability_mode.name,
        }
        if self.proof_facts is not None:
            wire["proof_facts"] = parse.hexes(self.proof_facts)
        return wire


def _da_mode(value: Any) -> DAMode:
    if value in ("L1", "L2"):
        return DAMode[value]
    raise parse.invalid_params(f"data availability mode: expected 'L1' or 'L2', got {value!r}")


def gas_usage(tx: InvokeV3) -> GasUsage:
    """The fixed gas model: a base cost plus a cost per calldata and signature word."""
    words = len(tx.calldata) + len(tx.signature)
    return GasUsage(
        l1_gas=L1_GAS_PER_TX, l1_data_gas=L1_DATA_GAS_PER_TX, l2_gas=L2_GAS_PER_TX + L2_GAS_PER_WORD * words
    )


def fee_estimate(tx: InvokeV3) -> dict[str, str]:
    """The ``FEE_ESTIMATE`` object ``starknet_estimateFee`` answers for ``tx`` under the double's gas model."""
    gas = gas_usage(tx)
    return {
        "l1_gas_consumed": hex(gas.l1_gas),
        "l1_gas_price": hex(L1_GAS_PRICE_FRI),
        "l2_gas_consumed": hex(gas.l2_gas),
        "l2_gas_price": hex(L2_GAS_PRICE_FRI),
        "l1_data_gas_consumed": hex(gas.l1_data_gas),
        "l1_data_gas_price": hex(L1_DATA_GAS_PRICE_FRI),
        "overall_fee": hex(gas.fee_fri),
        "unit": "FRI",
    }


def decode_execute_calldata(calldata: Sequence[int]) -> tuple[ContractCall, ...]:
    """Cairo-1 ``__execute__`` calldata: ``[n_calls, (to, selector, calldata_len, calldata…)…]``."""
    if not calldata:
        raise ValueError("empty calldata: expected [n_calls, (to, selector, calldata_len, calldata…)…]")
    calls: list[ContractCall] = []
    position = 1
    for index in range(calldata[0]):
        if position + 3 > len(calldata):
            raise ValueError(f"call {index} is cut short: {len(calldata)} words for {calldata[0]} calls")
        to, selector, length = calldata[position : position + 3]
        start = position + 3
        if start + length > len(calldata):
            raise ValueError(f"call {index} declares {length} calldata words, {len(calldata) - start} remain")
        calls.append(ContractCall(to=to, selector=selector, calldata=tuple(calldata[start : start + length])))
        position = start + length
    if position != len(calldata):
        raise ValueError(f"{len(calldata) - position} words left after {calldata[0]} calls")
    return tuple(calls)


def _check_resource_bounds(bounds: ResourceBoundsMapping, gas: GasUsage) -> None:
    """Error 53 unless each resource the transaction uses is covered, in amount and in price per unit."""
    shortfalls = []
    for name, bound, used, price in (
        ("l1_gas", bounds.l1_gas, gas.l1_gas, L1_GAS_PRICE_FRI),
        ("l2_gas", bounds.l2_gas, gas.l2_gas, L2_GAS_PRICE_FRI),
        ("l1_data_gas", bounds.l1_data_gas, gas.l1_data_gas, L1_DATA_GAS_PRICE_FRI),
    ):
        if used == 0:
            continue
        if bound.max_amount < used:
            shortfalls.append(f"{name} max_amount {bound.max_amount} < {used} needed")
        if bound.max_price_per_unit < price:
            shortfalls.append(f"{name} max_price_per_unit {bound.max_price_per_unit} < price {price}")
    if shortfalls:
        raise RpcError(
            INSUFFICIENT_RESOURCES_FOR_VALIDATE,
            "The transaction's resources don't cover validation or the minimal transaction fee",
            "; ".join(shortfalls),
        )
