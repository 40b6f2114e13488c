"""Each AWS session reads the SDK's data files through the process's one loader, and keeps its own credentials
(backends/aws_client.py ``new_session``)."""

from __future__ import annotations

import pytest

from madara_orchestrator.backends.aws_client import Aws, new_session


def test_sessions_share_the_loader_and_its_search_paths_do_not_grow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    first, second = new_session(), new_session()
    loader = first._session.get_component("data_loader")
    assert second._session.get_component("data_loader") is loader
    paths = list(loader.search_paths)
    assert len(paths) == len(set(paths))
    new_session()
    assert list(loader.search_paths) == paths
    # What the shared files give: the endpoints and a service model, as a fresh session reads them.
    assert Aws().client("s3").meta.region_name == "eu-west-1"


def test_credentials_stay_each_session_s_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "first-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "first-secret")
    first = new_session()
    assert first.get_credentials().access_key == "first-key-id"  # resolved when first asked, then kept
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "second-key-id")
    second = new_session()
    assert second.get_credentials().access_key == "second-key-id"
    assert first.get_credentials().access_key == "first-key-id"
