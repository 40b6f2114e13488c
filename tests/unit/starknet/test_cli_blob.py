"""`orchestrator blob`: encode / decode / compress / decompress through the real entry point."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from madara_orchestrator.cli.main import main
from madara_orchestrator.domain.chain import BYTES_PER_BLOB
from madara_orchestrator.starknet import kzg
from madara_orchestrator.starknet.blob import blob_from_hex
from madara_orchestrator.starknet.compression import compress
from madara_orchestrator.starknet.felt import STARKNET_PRIME
from tests.conftest import require


@pytest.fixture
def da_dir(vectors_dir: Path) -> Path:
    da = vectors_dir / "da"
    require((da / "state_update" / "178.json").is_file(), "vectors da/")
    return da


def big_update(n_entries: int) -> dict[str, Any]:
    return {
        "block_hash": "0x1",
        "old_root": "0x2",
        "new_root": "0x3",
        "state_diff": {
            "storage_diffs": [
                {
                    "address": "0x1",
                    "storage_entries": [{"key": hex(k), "value": hex(k * 7 + 1)} for k in range(n_entries)],
                }
            ],
            "nonces": [],
            "deployed_contracts": [],
            "declared_classes": [],
            "deprecated_declared_classes": [],
            "replaced_classes": [],
        },
    }


def encode_args(da: Path, block: int, *extra: str) -> list[str]:
    return [
        "blob",
        "encode",
        str(da / "state_update" / f"{block}.json"),
        "--starknet-version",
        "0.13.2",
        "--nonces",
        str(da / "nonces" / f"{block}.json"),
        *extra,
    ]


@pytest.mark.parametrize("block", [178, 631861, 640641])
def test_encode_prints_the_mainnet_blob_as_one_hex_line(
    da_dir: Path, block: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(encode_args(da_dir, block)) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 1 and len(lines[0]) == 2 * BYTES_PER_BLOB
    assert lines[0] == (da_dir / "blob" / f"{block}.hex").read_text().strip()
    assert captured.err == ""


def test_encode_raw_writes_the_blob_bytes(da_dir: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(encode_args(da_dir, 178, "--format", "raw")) == 0
    assert capsysbinary.readouterr().out == blob_from_hex((da_dir / "blob" / "178.hex").read_text())


def test_encode_out_writes_blob_files_and_prints_commitments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    update_path = tmp_path / "update.json"
    update_path.write_text(json.dumps(big_update(2500)))  # 1 + 2 + 5000 + 1 felts: two blobs
    out = tmp_path / "blobs"
    assert main(["blob", "encode", str(update_path), "--starknet-version", "0.14.2", "--out", str(out)]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["1.blob", "2.blob"]
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for i, line in enumerate(lines, start=1):
        blob = (out / f"{i}.blob").read_bytes()
        assert len(blob) == BYTES_PER_BLOB
        commitment = kzg.blob_to_commitment(blob)
        assert line == (
            f"{i}.blob commitment=0x{commitment.hex()} versioned_hash=0x{kzg.versioned_hash(commitment).hex()}"
        )


def test_decode_prints_felts_and_the_state_diff(da_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["blob", "decode", str(da_dir / "blob" / "178.hex")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["encoding"] == "legacy"
    assert result["felts"][:4] == ["0x5", "0x1", "0x1", "0xa8"]
    contracts = result["state_diff"]["contracts"]
    assert len(contracts) == 5
    update = json.loads((da_dir / "state_update" / "178.json").read_text())
    declared = update["state_diff"]["declared_classes"][0]
    assert result["state_diff"]["declared_classes"] == [
        {
            "class_hash": hex(int(declared["class_hash"], 16)),
            "compiled_class_hash": hex(int(declared["compiled_class_hash"], 16)),
        }
    ]


def test_decode_reads_raw_blob_files_of_a_multi_blob_encoding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    update_path = tmp_path / "update.json"
    update_path.write_text(json.dumps(big_update(2500)))
    out = tmp_path / "blobs"
    assert main(["blob", "encode", str(update_path), "--starknet-version", "0.14.2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["blob", "decode", str(out / "1.blob"), str(out / "2.blob")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["encoding"] == "v0.13.3"
    (contract,) = result["state_diff"]["contracts"]
    assert len(contract["storage"]) == 2500 and contract["storage"][2499] == {
        "key": "0x9c3",
        "value": hex(2499 * 7 + 1),
    }


def test_decode_recognises_a_compressed_state_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from madara_orchestrator.starknet.blob import felts_to_blobs

    felts = compress([2, 0x5000, 1 * 4 + 2, 0x7, 0x8, 0x6000, 3, 0xC1, 0])
    path = tmp_path / "c.blob"
    path.write_bytes(felts_to_blobs(felts)[0])
    assert main(["blob", "decode", str(path), "--starknet-version", "0.13.3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["encoding"] == "compressed"
    assert [c["address"] for c in result["state_diff"]["contracts"]] == ["0x5000", "0x6000"]
    assert result["state_diff"]["contracts"][1]["class_hash"] == "0xc1"


def test_compress_and_decompress_a_json_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "felts.json"
    path.write_text(json.dumps(["0x5", 1, "17", "0x5", hex(2**200)]))
    assert main(["blob", "compress", str(path)]) == 0
    compressed = json.loads(capsys.readouterr().out)
    assert [int(x, 16) for x in compressed] == compress([5, 1, 17, 5, 2**200])
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(compressed)))
    assert main(["blob", "decompress"]) == 0
    assert json.loads(capsys.readouterr().out) == ["0x5", "0x1", "0x11", "0x5", hex(2**200)]


# --------------------------------------------------------------------------------------------------
# Bad input: exit code 2, one clear message, nothing on stdout


def run_failing(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
    return captured.err


def write(tmp_path: Path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_text(content)
    return str(path)


def test_malformed_json_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "bad.json", '{"block_hash": "0x1", ')
    err = run_failing(["blob", "encode", path, "--starknet-version", "0.13.2"], capsys)
    assert f"{path}: malformed JSON" in err


def test_a_value_outside_the_field_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    update = big_update(1)
    update["state_diff"]["storage_diffs"][0]["storage_entries"][0]["value"] = hex(STARKNET_PRIME + 5)
    path = write(tmp_path, "u.json", json.dumps(update))
    err = run_failing(["blob", "encode", path, "--starknet-version", "0.13.2"], capsys)
    assert "storage_diffs[0].storage_entries[0].value" in err and "outside the Starknet field" in err

    felts = write(tmp_path, "felts.json", json.dumps(["0x1", hex(STARKNET_PRIME)]))
    err = run_failing(["blob", "compress", felts], capsys)
    assert "[1]: value" in err and "outside the Starknet field" in err


def test_a_pending_block_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    update = big_update(1)
    del update["block_hash"]
    path = write(tmp_path, "pending.json", json.dumps(update))
    err = run_failing(["blob", "encode", path, "--starknet-version", "0.14.2"], capsys)
    assert "pending or pre-confirmed" in err


def test_more_data_than_the_allowed_blobs_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "big.json", json.dumps(big_update(2500)))
    out = tmp_path / "out"
    err = run_failing(
        ["blob", "encode", path, "--starknet-version", "0.14.2", "--max-blobs", "1", "--out", str(out)], capsys
    )
    assert "need 2 blobs but at most 1 are allowed" in err
    assert not out.exists()
    # the default is the 6 blobs of one transaction
    path = write(tmp_path, "huge.json", json.dumps(big_update(6 * 2048)))
    err = run_failing(["blob", "encode", path, "--starknet-version", "0.14.2"], capsys)
    assert "need 7 blobs but at most 6 are allowed" in err


def test_a_needed_nonce_without_a_source_is_refused(da_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(da_dir / "state_update" / "631861.json")
    err = run_failing(["blob", "encode", path, "--starknet-version", "0.13.2"], capsys)
    assert "is not in the state diff; give a nonce source (--nonces FILE or --rpc URL)" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["blob", "encode", "/nonexistent/u.json", "--starknet-version", "0.13.2"], "cannot read /nonexistent/u.json"),
        (["blob", "encode", "/nonexistent/u.json", "--starknet-version", "zero"], "'zero' is not a Starknet version"),
        (["blob", "decode", "/nonexistent/1.blob"], "cannot read /nonexistent/1.blob"),
        (["blob", "decompress", "/nonexistent/f.json"], "cannot read"),
    ],
)
def test_missing_files_and_bad_versions_are_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in run_failing(argv, capsys)


def test_bad_blob_files_and_bad_compressed_data_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    short = write(tmp_path, "short.hex", "00" * 1000)
    assert "262144 hex characters" in run_failing(["blob", "decode", short], capsys)
    junk = write(tmp_path, "junk.hex", "zz" * BYTES_PER_BLOB)
    assert "not valid hexadecimal" in run_failing(["blob", "decode", junk], capsys)
    not_list = write(tmp_path, "obj.json", '{"a": 1}')
    assert "expected a JSON list of felts" in run_failing(["blob", "decompress", not_list], capsys)
    bad = write(tmp_path, "bad.json", json.dumps(["0x1"]))
    assert "unsupported compression version 1" in run_failing(["blob", "decompress", bad], capsys)
    nonces = write(tmp_path, "nonces.json", json.dumps([{"address": "1"}]))
    update = write(tmp_path, "u.json", json.dumps(big_update(1)))
    err = run_failing(["blob", "encode", update, "--starknet-version", "0.13.2", "--nonces", nonces], capsys)
    assert "[0]: expected an object with 'address' and 'nonce'" in err
