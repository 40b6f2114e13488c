"""Cairo PIE zip files (cairo-lang / cairo-vm "Position Independent Execution" format).

A PIE zip holds ``version.json``, ``metadata.json`` (program, segments, builtin segments),
``memory.bin`` (pairs of an 8-byte little-endian address and a 32-byte little-endian value),
``additional_data.json`` and ``execution_resources.json``. ``read_pie`` validates all of it and
raises ``PieError`` (an ``InvalidInput``) naming the member and the problem; ``write_pie`` gives
back a zip that ``read_pie`` reads to an equal value. Pure: bytes in, values out.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.starknet.felt import STARKNET_PRIME

VERSION_FILE = "version.json"
METADATA_FILE = "metadata.json"
MEMORY_FILE = "memory.bin"
ADDITIONAL_DATA_FILE = "additional_data.json"
EXECUTION_RESOURCES_FILE = "execution_resources.json"
MEMBERS = (VERSION_FILE, METADATA_FILE, MEMORY_FILE, ADDITIONAL_DATA_FILE, EXECUTION_RESOURCES_FILE)

ADDR_BYTES = 8
FIELD_BYTES = 32
PAIR_BYTES = ADDR_BYTES + FIELD_BYTES
SEGMENT_BITS = 16
OFFSET_BITS = 47
MAX_MEMBER_BYTES = 1 << 30
"""A PIE member larger than this (uncompressed) is refused rather than inflated (zip bomb guard)."""

_ADDR_FLAG = 1 << (8 * ADDR_BYTES - 1)
_VALUE_FLAG = 1 << (8 * FIELD_BYTES - 1)
_OFFSET_MASK = (1 << OFFSET_BITS) - 1
_SEGMENT_MASK = (1 << SEGMENT_BITS) - 1

_METADATA_KEYS = (
    "program",
    "program_segment",
    "execution_segment",
    "ret_fp_segment",
    "ret_pc_segment",
    "builtin_segments",
    "extra_segments",
)
_PROGRAM_KEYS = ("data", "builtins", "main", "prime")


class PieError(InvalidInput):
    """The bytes are not a readable Cairo PIE zip; the message names the member and the problem."""


@dataclass(frozen=True, slots=True, order=True)
class Relocatable:
    """A memory address (or pointer value) relative to the start of a segment."""

    segment_index: int
    offset: int

    def __add__(self, other: int) -> Relocatable:
        return Relocatable(self.segment_index, self.offset + other)

    def __str__(self) -> str:
        return f"{self.segment_index}:{self.offset}"


MaybeRelocatable = int | Relocatable


@dataclass(frozen=True, slots=True, kw_only=True)
class SegmentInfo:
    index: int
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PieProgram:
    """The stripped program: what the program hash is computed over."""

    data: tuple[int, ...]
    builtins: tuple[str, ...]
    main: int
    prime: int = STARKNET_PRIME
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Members of the program object we do not model, written back unchanged."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PieMetadata:
    program: PieProgram
    program_segment: SegmentInfo
    execution_segment: SegmentInfo
    ret_fp_segment: SegmentInfo
    ret_pc_segment: SegmentInfo
    builtin_segments: Mapping[str, SegmentInfo]
    extra_segments: tuple[SegmentInfo, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionResources:
    n_steps: int
    n_memory_holes: int = 0
    builtin_instance_counter: Mapping[str, int] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)


class PieMemory(Mapping[Relocatable, MaybeRelocatable]):
    """The PIE's memory cells, in file order (kept so that a rewrite gives the same ``memory.bin``)."""

    __slots__ = ("_cells",)

    def __init__(self, cells: Mapping[Relocatable, MaybeRelocatable] | None = None) -> None:
        self._cells: dict[Relocatable, MaybeRelocatable] = dict(cells or {})

    def __getitem__(self, key: Relocatable) -> MaybeRelocatable:
        return self._cells[key]

    def __iter__(self) -> Iterator[Relocatable]:
        return iter(self._cells)

    def __len__(self) -> int:
        return len(self._cells)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PieMemory):
            return self._cells == other._cells
        return NotImplemented

    def __hash__(self) -> int:  # pragma: no cover - a mapping is not meant to be hashed
        raise TypeError("PieMemory is not hashable")

    def __repr__(self) -> str:
        return f"PieMemory(<{len(self._cells)} cells>)"

    def get_ints(self, segment_index: int, size: int, *, what: str = "segment") -> list[int]:
        """Cells ``segment_index:0 .. size-1``; each must be present and an integer (not a pointer)."""
        values: list[int] = []
        for offset in range(size):
            address = Relocatable(segment_index, offset)
            value = self._cells.get(address)
            if value is None:
                raise PieError(f"{what}: memory cell {address} is missing (segment size {size})")
            if not isinstance(value, int):
                raise PieError(f"{what}: memory cell {address} holds a pointer ({value}), expected an integer")
            values.append(value)
        return values


@dataclass(frozen=True, slots=True, kw_only=True)
class CairoPie:
    metadata: PieMetadata
    memory: PieMemory
    additional_data: Mapping[str, Any]
    execution_resources: ExecutionResources
    version: Mapping[str, Any] = field(default_factory=lambda: {"cairo_pie": "1.1"})

    @property
    def program(self) -> PieProgram:
        return self.metadata.program

    @property
    def n_steps(self) -> int:
        return self.execution_resources.n_steps

    def output_segment(self) -> list[int]:
        """The ``output`` builtin segment: every cell present and an integer (``PieError`` otherwise)."""
        info = self.metadata.builtin_segments.get("output")
        if info is None:
            raise PieError("the PIE has no output builtin segment: the program does not use the output builtin")
        return self.memory.get_ints(info.index, info.size, what="output segment")


# --------------------------------------------------------------------------------------------------
# Reading


def read_pie(data: bytes) -> CairoPie:
    """Parse and validate a PIE zip. Raises ``PieError`` with the member at fault."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise PieError(f"not a Cairo PIE: the data ({len(data)} bytes) is not a zip archive ({exc})") from exc
    with archive:
        names = set(archive.namelist())
        missing = [m for m in MEMBERS if m not in names]
        if missing:
            raise PieError(f"not a Cairo PIE: the zip misses {', '.join(missing)} (it has {sorted(names)[:8]})")
        version = _json_object(archive, VERSION_FILE)
        metadata = _parse_metadata(_json_object(archive, METADATA_FILE))
        memory = _parse_memory(_member(archive, MEMORY_FILE))
        additional_data = _json_object(archive, ADDITIONAL_DATA_FILE)
        resources = _parse_resources(_json_object(archive, EXECUTION_RESOURCES_FILE))
    if not isinstance(version.get("cairo_pie"), str):
        raise PieError(f"{VERSION_FILE}: expected {{'cairo_pie': '<version>'}}, got {version!r:.100}")
    return CairoPie(
        version=version,
        metadata=metadata,
        memory=memory,
        additional_data=additional_data,
        execution_resources=resources,
    )


def _member(archive: zipfile.ZipFile, name: str) -> bytes:
    info = archive.getinfo(name)
    if info.file_size > MAX_MEMBER_BYTES:
        raise PieError(f"{name}: {info.file_size} bytes uncompressed is more than the {MAX_MEMBER_BYTES} allowed")
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise PieError(f"{name}: cannot be extracted from the zip (damaged archive?): {exc}") from exc


def _json_object(archive: zipfile.ZipFile, name: str) -> dict[str, Any]:
    raw = _member(archive, name)
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PieError(f"{name}: not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise PieError(f"{name}: expected a JSON object, got {type(value).__name__}")
    return value


def _int(value: Any, what: str, *, minimum: int = 0) -> int:
    """A JSON integer, or a ``0x`` hex / decimal string (cairo-lang writes felts as hex strings)."""
    if isinstance(value, bool):
        raise PieError(f"{what}: expected an integer, got {value!r}")
    if isinstance(value, int):
        result = value
    elif isinstance(value, str):
        try:
            result = int(value, 16) if value.lower().startswith(("0x", "-0x")) else int(value)
        except ValueError:
            raise PieError(f"{what}: expected an integer, got {value!r:.80}") from None
    else:
        raise PieError(f"{what}: expected an integer, got {value!r:.80}")
    if result < minimum:
        raise PieError(f"{what}: {result} is below {minimum}")
    return result


def _segment(value: Any, what: str) -> SegmentInfo:
    if not isinstance(value, dict) or "index" not in value or "size" not in value:
        raise PieError(f"{METADATA_FILE}: {what} must be an object with index and size, got {value!r:.100}")
    return SegmentInfo(index=_int(value["index"], f"{what}.index"), size=_int(value["size"], f"{what}.size"))


def _parse_metadata(raw: dict[str, Any]) -> PieMetadata:
    missing = [k for k in _METADATA_KEYS if k not in raw]
    if missing:
        raise PieError(f"{METADATA_FILE}: missing {', '.join(missing)}")
    program_raw = raw["program"]
    if not isinstance(program_raw, dict):
        raise PieError(f"{METADATA_FILE}: program must be an object")
    missing = [k for k in _PROGRAM_KEYS if k not in program_raw]
    if missing:
        raise PieError(f"{METADATA_FILE}: program misses {', '.join(missing)}")
    data = program_raw["data"]
    builtins = program_raw["builtins"]
    if not isinstance(data, list):
        raise PieError(f"{METADATA_FILE}: program.data must be a list of felts")
    if not isinstance(builtins, list) or not all(isinstance(b, str) for b in builtins):
        raise PieError(f"{METADATA_FILE}: program.builtins must be a list of names")
    prime = _int(program_raw["prime"], "program.prime", minimum=2)
    if all(type(x) is int for x in data):  # the fast path: cairo-vm writes plain integers
        words: list[int] = data
    else:
        words = [_int(x, f"program.data[{i}]") for i, x in enumerate(data)]
    if any(w >= prime or w < 0 for w in words):
        bad = next(i for i, w in enumerate(words) if w >= prime or w < 0)
        raise PieError(f"{METADATA_FILE}: program.data[{bad}] is not a field element")
    program = PieProgram(
        data=tuple(words),
        builtins=tuple(builtins),
        main=_int(program_raw["main"], "program.main"),
        prime=prime,
        extra={k: v for k, v in program_raw.items() if k not in _PROGRAM_KEYS},
    )
    builtin_segments = raw["builtin_segments"]
    if not isinstance(builtin_segments, dict):
        raise PieError(f"{METADATA_FILE}: builtin_segments must be an object")
    extra_segments = raw["extra_segments"]
    if not isinstance(extra_segments, list):
        raise PieError(f"{METADATA_FILE}: extra_segments must be a list")
    return PieMetadata(
        program=program,
        program_segment=_segment(raw["program_segment"], "program_segment"),
        execution_segment=_segment(raw["execution_segment"], "execution_segment"),
        ret_fp_segment=_segment(raw["ret_fp_segment"], "ret_fp_segment"),
        ret_pc_segment=_segment(raw["ret_pc_segment"], "ret_pc_segment"),
        builtin_segments={
            str(name): _segment(seg, f"builtin_segments.{name}") for name, seg in builtin_segments.items()
        },
        extra_segments=tuple(_segment(seg, f"extra_segments[{i}]") for i, seg in enumerate(extra_segments)),
        extra={k: v for k, v in raw.items() if k not in _METADATA_KEYS},
    )


def _parse_memory(raw: bytes) -> PieMemory:
    if len(raw) % PAIR_BYTES:
        raise PieError(
            f"{MEMORY_FILE}: truncated: {len(raw)} bytes is not a whole number of "
            f"{PAIR_BYTES}-byte (address, value) pairs"
        )
    cells: dict[Relocatable, MaybeRelocatable] = {}
    from_bytes = int.from_bytes
    view = memoryview(raw)
    for pos in range(0, len(raw), PAIR_BYTES):
        addr = from_bytes(view[pos : pos + ADDR_BYTES], "little")
        if not addr & _ADDR_FLAG:
            raise PieError(f"{MEMORY_FILE}: pair {pos // PAIR_BYTES} has an absolute address {addr}")
        address = Relocatable((addr >> OFFSET_BITS) & _SEGMENT_MASK, addr & _OFFSET_MASK)
        word = from_bytes(view[pos + ADDR_BYTES : pos + PAIR_BYTES], "little")
        value: MaybeRelocatable = (
            Relocatable((word >> OFFSET_BITS) & _SEGMENT_MASK, word & _OFFSET_MASK) if word & _VALUE_FLAG else word
        )
        previous = cells.setdefault(address, value)
        if previous != value:
            raise PieError(f"{MEMORY_FILE}: address {address} is written twice ({previous} and {value})")
    return PieMemory(cells)


def _parse_resources(raw: dict[str, Any]) -> ExecutionResources:
    if "n_steps" not in raw:
        raise PieError(f"{EXECUTION_RESOURCES_FILE}: missing n_steps")
    counter = raw.get("builtin_instance_counter", {})
    if not isinstance(counter, dict):
        raise PieError(f"{EXECUTION_RESOURCES_FILE}: builtin_instance_counter must be an object")
    known = ("n_steps", "n_memory_holes", "builtin_instance_counter")
    return ExecutionResources(
        n_steps=_int(raw["n_steps"], "n_steps"),
        n_memory_holes=_int(raw.get("n_memory_holes", 0), "n_memory_holes"),
        builtin_instance_counter={str(k): _int(v, f"builtin_instance_counter.{k}") for k, v in counter.items()},
        extra={k: v for k, v in raw.items() if k not in known},
    )


# --------------------------------------------------------------------------------------------------
# Writing


def write_pie(pie: CairoPie) -> bytes:
    """Serialise to a PIE zip (members in the usual order, deflated, felts as JSON integers)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(VERSION_FILE, _dumps(dict(pie.version)))
        archive.writestr(METADATA_FILE, _dumps(_metadata_json(pie.metadata)))
        archive.writestr(MEMORY_FILE, encode_memory(pie.memory))
        archive.writestr(ADDITIONAL_DATA_FILE, _dumps(dict(pie.additional_data)))
        archive.writestr(EXECUTION_RESOURCES_FILE, _dumps(_resources_json(pie.execution_resources)))
    return out.getvalue()


def encode_memory(memory: Mapping[Relocatable, MaybeRelocatable]) -> bytes:
    chunks: list[bytes] = []
    for address, value in memory.items():
        if address.offset > _OFFSET_MASK or address.segment_index > _SEGMENT_MASK:
            raise PieError(f"address {address} does not fit the PIE address encoding")
        chunks.append((_ADDR_FLAG | address.segment_index << OFFSET_BITS | address.offset).to_bytes(8, "little"))
        if isinstance(value, Relocatable):
            word = _VALUE_FLAG | value.segment_index << OFFSET_BITS | value.offset
        else:
            if not 0 <= value < _VALUE_FLAG:
                raise PieError(f"value at {address} does not fit 255 bits")
            word = value
        chunks.append(word.to_bytes(FIELD_BYTES, "little"))
    return b"".join(chunks)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _segment_json(segment: SegmentInfo) -> dict[str, int]:
    return {"index": segment.index, "size": segment.size}


def _metadata_json(metadata: PieMetadata) -> dict[str, Any]:
    program = metadata.program
    return {
        "program": {
            "data": list(program.data),
            "builtins": list(program.builtins),
            "main": program.main,
            "prime": program.prime,
            **program.extra,
        },
        "program_segment": _segment_json(metadata.program_segment),
        "execution_segment": _segment_json(metadata.execution_segment),
        "ret_fp_segment": _segment_json(metadata.ret_fp_segment),
        "ret_pc_segment": _segment_json(metadata.ret_pc_segment),
        "builtin_segments": {name: _segment_json(s) for name, s in metadata.builtin_segments.items()},
        "extra_segments": [_segment_json(s) for s in metadata.extra_segments],
        **metadata.extra,
    }


def _resources_json(resources: ExecutionResources) -> dict[str, Any]:
    return {
        "n_steps": resources.n_steps,
        "n_memory_holes": resources.n_memory_holes,
        "builtin_instance_counter": dict(resources.builtin_instance_counter),
        **resources.extra,
    }
