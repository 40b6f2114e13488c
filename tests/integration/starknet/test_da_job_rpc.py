"""The DA-job encoder against mainnet vectors, with its nonce lookups answered over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from madara_orchestrator.cli.main import main
from madara_orchestrator.starknet.blob import blob_from_hex
from madara_orchestrator.starknet.da import encode_state_update_to_blobs
from madara_orchestrator.starknet.rpc import StarknetRpcClient
from madara_orchestrator.starknet.state_update import parse_state_update_json
from tests.conftest import require
from tests.helpers.jsonrpc_server import CannedStarknet, JsonRpcServer

BLOCKS = [178, 631861, 640641]


def load_nonces(path: Path) -> dict[int, int]:
    return {int(item["address"]): int(item["nonce"], 16) for item in json.loads(path.read_text())}


@pytest.mark.parametrize("block", BLOCKS)
async def test_vector_blob_is_reproduced_with_nonces_from_the_rpc(
    vectors_dir: Path,
    canned_starknet: CannedStarknet,
    jsonrpc_server: JsonRpcServer,
    rpc_client: StarknetRpcClient,
    block: int,
) -> None:
    da = vectors_dir / "da"
    for sub in ("state_update", "nonces", "blob"):
        require((da / sub).is_dir(), f"vectors da/{sub}")
    canned_starknet.nonces.update(load_nonces(da / "nonces" / f"{block}.json"))
    update = parse_state_update_json((da / "state_update" / f"{block}.json").read_text())

    blobs = await encode_state_update_to_blobs(
        update, block_number=block, nonce_source=rpc_client, starknet_version="0.13.2"
    )

    assert blobs == [blob_from_hex((da / "blob" / f"{block}.hex").read_text())]
    nonce_calls = [c for c in jsonrpc_server.calls if c["method"] == "starknet_getNonce"]
    assert {int(c["params"]["contract_address"], 16) for c in nonce_calls} == set(canned_starknet.nonces)
    assert set(canned_starknet.blocks_asked) == {block}


def test_cli_encode_looks_nonces_up_with_rpc(
    vectors_dir: Path,
    canned_starknet: CannedStarknet,
    jsonrpc_server: JsonRpcServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    da = vectors_dir / "da"
    canned_starknet.nonces.update(load_nonces(da / "nonces" / "640641.json"))
    code = main(
        [
            "blob",
            "encode",
            str(da / "state_update" / "640641.json"),
            "--starknet-version",
            "0.13.2",
            "--rpc",
            jsonrpc_server.url,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.split() == [(da / "blob" / "640641.hex").read_text().strip()]
    assert set(canned_starknet.blocks_asked) == {640641}
