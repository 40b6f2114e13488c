"""The storage keys of the artifacts (SPEC §10) are a data format: stored files are read back by them."""

from madara_orchestrator.domain import artifacts
from madara_orchestrator.engine.cleanup import MAX_BLOB_FILES


def test_the_keys_of_a_snos_batch() -> None:
    assert artifacts.snos_cairo_pie(7) == "7/cairo_pie.zip"
    assert artifacts.snos_on_chain_data(7) == "7/onchain_data.json"
    assert artifacts.snos_output(7) == "7/snos_output.json"
    assert artifacts.snos_program_output(7) == "7/program_output.txt"
    assert artifacts.snos_proof(7) == "7/proof.json"
    assert artifacts.bridge_proof(7) == "7/proof_part2.json"
    assert artifacts.snos_blob_data(7) == "7/blob_data.txt"
    assert artifacts.snos_run_keys(7) == ["7/cairo_pie.zip", "7/snos_output.json", "7/program_output.txt"]
    assert artifacts.settled_snos_batch_keys(7) == [
        "7/cairo_pie.zip",
        "7/snos_output.json",
        "7/program_output.txt",
        "7/blob_data.txt",
        "7/proof.json",
        "7/proof_part2.json",
    ]


def test_the_keys_of_an_aggregator_batch() -> None:
    assert artifacts.aggregator_proof(3) == "artifacts/batch/3/proof.json"
    assert artifacts.aggregator_da_segment(3) == "artifacts/batch/3/da_blob.json"
    assert artifacts.aggregator_cairo_pie(3) == "artifacts/batch/3/cairo_pie.zip"
    assert artifacts.aggregator_snos_output(3) == "artifacts/batch/3/snos_output.json"
    assert artifacts.aggregator_program_output(3) == "artifacts/batch/3/program_output.txt"
    assert artifacts.aggregator_batch_paths(3) == ("state_update/batch/3.json", "blob/batch/3")
    assert artifacts.blob_file("blob/batch/3", 1) == "blob/batch/3/1.txt"
    assert MAX_BLOB_FILES == 7
    assert artifacts.aggregator_artifact_keys(3, max_blob_files=MAX_BLOB_FILES) == [
        "artifacts/batch/3/cairo_pie.zip",
        "artifacts/batch/3/da_blob.json",
        "artifacts/batch/3/program_output.txt",
        "artifacts/batch/3/snos_output.json",
        "artifacts/batch/3/proof.json",
        *(f"blob/batch/3/{n}.txt" for n in range(7)),
        "state_update/batch/3.json",
    ]
