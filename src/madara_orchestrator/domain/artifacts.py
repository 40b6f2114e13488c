"""The storage key of every artifact the jobs write and read (SPEC §10): pure functions, no I/O.

The keys are a data format: stored files are read back by them (and the storage cleanup tags them), so
each stays byte for byte what it has always been.
"""

from __future__ import annotations

import enum


class SnosFile(enum.StrEnum):
    """The files of a SNOS batch, at ``<index>/<file>`` (``snos_key``)."""

    CAIRO_PIE = "cairo_pie.zip"
    ON_CHAIN_DATA = "onchain_data.json"
    SNOS_OUTPUT = "snos_output.json"
    PROGRAM_OUTPUT = "program_output.txt"
    PROOF = "proof.json"
    """The SNOS proof ProofCreation stores (SPEC §7.8)."""
    BRIDGE_PROOF = "proof_part2.json"
    """The bridge proof ProofRegistration stores on L3 (SPEC §7.9)."""
    BLOB_DATA = "blob_data.txt"
    """The DataSubmission job's blobs, one after another (L3)."""


SNOS_RUN_FILES = (SnosFile.CAIRO_PIE, SnosFile.SNOS_OUTPUT, SnosFile.PROGRAM_OUTPUT)
"""What the SNOS run of a batch writes."""
SETTLED_SNOS_BATCH_FILES = (*SNOS_RUN_FILES, SnosFile.BLOB_DATA, SnosFile.PROOF, SnosFile.BRIDGE_PROOF)
"""The files of a SNOS batch settled on its own (L3): its SNOS run, DA blob data and proofs."""


class AggregatorFile(enum.StrEnum):
    """The files of an aggregator batch, at ``artifacts/batch/<index>/<file>`` (``aggregator_key``)."""

    CAIRO_PIE = "cairo_pie.zip"
    DA_SEGMENT = "da_blob.json"
    PROGRAM_OUTPUT = "program_output.txt"
    SNOS_OUTPUT = "snos_output.json"
    PROOF = "proof.json"


def snos_key(index: int, file: SnosFile) -> str:
    return f"{index}/{file.value}"


def aggregator_key(index: int, file: AggregatorFile) -> str:
    return f"artifacts/batch/{index}/{file.value}"


def aggregator_batch_paths(index: int) -> tuple[str, str]:
    """``(squashed_state_updates_path, blob_path)`` of an aggregator batch (SPEC §5.2, §10): its squashed
    state update as JSON, and the folder of its blobs (``blob_file``)."""
    return f"state_update/batch/{index}.json", f"blob/batch/{index}"


def blob_file(blob_path: str, n: int) -> str:
    """Blob ``n`` (numbered from 1) of the aggregator batch whose blobs are in ``blob_path``."""
    return f"{blob_path}/{n}.txt"


def aggregator_artifact_keys(index: int, *, max_blob_files: int) -> list[str]:
    """Every file of an aggregator batch; blob files ``0..max_blob_files - 1`` are candidates (SPEC
    §4.12: blobs are numbered from 1; 0 is harmless)."""
    state_update_path, blob_path = aggregator_batch_paths(index)
    keys = [aggregator_key(index, file) for file in AggregatorFile]
    keys += [blob_file(blob_path, n) for n in range(max_blob_files)]
    keys.append(state_update_path)
    return keys
