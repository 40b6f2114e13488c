"""An allowed unknown Starknet version (``--allow-starknet-versions``) is encoded exactly as the nearest lower
known version (``domain.batching.encoded_as``): the batch path (aliasing, DA words, compression) and the DA
job's encoder give the same felts for both, on a devnet range that has aliases, nonces and declarations."""

from __future__ import annotations

import pytest

from madara_orchestrator.devnet.sequencer import DevnetSequencer
from madara_orchestrator.domain.batching import encoded_as
from madara_orchestrator.starknet.aliases import compress_state_update
from madara_orchestrator.starknet.da import encode_state_update_for_da, state_update_to_felts
from madara_orchestrator.starknet.squash import squash_state_updates
from madara_orchestrator.starknet.state_update import StateUpdate, parse_state_update
from tests.helpers.batching import ChainRpc, make_chain

UNKNOWN = ["0.14.3", "0.99.0", "1.0.0", "0.13.3.1", "0.13.6", "0.13.1", "0.12.0"]


class ChainNonces:
    def __init__(self, sequencer: DevnetSequencer) -> None:
        self.sequencer = sequencer

    async def get_nonce(self, block_number: int, address: int) -> int:
        return int(self.sequencer.call("starknet_getNonce", [{"block_number": block_number}, hex(address)]), 16)


@pytest.fixture(scope="module")
def setup() -> tuple[DevnetSequencer, ChainRpc]:
    chain = make_chain([20] * 6)
    return DevnetSequencer(chain), ChainRpc(chain)


async def squashed(sequencer: DevnetSequencer, rpc: ChainRpc) -> StateUpdate:
    updates = [
        parse_state_update(sequencer.call("starknet_getStateUpdate", {"block_id": {"block_number": b}}))
        for b in range(2, 7)
    ]
    return await squash_state_updates(updates, pre_range_block=1, rpc=rpc)


@pytest.mark.parametrize("version", UNKNOWN)
async def test_an_unknown_version_encodes_as_the_nearest_lower_known_one(
    version: str, setup: tuple[DevnetSequencer, ChainRpc]
) -> None:
    sequencer, rpc = setup
    known = encoded_as(version)
    assert known is not None and known != version
    update = await squashed(sequencer, rpc)
    assert await compress_state_update(update, starknet_version=version, reference_block=6, rpc=rpc) == (
        await compress_state_update(update, starknet_version=known, reference_block=6, rpc=rpc)
    )
    assert state_update_to_felts(update, starknet_version=version) == state_update_to_felts(
        update, starknet_version=known
    )
    nonces = ChainNonces(sequencer)
    assert await encode_state_update_for_da(
        update, block_number=6, nonce_source=nonces, starknet_version=version
    ) == await encode_state_update_for_da(update, block_number=6, nonce_source=nonces, starknet_version=known)


async def test_the_encodings_differ_where_the_known_versions_do(setup: tuple[DevnetSequencer, ChainRpc]) -> None:
    """The comparison above is not vacuous: 0.13.2, 0.13.3 and 0.13.4 encode this range three ways."""
    sequencer, rpc = setup
    update = await squashed(sequencer, rpc)
    felts = [
        await compress_state_update(update, starknet_version=v, reference_block=6, rpc=rpc)
        for v in ("0.13.2", "0.13.3", "0.13.4")
    ]
    assert len({tuple(f) for f in felts}) == 3
