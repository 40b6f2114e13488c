"""The storage keys of the artifacts (SPEC §10) are a data format: stored files are read back by them."""

from madara_orchestrator.domain.artifacts import (
    SETTLED_SNOS_BATCH_FILES,
    SNOS_RUN_FILES,
    AggregatorFile,
    SnosFile,
    aggregator_artifact_keys,
    aggregator_batch_paths,
    aggregator_key,
    blob_file,
    snos_key,
)
from madara_orchestrator.engine.cleanup import MAX_BLOB_FILES


def test_the_keys_of_a_snos_batch() -> None:
    assert snos_key(7, SnosFile.CAIRO_PIE) == "7/cairo_pie.zip"
    assert snos_key(7, SnosFile.ON_CHAIN_DATA) == "7/onchain_data.json"
    assert snos_key(7, SnosFile.SNOS_OUTPUT) == "7/snos_output.json"
    assert snos_key(7, SnosFile.PROGRAM_OUTPUT) == "7/program_output.txt"
    assert snos_key(7, SnosFile.PROOF) == "7/proof.json"
    assert snos_key(7, SnosFile.BRIDGE_PROOF) == "7/proof_part2.json"
    assert snos_key(7, SnosFile.BLOB_DATA) == "7/blob_data.txt"
    assert [snos_key(7, f) for f in SNOS_RUN_FILES] == ["7/cairo_pie.zip", "7/snos_output.json", "7/program_output.txt"]
    assert [snos_key(7, f) for f in SETTLED_SNOS_BATCH_FILES] == [
        "7/cairo_pie.zip",
        "7/snos_output.json",
        "7/program_output.txt",
        "7/blob_data.txt",
        "7/proof.json",
        "7/proof_part2.json",
    ]


def test_the_keys_of_an_aggregator_batch() -> None:
    assert aggregator_key(3, AggregatorFile.PROOF) == "artifacts/batch/3/proof.json"
    assert aggregator_key(3, AggregatorFile.DA_SEGMENT) == "artifacts/batch/3/da_blob.json"
    assert aggregator_key(3, AggregatorFile.CAIRO_PIE) == "artifacts/batch/3/cairo_pie.zip"
    assert aggregator_key(3, AggregatorFile.SNOS_OUTPUT) == "artifacts/batch/3/snos_output.json"
    assert aggregator_key(3, AggregatorFile.PROGRAM_OUTPUT) == "artifacts/batch/3/program_output.txt"
    assert aggregator_batch_paths(3) == ("state_update/batch/3.json", "blob/batch/3")
    assert blob_file("blob/batch/3", 1) == "blob/batch/3/1.txt"
    assert MAX_BLOB_FILES == 7
    assert aggregator_artifact_keys(3, max_blob_files=MAX_BLOB_FILES) == [
        "artifacts/batch/3/cairo_pie.zip",
        "artifacts/batch/3/da_blob.json",
        "artifacts/batch/3/program_output.txt",
        "artifacts/batch/3/snos_output.json",
        "artifacts/batch/3/proof.json",
        *(f"blob/batch/3/{n}.txt" for n in range(7)),
        "state_update/batch/3.json",
    ]
