"""The program output of the Starknet OS and of the aggregator as typed values (SPEC §6.6, §9).

Layout (Starknet ≥ 0.13.3; the aggregator writes the same one): a 10-felt header, the KZG section when
``use_kzg_da`` (z, n_blobs, n commitments as two 192-bit limbs, n evaluations as two 128-bit limbs,
low limb first), the L2→L1 and L1→L2 message segments, and — without KZG DA — the state diff
(stateless-compressed unless ``full_output``). ``parse_bootloader_output`` reads the aggregator's input.
``parse_legacy_os_output`` reads the single-blob layout of Starknet 0.13.1 (a 6-felt header and a
5-felt KZG section: commitment limbs, z, y limbs), inferred from the recorded mainnet outputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.starknet.compression import decompress_prefix
from madara_orchestrator.starknet.felt import STARKNET_PRIME, parse_felt

HEADER_SIZE = 10
USE_KZG_DA_OFFSET = 8
FULL_OUTPUT_OFFSET = 9
KZG_Z_OFFSET = HEADER_SIZE
KZG_N_BLOBS_OFFSET = HEADER_SIZE + 1
KZG_COMMITMENTS_OFFSET = HEADER_SIZE + 2
COMMITMENT_LIMB_BITS = 192
EVALUATION_LIMB_BITS = 128
MAX_BLOBS = 2**16
"""A sanity bound on n_blobs: anything larger is a malformed output, not a real batch."""

N_UPDATES_SMALL_BOUND = 2**8
N_UPDATES_BOUND = 2**64


class MalformedProgramOutput(InvalidInput):
    """Felts that are not an OS / aggregator output."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OsOutputHeader:
    initial_root: int
    final_root: int
    prev_block_number: int
    new_block_number: int
    prev_block_hash: int
    new_block_hash: int
    os_program_hash: int
    """The OS program hash when the aggregator produced the output; 0 for the OS itself."""
    starknet_os_config_hash: int
    use_kzg_da: bool
    full_output: bool

    def felts(self) -> list[int]:
        """The header as the OS writes it (``HEADER_SIZE`` felts, the flags as 0 or 1): what the parsers read."""
        return [
            self.initial_root,
            self.final_root,
            self.prev_block_number,
            self.new_block_number,
            self.prev_block_hash,
            self.new_block_hash,
            self.os_program_hash,
            self.starknet_os_config_hash,
            int(self.use_kzg_da),
            int(self.full_output),
        ]


@dataclass(frozen=True, slots=True, kw_only=True)
class KzgSection:
    z: int
    """x_0: the point at which every blob polynomial is evaluated."""
    n_blobs: int
    commitments: tuple[bytes, ...]
    """48-byte KZG commitments, rebuilt from their (low, high) 192-bit limbs."""
    evaluations: tuple[int, ...]
    """y_i = blob_i(z), rebuilt from their (low, high) 128-bit limbs."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageToL1:
    from_address: int
    to_address: int
    payload: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageToL2:
    from_address: int
    to_address: int
    nonce: int
    selector: int
    payload: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageChange:
    key: int
    prev_value: int | None
    """Only with full output."""
    new_value: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractChange:
    address: int
    prev_nonce: int | None
    new_nonce: int | None
    """None when unchanged (packed output)."""
    prev_class_hash: int | None
    new_class_hash: int | None
    """None when unchanged (packed output)."""
    storage_changes: tuple[StorageChange, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassChange:
    class_hash: int
    prev_compiled_class_hash: int | None
    new_compiled_class_hash: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OsStateDiff:
    contracts: tuple[ContractChange, ...]
    classes: tuple[ClassChange, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class OsOutput:
    header: OsOutputHeader
    kzg: KzgSection | None
    messages_to_l1: tuple[MessageToL1, ...]
    messages_to_l2: tuple[MessageToL2, ...]
    state_diff: OsStateDiff | None
    """None with KZG DA (the state diff is in the blobs)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskOutput:
    """One child of a bootloader / aggregator input."""

    program_hash: int
    output: OsOutput


class _Reader:
    def __init__(self, felts: Sequence[int], start: int = 0) -> None:
        self.felts = felts
        self.pos = start

    def take(self, what: str) -> int:
        if self.pos >= len(self.felts):
            raise MalformedProgramOutput(f"program output ends at position {self.pos}, where {what} was expected")
        value = self.felts[self.pos]
        self.pos += 1
        return value

    def take_many(self, n: int, what: str) -> tuple[int, ...]:
        if n < 0 or self.pos + n > len(self.felts):
            raise MalformedProgramOutput(
                f"{what}: {n} felts expected at position {self.pos} but the output has {len(self.felts)}"
            )
        values = tuple(self.felts[self.pos : self.pos + n])
        self.pos += n
        return values

    def flag(self, what: str) -> bool:
        value = self.take(what)
        if value not in (0, 1):
            raise MalformedProgramOutput(f"{what} at position {self.pos - 1} is {value}, expected 0 or 1")
        return value == 1


def _check_felts(felts: Sequence[int]) -> None:
    for i, v in enumerate(felts):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v >= STARKNET_PRIME:
            raise MalformedProgramOutput(f"program output felt #{i} ({v!r:.80}) is not in the Starknet field")


# --------------------------------------------------------------------------------------------------
# Sections


def _limbs(low: int, high: int, bits: int, what: str) -> int:
    bound = 1 << bits
    if low >= bound or high >= bound:
        raise MalformedProgramOutput(f"{what}: a limb is wider than {bits} bits")
    return high * bound + low


def _read_header(r: _Reader) -> OsOutputHeader:
    return OsOutputHeader(
        initial_root=r.take("initial_root"),
        final_root=r.take("final_root"),
        prev_block_number=r.take("prev_block_number"),
        new_block_number=r.take("new_block_number"),
        prev_block_hash=r.take("prev_block_hash"),
        new_block_hash=r.take("new_block_hash"),
        os_program_hash=r.take("os_program_hash"),
        starknet_os_config_hash=r.take("starknet_os_config_hash"),
        use_kzg_da=r.flag("use_kzg_da"),
        full_output=r.flag("full_output"),
    )


def _read_kzg(r: _Reader) -> KzgSection:
    z = r.take("KZG x_0")
    n_blobs = r.take("n_blobs")
    if n_blobs > MAX_BLOBS:
        raise MalformedProgramOutput(f"n_blobs is {n_blobs}, which cannot be right")
    commitment_limbs = r.take_many(2 * n_blobs, "KZG commitments")
    evaluation_limbs = r.take_many(2 * n_blobs, "KZG evaluations")
    commitments = tuple(
        _limbs(commitment_limbs[2 * i], commitment_limbs[2 * i + 1], COMMITMENT_LIMB_BITS, f"commitment #{i}").to_bytes(
            48, "big"
        )
        for i in range(n_blobs)
    )
    evaluations = tuple(
        _limbs(evaluation_limbs[2 * i], evaluation_limbs[2 * i + 1], EVALUATION_LIMB_BITS, f"evaluation #{i}")
        for i in range(n_blobs)
    )
    return KzgSection(z=z, n_blobs=n_blobs, commitments=commitments, evaluations=evaluations)


def _read_messages(r: _Reader) -> tuple[tuple[MessageToL1, ...], tuple[MessageToL2, ...]]:
    to_l1: list[MessageToL1] = []
    segment = _Reader(r.take_many(r.take("messages_to_l1 size"), "messages_to_l1"))
    while segment.pos < len(segment.felts):
        from_address = segment.take("message to L1 from_address")
        to_address = segment.take("message to L1 to_address")
        payload = segment.take_many(segment.take("message to L1 payload size"), "message to L1 payload")
        to_l1.append(MessageToL1(from_address=from_address, to_address=to_address, payload=payload))
    to_l2: list[MessageToL2] = []
    segment = _Reader(r.take_many(r.take("messages_to_l2 size"), "messages_to_l2"))
    while segment.pos < len(segment.felts):
        from_address = segment.take("message to L2 from_address")
        to_address = segment.take("message to L2 to_address")
        nonce = segment.take("message to L2 nonce")
        selector = segment.take("message to L2 selector")
        payload = segment.take_many(segment.take("message to L2 payload size"), "message to L2 payload")
        to_l2.append(
            MessageToL2(
                from_address=from_address,
                to_address=to_address,
                nonce=nonce,
                selector=selector,
                payload=payload,
            )
        )
    return tuple(to_l1), tuple(to_l2)


def _read_state_diff(r: _Reader, *, full_output: bool) -> OsStateDiff:
    if not full_output:
        values, end = decompress_prefix(r.felts, r.pos)
        r.pos = end
        inner = _Reader(values)
        diff = _read_state_diff_body(inner, full_output=False)
        if inner.pos != len(values):
            raise MalformedProgramOutput(f"the decompressed state diff has {len(values) - inner.pos} extra felts")
        return diff
    return _read_state_diff_body(r, full_output=True)


def _read_state_diff_body(r: _Reader, *, full_output: bool) -> OsStateDiff:
    contracts = []
    for _ in range(r.take("number of contracts")):
        if full_output:
            address = r.take("contract address")
            prev_nonce, new_nonce = r.take("prev_nonce"), r.take("new_nonce")
            prev_class, new_class = r.take("prev_class_hash"), r.take("new_class_hash")
            n_changes = r.take("number of storage changes")
            contracts.append(
                ContractChange(
                    address=address,
                    prev_nonce=prev_nonce,
                    new_nonce=new_nonce,
                    prev_class_hash=prev_class,
                    new_class_hash=new_class,
                    storage_changes=_read_storage(r, n_changes, full_output=True),
                )
            )
            continue
        address = r.take("contract address")
        packed = r.take(f"packed header of {hex(address)}")
        rest, class_updated = divmod(packed, 2)
        rest, is_small = divmod(rest, 2)
        nonce, n_changes = divmod(rest, N_UPDATES_SMALL_BOUND if is_small else N_UPDATES_BOUND)
        updated_class = r.take(f"class hash of {hex(address)}") if class_updated else None
        contracts.append(
            ContractChange(
                address=address,
                prev_nonce=None,
                new_nonce=nonce or None,
                prev_class_hash=None,
                new_class_hash=updated_class,
                storage_changes=_read_storage(r, n_changes, full_output=False),
            )
        )
    classes = []
    for _ in range(r.take("number of classes")):
        class_hash = r.take("class hash")
        prev = r.take("prev compiled class hash") if full_output else None
        classes.append(
            ClassChange(
                class_hash=class_hash,
                prev_compiled_class_hash=prev,
                new_compiled_class_hash=r.take("compiled class hash"),
            )
        )
    return OsStateDiff(contracts=tuple(contracts), classes=tuple(classes))


def _read_storage(r: _Reader, n_changes: int, *, full_output: bool) -> tuple[StorageChange, ...]:
    if n_changes * (3 if full_output else 2) > len(r.felts) - r.pos:
        raise MalformedProgramOutput(f"{n_changes} storage changes announced at position {r.pos}: more than the data")
    out = []
    for _ in range(n_changes):
        key = r.take("storage key")
        prev = r.take("storage prev value") if full_output else None
        out.append(StorageChange(key=key, prev_value=prev, new_value=r.take("storage value")))
    return tuple(out)


# --------------------------------------------------------------------------------------------------
# Entry points


def _parse_os_output_at(r: _Reader) -> OsOutput:
    header = _read_header(r)
    kzg = _read_kzg(r) if header.use_kzg_da else None
    to_l1, to_l2 = _read_messages(r)
    state_diff = None if header.use_kzg_da else _read_state_diff(r, full_output=header.full_output)
    return OsOutput(header=header, kzg=kzg, messages_to_l1=to_l1, messages_to_l2=to_l2, state_diff=state_diff)


def parse_os_output(felts: Sequence[int]) -> OsOutput:
    """The whole output of one OS run; leftover felts are an error."""
    _check_felts(felts)
    r = _Reader(felts)
    out = _parse_os_output_at(r)
    if r.pos != len(felts):
        raise MalformedProgramOutput(f"{len(felts) - r.pos} felts left after the OS output (it ends at {r.pos})")
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputSections:
    """An OS / aggregator output up to the end of its message segments (what the state diff follows)."""

    header: OsOutputHeader
    kzg: KzgSection | None
    messages_to_l1: tuple[MessageToL1, ...]
    messages_to_l2: tuple[MessageToL2, ...]
    end: int
    """Where the messages end: the state diff (without KZG DA) starts here."""


def parse_output_sections(felts: Sequence[int], start: int = 0) -> OutputSections:
    """The header, KZG section and messages of the output starting at ``start``; whatever follows (a state
    diff, in any encoding) is not read."""
    _check_felts(felts)
    r = _Reader(felts, start)
    header = _read_header(r)
    kzg = _read_kzg(r) if header.use_kzg_da else None
    to_l1, to_l2 = _read_messages(r)
    return OutputSections(header=header, kzg=kzg, messages_to_l1=to_l1, messages_to_l2=to_l2, end=r.pos)


def parse_aggregator_output(felts: Sequence[int]) -> OsOutput:
    """The aggregator's output: the OS layout with ``os_program_hash`` set to the children's program."""
    out = parse_os_output(felts)
    if out.header.os_program_hash == 0:
        raise MalformedProgramOutput("os_program_hash is 0: this is an OS output, not an aggregator output")
    return out


def parse_bootloader_output(felts: Sequence[int]) -> list[TaskOutput]:
    """``[n_tasks, (size, program_hash, output…)…]`` with OS outputs as tasks (the aggregator input)."""
    _check_felts(felts)
    r = _Reader(felts)
    tasks = []
    for index in range(r.take("number of tasks")):
        size = r.take(f"size of task #{index}")
        start = r.pos
        program_hash = r.take(f"program hash of task #{index}")
        output = _parse_os_output_at(r)
        if r.pos - start + 1 != size:
            raise MalformedProgramOutput(
                f"task #{index} says its output is {size} felts but it took {r.pos - start + 1}"
            )
        tasks.append(TaskOutput(program_hash=program_hash, output=output))
    if r.pos != len(felts):
        raise MalformedProgramOutput(f"{len(felts) - r.pos} felts left after the bootloader output")
    return tasks


def parse_kzg_section(program_output: Sequence[int]) -> KzgSection:
    """Just the KZG section (SPEC §6.6 offsets: flag at 8, x_0 at 10, n_blobs at 11)."""
    if len(program_output) <= KZG_N_BLOBS_OFFSET:
        raise MalformedProgramOutput(
            f"Malformed program output: {len(program_output)} felts, the KZG section starts at {HEADER_SIZE}"
        )
    if program_output[USE_KZG_DA_OFFSET] != 1:
        raise MalformedProgramOutput(
            f"the program output does not use KZG DA (use_kzg_da = {program_output[USE_KZG_DA_OFFSET]})"
        )
    n_blobs = program_output[KZG_N_BLOBS_OFFSET]
    if n_blobs > MAX_BLOBS or len(program_output) < KZG_COMMITMENTS_OFFSET + 4 * n_blobs:
        raise MalformedProgramOutput(
            f"Malformed program output: {len(program_output)} felts cannot hold the KZG section of {n_blobs} blobs"
        )
    return _read_kzg(_Reader(program_output, HEADER_SIZE))


# --------------------------------------------------------------------------------------------------
# Starknet 0.13.1 (legacy) single-blob layout


@dataclass(frozen=True, slots=True, kw_only=True)
class LegacyOsOutput:
    initial_root: int
    final_root: int
    block_number: int
    block_hash: int
    starknet_os_config_hash: int
    use_kzg_da: bool
    kzg: KzgSection | None
    messages_to_l1: tuple[MessageToL1, ...]
    messages_to_l2: tuple[MessageToL2, ...]


def parse_legacy_os_output(felts: Sequence[int]) -> LegacyOsOutput:
    """The 0.13.1 layout: header of 6, then (KZG DA) commitment limbs, z, y limbs, then messages.
    The state diff of a non-KZG legacy output is not parsed (it has nothing after the messages here)."""
    _check_felts(felts)
    r = _Reader(felts)
    initial_root, final_root = r.take("initial_root"), r.take("final_root")
    block_number, block_hash = r.take("block_number"), r.take("block_hash")
    config_hash = r.take("starknet_os_config_hash")
    use_kzg_da = r.flag("use_kzg_da")
    kzg = None
    if use_kzg_da:
        c_low, c_high = r.take("commitment low limb"), r.take("commitment high limb")
        z = r.take("KZG x_0")
        y_low, y_high = r.take("y low limb"), r.take("y high limb")
        kzg = KzgSection(
            z=z,
            n_blobs=1,
            commitments=(_limbs(c_low, c_high, COMMITMENT_LIMB_BITS, "commitment").to_bytes(48, "big"),),
            evaluations=(_limbs(y_low, y_high, EVALUATION_LIMB_BITS, "evaluation"),),
        )
    to_l1, to_l2 = _read_messages(r)
    if r.pos != len(felts):
        raise MalformedProgramOutput(f"{len(felts) - r.pos} felts left after the legacy OS output")
    return LegacyOsOutput(
        initial_root=initial_root,
        final_root=final_root,
        block_number=block_number,
        block_hash=block_hash,
        starknet_os_config_hash=config_hash,
        use_kzg_da=use_kzg_da,
        kzg=kzg,
        messages_to_l1=to_l1,
        messages_to_l2=to_l2,
    )


# --------------------------------------------------------------------------------------------------
# Text forms


def parse_program_output_text(text: str, where: str = "program output") -> list[int]:
    """One felt a line (decimal or 0x-hex), as in ``program_output.txt`` of the vectors."""
    return [parse_felt(line, f"{where} line {i + 1}") for i, line in enumerate(text.split())]


def os_output_header_from_json(value: Mapping[str, Any], where: str = "snos_output") -> OsOutputHeader:
    """The header of a parsed OS output in JSON (``snos_output.json``: named hex fields)."""

    def field(key: str) -> int:
        if key not in value:
            raise InvalidInput(f"{where}: missing field {key!r}")
        return parse_felt(value[key], f"{where}.{key}")

    def flag(key: str) -> bool:
        number = field(key)
        if number not in (0, 1):
            raise InvalidInput(f"{where}.{key} is {number}, expected 0 or 1")
        return number == 1

    return OsOutputHeader(
        initial_root=field("initial_root"),
        final_root=field("final_root"),
        prev_block_number=field("prev_block_number"),
        new_block_number=field("new_block_number"),
        prev_block_hash=field("prev_block_hash"),
        new_block_hash=field("new_block_hash"),
        os_program_hash=field("os_program_hash"),
        starknet_os_config_hash=field("starknet_os_config_hash"),
        use_kzg_da=flag("use_kzg_da"),
        full_output=flag("full_output"),
    )
