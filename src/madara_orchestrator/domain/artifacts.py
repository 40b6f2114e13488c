"""The storage key of every artifact the jobs write and read (SPEC §10): one function each, no I/O.

The keys are a data format: stored files are read back by them (and the storage cleanup tags them), so
each stays byte for byte what it has always been. ``max_blob_files`` is the chain's blobs per transaction
(``starknet.blob.MAX_BLOBS_PER_TXN``), given by the caller as the domain imports nothing else of ours.
"""

from __future__ import annotations

# --------------------------------------------------------------------------------------------------
# A SNOS batch (its index): the SNOS run, the proofs, the DA blob data of an L3 batch


def snos_cairo_pie(index: int) -> str:
    return f"{index}/cairo_pie.zip"


def snos_on_chain_data(index: int) -> str:
    return f"{index}/onchain_data.json"


def snos_output(index: int) -> str:
    return f"{index}/snos_output.json"


def snos_program_output(index: int) -> str:
    return f"{index}/program_output.txt"


def snos_proof(index: int) -> str:
    """The SNOS proof ProofCreation stores (SPEC §7.8)."""
    return f"{index}/proof.json"


def bridge_proof(index: int) -> str:
    """The bridge proof ProofRegistration stores on L3 (SPEC §7.9)."""
    return f"{index}/proof_part2.json"


def snos_blob_data(index: int) -> str:
    """The DataSubmission job's blobs, one after another (L3)."""
    return f"{index}/blob_data.txt"


def snos_run_keys(index: int) -> list[str]:
    """What the SNOS run of a batch wrote."""
    return [snos_cairo_pie(index), snos_output(index), snos_program_output(index)]


def settled_snos_batch_keys(index: int) -> list[str]:
    """The files of a SNOS batch settled on its own (L3): its SNOS run, DA blob data and proofs."""
    return [*snos_run_keys(index), snos_blob_data(index), snos_proof(index), bridge_proof(index)]


# --------------------------------------------------------------------------------------------------
# An aggregator batch (its index)


def _aggregator_artifact(index: int, name: str) -> str:
    return f"artifacts/batch/{index}/{name}"


def aggregator_proof(index: int) -> str:
    return _aggregator_artifact(index, "proof.json")


def aggregator_da_segment(index: int) -> str:
    return _aggregator_artifact(index, "da_blob.json")


def aggregator_cairo_pie(index: int) -> str:
    return _aggregator_artifact(index, "cairo_pie.zip")


def aggregator_snos_output(index: int) -> str:
    return _aggregator_artifact(index, "snos_output.json")


def aggregator_program_output(index: int) -> str:
    return _aggregator_artifact(index, "program_output.txt")


def squashed_state_update(index: int) -> str:
    """The batch's squashed state update, as JSON (SPEC §5.2)."""
    return f"state_update/batch/{index}.json"


def blob_dir(index: int) -> str:
    """The folder of the batch's blobs (``blob_file``)."""
    return f"blob/batch/{index}"


def blob_file(blob_folder: str, n: int) -> str:
    """Blob ``n`` (numbered from 1) of the batch whose blobs are in ``blob_folder``."""
    return f"{blob_folder}/{n}.txt"


def aggregator_batch_paths(index: int) -> tuple[str, str]:
    """``(squashed_state_updates_path, blob_path)`` of an aggregator batch (SPEC §5.2, §10)."""
    return squashed_state_update(index), blob_dir(index)


def aggregator_artifact_keys(index: int, *, max_blob_files: int) -> list[str]:
    """Every file of an aggregator batch; blob files ``0..max_blob_files - 1`` are candidates (SPEC
    §4.12: blobs are numbered from 1; 0 is harmless)."""
    keys = [aggregator_cairo_pie(index), aggregator_da_segment(index), aggregator_program_output(index)]
    keys += [aggregator_snos_output(index), aggregator_proof(index)]
    keys += [blob_file(blob_dir(index), n) for n in range(max_blob_files)]
    keys.append(squashed_state_update(index))
    return keys
