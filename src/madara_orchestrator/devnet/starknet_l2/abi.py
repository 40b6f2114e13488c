"""Cairo's ABI wrapper, Integrity's storage and Piltover's SNOS output decoding, as the contracts read calldata."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from madara_orchestrator.devnet.layout_bridge import (
    FELT_PRIME,
)
from madara_orchestrator.devnet.starknet_l2.constants import (
    BOOTLOADER_HEADER_WORDS,
    CONTRACT_ADDRESS_BOUND,
    SNOS_HEADER_WORDS,
    U32_BOUND,
)
from madara_orchestrator.devnet.starknet_l2.world import _Revert
from madara_orchestrator.starknet.os_output import MessageToL1, MessageToL2, OsOutput, OsOutputHeader

_FELT = "felt"
_U32 = "u32"
_ADDRESS = "address"
_SPAN = "span"
_BOUNDS = {_FELT: FELT_PRIME, _U32: U32_BOUND, _ADDRESS: CONTRACT_ADDRESS_BOUND}


def _felts_of(count: int) -> tuple[str, int]:
    """A struct of ``count`` felts as one parameter."""
    return ("felts", count)


def _abi_args(calldata: tuple[int, ...], params: Sequence[str | tuple[str, int]]) -> list[Any]:
    """Deserialize an entry point's parameters as the Cairo ABI wrapper does: a parameter that cannot be read
    is 'Failed to deserialize param #N', a word left over 'Input too long for arguments'."""
    values: list[Any] = []
    position = 0
    for number, param in enumerate(params, start=1):
        failed = _Revert(f"Failed to deserialize param #{number}")
        if isinstance(param, tuple):
            end = position + param[1]
            if end > len(calldata):
                raise failed
            values.append(tuple(calldata[position:end]))
            position = end
            continue
        if position >= len(calldata):
            raise failed
        if param == _SPAN:
            end = position + 1 + calldata[position]
            if end > len(calldata):
                raise failed
            values.append(tuple(calldata[position + 1 : end]))
            position = end
            continue
        if calldata[position] >= _BOUNDS[param]:
            raise failed
        values.append(calldata[position])
        position += 1
    if position != len(calldata):
        raise _Revert("Input too long for arguments")
    return values


def _at(span: Sequence[int], index: int) -> int:
    """``span.at(index)`` / ``array[index]``."""
    if index >= len(span):
        raise _Revert("Index out of bounds")
    return span[index]


class _SpanIter:
    """A ``SpanIter<felt252>`` as Piltover's deserialization walks it."""

    def __init__(self, words: Sequence[int]) -> None:
        self.words = words
        self.position = 0

    def next(self) -> int:
        """``*(input_iter.next().unwrap())``."""
        if self.position >= len(self.words):
            raise _Revert("Option::unwrap failed.")
        self.position += 1
        return self.words[self.position - 1]

    def segment(self, length: int) -> list[int]:
        """``read_segment``: up to ``length`` words, fewer if the input ends first."""
        taken = list(self.words[self.position : self.position + length])
        self.position += len(taken)
        return taken


def _u32(value: int, error: str) -> int:
    """``value.try_into().expect(error)`` into a ``usize``."""
    if value >= U32_BOUND:
        raise _Revert(error)
    return value


def _contract_address(value: int, error: str) -> int:
    if value >= CONTRACT_ADDRESS_BOUND:
        raise _Revert(error)
    return value


def _messages(segment: _SpanIter, header_words: int) -> Iterator[tuple[list[int], tuple[int, ...]]]:
    """Piltover's message loop over a messages segment: each message's ``header_words`` words (the last its
    payload's size), then its payload; it ends when fewer than ``header_words`` words are left."""
    while len(message := segment.segment(header_words)) == header_words:
        payload = segment.segment(_u32(message[-1], "Invalid payload size"))
        yield message, tuple(payload)


def deserialize_os_output(snos_output: Sequence[int]) -> OsOutput:
    """Piltover's ``deserialize_os_output`` of a bootloaded SNOS output: the bootloader's 3 words skipped, the
    10-word header, the KZG section skipped when ``use_kzg_da`` is not 0, then the messages; the state diff
    after them is not read. Fails with the Cairo panic Piltover would (a ``_Revert``)."""
    words = _SpanIter(snos_output)
    words.segment(BOOTLOADER_HEADER_WORDS)
    header = words.segment(SNOS_HEADER_WORDS)
    use_kzg_da = _at(header, 8)
    full_output = _at(header, 9)
    if use_kzg_da != 0:
        kzg = words.segment(2)
        n_blobs = _u32(_at(kzg, 1), "Invalid n_blobs")
        words.segment(2 * 2 * n_blobs)
    n_to_l1 = _u32(words.next(), "Invalid n_messages_to_l1")
    segment_to_l1 = _SpanIter(words.segment(n_to_l1))
    n_to_l2 = _u32(words.next(), "Invalid n_messages_to_l2")
    segment_to_l2 = _SpanIter(words.segment(n_to_l2))
    to_l1 = [
        MessageToL1(
            from_address=_contract_address(message[0], "Invalid from address"),
            to_address=_contract_address(message[1], "Invalid to address"),
            payload=payload,
        )
        for message, payload in _messages(segment_to_l1, 3)
    ]
    to_l2 = [
        MessageToL2(
            from_address=_contract_address(message[0], "Invalid from address"),
            to_address=_contract_address(message[1], "Invalid to address"),
            nonce=message[2],
            selector=message[3],
            payload=payload,
        )
        for message, payload in _messages(segment_to_l2, 5)
    ]
    return OsOutput(
        header=OsOutputHeader(
            initial_root=header[0],
            final_root=header[1],
            prev_block_number=header[2],
            new_block_number=header[3],
            prev_block_hash=header[4],
            new_block_hash=header[5],
            os_program_hash=header[6],
            starknet_os_config_hash=header[7],
            use_kzg_da=use_kzg_da != 0,
            full_output=full_output != 0,
        ),
        kzg=None,
        messages_to_l1=tuple(to_l1),
        messages_to_l2=tuple(to_l2),
        state_diff=None,
    )
