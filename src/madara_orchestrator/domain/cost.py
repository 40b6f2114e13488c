"""The cost ledger: what each settled batch cost, and the sums. Pure values and arithmetic, no I/O.

Per batch (an aggregator batch on an L2; a SNOS batch on an L3): blocks, felts, blobs and fill (felts over
4096 felts a blob), execution gas and fee (``gasUsed × effectiveGasPrice`` of the final receipt), blob gas
and fee (``blobGasUsed × blobGasPrice``), the attempts signed (replacements = attempts − 1), the time from
the batch's first block to settled, and the bytes of its artifacts in storage.

Where each figure comes from (engine/cost.py reads them): the fee split is recorded at settlement time on the
mined attempt of the StateTransition's ``tx_attempts`` (``FeeSplit.attempt_fields``, next to its
``fee_paid_wei``); everything else is derived on read from the batch row and the job's metadata.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from madara_orchestrator.domain.chain import FELTS_PER_BLOB, GAS_PER_BLOB, blobs_for

SPLIT_FIELDS = ("gas_used", "effective_gas_price_wei", "blob_gas_used", "blob_gas_price_wei")
"""The keys a mined attempt's ``tx_attempts`` entry gets (decimal strings, as its ``fee_paid_wei``)."""


def _quantity(value: object) -> int | None:
    """A non-negative integer from a receipt (``0x`` hex) or a stored entry (decimal string or int)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if not isinstance(value, str) or not value:
        return None
    try:
        number = int(value, 16) if value.lower().startswith("0x") else int(value, 10)
    except ValueError:
        return None
    return number if number >= 0 else None


@dataclass(frozen=True, slots=True, kw_only=True)
class FeeSplit:
    """What an Ethereum receipt says a transaction paid: execution gas and blob gas, each at its price."""

    gas_used: int
    effective_gas_price_wei: int
    blob_gas_used: int = 0
    blob_gas_price_wei: int = 0

    @property
    def execution_fee_wei(self) -> int:
        return self.gas_used * self.effective_gas_price_wei

    @property
    def blob_fee_wei(self) -> int:
        return self.blob_gas_used * self.blob_gas_price_wei

    @property
    def fee_wei(self) -> int:
        return self.execution_fee_wei + self.blob_fee_wei

    @classmethod
    def from_receipt(cls, receipt: Mapping[str, Any]) -> FeeSplit | None:
        """The split of an ``eth_getTransactionReceipt`` answer; None without ``gasUsed`` and
        ``effectiveGasPrice`` (a type-2 transaction has no blob gas: 0)."""
        gas, price = _quantity(receipt.get("gasUsed")), _quantity(receipt.get("effectiveGasPrice"))
        if gas is None or price is None:
            return None
        return cls(
            gas_used=gas,
            effective_gas_price_wei=price,
            blob_gas_used=_quantity(receipt.get("blobGasUsed")) or 0,
            blob_gas_price_wei=_quantity(receipt.get("blobGasPrice")) or 0,
        )

    def attempt_fields(self) -> dict[str, str]:
        """The split as a ``tx_attempts`` entry stores it."""
        return {name: str(getattr(self, name)) for name in SPLIT_FIELDS}

    @classmethod
    def from_attempt(cls, entry: Mapping[str, Any]) -> FeeSplit | None:
        """The split a ``tx_attempts`` entry carries, or None when it has none (recorded before the ledger,
        or by a settlement layer that tells no split)."""
        values = [_quantity(entry.get(name)) for name in SPLIT_FIELDS]
        if any(v is None for v in values):
            return None
        gas, price, blob_gas, blob_price = (int(v or 0) for v in values)
        return cls(gas_used=gas, effective_gas_price_wei=price, blob_gas_used=blob_gas, blob_gas_price_wei=blob_price)


def fee_of_attempt(entry: Mapping[str, Any]) -> int | None:
    """The fee a stored attempt records (``fee_paid_wei``, or ``fee_wei``)."""
    for key in ("fee_paid_wei", "fee_wei"):
        value = _quantity(entry.get(key))
        if value is not None:
            return value
    return None


def mined_attempt(attempts: Sequence[object]) -> Mapping[str, Any] | None:
    """The attempt a settlement's fee was recorded on: the last Finalized one with a fee, else the last with a
    fee, else None."""
    entries = [a for a in attempts if isinstance(a, Mapping) and fee_of_attempt(a) is not None]
    finalized = [a for a in entries if a.get("status") == "Finalized"]
    if finalized:
        return finalized[-1]
    return entries[-1] if entries else None


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchCost:
    """One batch's line of the ledger. A figure that does not apply or was not recorded is None."""

    index: int
    start_block: int
    end_block: int
    settled: bool
    """Whether its StateTransition is Completed (a batch not settled yet has no fee)."""
    felts: int | None
    """The batch's compressed state diff, as batching measured it (``blob_len``); None on an L3."""
    blobs: int | None
    """From the receipt's blob gas when recorded, else the blobs ``felts`` take; None on an L3 (calldata)."""
    gas_used: int | None = None
    execution_fee_wei: int | None = None
    blob_gas_used: int | None = None
    blob_fee_wei: int | None = None
    fee_wei: int | None = None
    """The total: execution + blob fee when the split is known, else the fee the settlement recorded."""
    attempts: int = 0
    """Settlement transactions signed for the batch (each replacement is one more)."""
    first_block_at: float | None = None
    """When the batch was opened: batching saw its first block (block timestamps are not stored)."""
    settled_at: float | None = None
    """When the settlement transaction was final (the StateTransition's processing completed)."""
    bytes_stored: int | None = None
    tx_hash: str | None = None

    @property
    def blocks(self) -> int:
        return self.end_block - self.start_block + 1

    @property
    def fill(self) -> float | None:
        if self.felts is None or not self.blobs:
            return None
        return self.felts / (self.blobs * FELTS_PER_BLOB)

    @property
    def replacements(self) -> int:
        return max(0, self.attempts - 1)

    @property
    def seconds_to_settle(self) -> float | None:
        if self.first_block_at is None or self.settled_at is None:
            return None
        return max(0.0, self.settled_at - self.first_block_at)

    @property
    def fee_per_block_wei(self) -> int | None:
        return None if self.fee_wei is None else self.fee_wei // self.blocks

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start_block": self.start_block,
            "end_block": self.end_block,
            "blocks": self.blocks,
            "settled": self.settled,
            "felts": self.felts,
            "blobs": self.blobs,
            "fill": self.fill,
            "gas_used": self.gas_used,
            "execution_fee_wei": self.execution_fee_wei,
            "blob_gas_used": self.blob_gas_used,
            "blob_fee_wei": self.blob_fee_wei,
            "fee_wei": self.fee_wei,
            "fee_per_block_wei": self.fee_per_block_wei,
            "attempts": self.attempts,
            "replacements": self.replacements,
            "first_block_at": self.first_block_at,
            "settled_at": self.settled_at,
            "seconds_to_settle": self.seconds_to_settle,
            "bytes_stored": self.bytes_stored,
            "tx_hash": self.tx_hash,
        }


def batch_cost(
    *,
    index: int,
    start_block: int,
    end_block: int,
    felts: int | None,
    uses_blobs: bool,
    settled: bool,
    tx_attempts: Sequence[object] = (),
    tx_hash: str | None = None,
    first_block_at: float | None = None,
    settled_at: float | None = None,
    bytes_stored: int | None = None,
) -> BatchCost:
    """A batch's line from its records: the batch row (blocks, felts, when opened), the StateTransition's
    metadata (``tx_attempts``: attempts, the mined one's fee and split) and the bytes of its artifacts."""
    mined = mined_attempt(tx_attempts) if settled else None
    split = FeeSplit.from_attempt(mined) if mined is not None else None
    total = split.fee_wei if split is not None else (fee_of_attempt(mined) if mined is not None else None)
    blobs: int | None = None
    if split is not None and split.blob_gas_used:
        blobs = split.blob_gas_used // GAS_PER_BLOB  # what the transaction carried
    elif uses_blobs and felts is not None:
        blobs = blobs_for(felts)
    return BatchCost(
        index=index,
        start_block=start_block,
        end_block=end_block,
        settled=settled,
        felts=felts,
        blobs=blobs,
        gas_used=split.gas_used if split else None,
        execution_fee_wei=split.execution_fee_wei if split else None,
        blob_gas_used=split.blob_gas_used if split else None,
        blob_fee_wei=split.blob_fee_wei if split else None,
        fee_wei=total,
        attempts=sum(1 for a in tx_attempts if isinstance(a, Mapping)),
        first_block_at=first_block_at,
        settled_at=settled_at if settled else None,
        bytes_stored=bytes_stored,
        tx_hash=(mined.get("tx_hash") if mined is not None else None) or (tx_hash if settled else None),
    )


def _sum(values: Sequence[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


@dataclass(frozen=True, slots=True, kw_only=True)
class CostSummary:
    """The sums over a ledger's lines, and the cumulative fee series (settled batches, oldest first)."""

    lines: list[BatchCost]
    series: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        settled = [c for c in self.lines if c.settled]
        with_fee = [c for c in settled if c.fee_wei is not None]
        fee = _sum([c.fee_wei for c in with_fee])
        fee_blocks = sum(c.blocks for c in with_fee)
        blob_lines = [c for c in settled if c.blobs is not None and c.felts is not None]
        capacity = sum((c.blobs or 0) * FELTS_PER_BLOB for c in blob_lines)
        seconds = [s for s in (c.seconds_to_settle for c in settled) if s is not None]
        return {
            "batches": len(self.lines),
            "settled": len(settled),
            "with_fee": len(with_fee),
            "blocks": sum(c.blocks for c in settled),
            "felts": _sum([c.felts for c in settled]),
            "blobs": _sum([c.blobs for c in settled]),
            "fill": sum(c.felts or 0 for c in blob_lines) / capacity if capacity else None,
            "gas_used": _sum([c.gas_used for c in settled]),
            "execution_fee_wei": _sum([c.execution_fee_wei for c in settled]),
            "blob_gas_used": _sum([c.blob_gas_used for c in settled]),
            "blob_fee_wei": _sum([c.blob_fee_wei for c in settled]),
            "fee_wei": fee,
            "fee_per_block_wei": fee // fee_blocks if fee is not None and fee_blocks else None,
            "attempts": sum(c.attempts for c in settled),
            "replacements": sum(c.replacements for c in settled),
            "mean_seconds_to_settle": sum(seconds) / len(seconds) if seconds else None,
            "bytes_stored": _sum([c.bytes_stored for c in self.lines]),
        }


def summarize(lines: Sequence[BatchCost]) -> CostSummary:
    """The ledger's sums and, per settled batch with a fee (by index), the fee per block and the running
    totals of fee and blocks."""
    ordered = sorted(lines, key=lambda c: c.index)
    series: list[dict[str, Any]] = []
    cumulative_fee = 0
    cumulative_blocks = 0
    for line in ordered:
        if not line.settled or line.fee_wei is None:
            continue
        cumulative_fee += line.fee_wei
        cumulative_blocks += line.blocks
        series.append(
            {
                "index": line.index,
                "end_block": line.end_block,
                "settled_at": line.settled_at,
                "fee_wei": line.fee_wei,
                "fee_per_block_wei": line.fee_per_block_wei,
                "cumulative_fee_wei": cumulative_fee,
                "cumulative_blocks": cumulative_blocks,
                "cumulative_fee_per_block_wei": cumulative_fee // cumulative_blocks,
            }
        )
    return CostSummary(lines=ordered, series=series)
