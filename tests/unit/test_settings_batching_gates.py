"""The batching gates' settings: ``--allow-starknet-versions`` and ``--replay-bounds-rpc-url`` (SPEC §16),
validated in one line each and carried to the batching configuration."""

from __future__ import annotations

import argparse

import pytest

from madara_orchestrator.cli.compose import runtime_config
from madara_orchestrator.cli.settings import RUN_OPTIONS, add_options, load_run_settings
from madara_orchestrator.domain.errors import ConfigError

P = "MADARA_ORCHESTRATOR_"
GOOD = {
    P + "MADARA_RPC_URL": "http://127.0.0.1:9944",
    P + "PROVER": "devnet",
    P + "SETTLE_ON_DEVNET": "true",
    P + "SNOS_RUNNER": "devnet",
    P + "AGGREGATOR_RUNNER": "devnet",
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_options(parser, RUN_OPTIONS)
    return parser.parse_args(argv)


def test_by_default_only_the_known_versions_are_batched_and_no_reference_is_asked() -> None:
    settings = load_run_settings(parse([]), GOOD)
    assert settings.replay_bounds_rpc_url is None
    versions = runtime_config(settings).batching.starknet_versions
    assert versions.allowed == () and versions.admits("0.14.2") and not versions.admits("0.14.3")


def test_allowed_versions_reach_batching() -> None:
    settings = load_run_settings(parse(["--allow-starknet-versions", "0.14.3,0.99.0"]), GOOD)
    versions = runtime_config(settings).batching.starknet_versions
    assert versions.allowed == ("0.14.3", "0.99.0") and versions.admits("0.99.0")
    settings = load_run_settings(parse([]), {**GOOD, P + "ALLOW_STARKNET_VERSIONS": "0.15.0"})
    assert runtime_config(settings).batching.starknet_versions.admits("0.15.0")


def test_something_that_is_not_a_version_is_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        load_run_settings(parse(["--allow-starknet-versions", "0.14.3,next"]), GOOD)
    assert caught.value.problems == [
        "--allow-starknet-versions: 'next' is not a Starknet version (expected e.g. 0.14.3)"
    ]


def test_the_reference_url_is_checked_and_never_shown_whole() -> None:
    with pytest.raises(ConfigError) as caught:
        load_run_settings(parse(["--replay-bounds-rpc-url", "node.example:9944"]), GOOD)
    assert caught.value.problems == [
        "--replay-bounds-rpc-url must be an http:// or https:// URL with a host, got 'node.example:9944'"
    ]
    url = "https://user:pw@node.example/v3/0123456789abcdef0123?apikey=k3y-s3cret"
    settings = load_run_settings(parse([]), {**GOOD, P + "REPLAY_BOUNDS_RPC_URL": url})
    assert settings.replay_bounds_rpc_url == url
    assert settings.describe()["replay_bounds_rpc_url"] == "https://node.example"
    masked = settings.secret_mask()("the key k3y-s3cret, the path 0123456789abcdef0123, the password pw")
    assert "k3y-s3cret" not in masked and "0123456789abcdef0123" not in masked
