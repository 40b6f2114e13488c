"""ops/: the Grafana dashboard and the Prometheus alert rules only query what ``/metrics`` exports.

Both files are loaded, every metric name in their PromQL is extracted and matched against a real scrape
of ``/metrics`` after a short in-process devnet run; label matchers and ``by (...)`` labels are checked
against the labels the scraped series carry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from madara_orchestrator.domain.jobs import JobStatus, JobType
from tests.conftest import REPO_ROOT
from tests.helpers.pipeline import eventually, start_pipeline

DASHBOARD = REPO_ROOT / "ops" / "grafana" / "orchestrator.json"
ALERTS = REPO_ROOT / "ops" / "prometheus" / "alerts.yml"

PROMETHEUS_OWN = {"up"}
"""Series Prometheus makes itself at scrape time."""
NOT_ON_A_CLEAN_DEVNET = {
    # fees and gas exist only with an L1 (anvil or Ethereum); refusals only above the fee cap
    "orchestrator_settlement_fee_wei",
    "orchestrator_settlement_fee_per_block_wei",
    "orchestrator_settlement_gas_used",
    "orchestrator_settlement_gas_price_wei",
    # nothing fails, heals or is put off in a clean run
    "orchestrator_failed_jobs",
    "failed_job_operations",
    "healed_jobs",
}
"""Families a short devnet run without an L1 and without failures has no samples of."""

SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"), "gauge": ("",)}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
IDENT = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


# -- reading the files ----------------------------------------------------------------------------------


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    return [t["expr"] for p in panels(dashboard["panels"]) for t in p.get("targets", []) if t.get("expr")]


def alert_rules(rules_file: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in rules_file["groups"] for rule in group["rules"]]


# -- PromQL, as far as these files need ---------------------------------------------------------------


def _without_strings(expr: str) -> str:
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)


def metric_names(expr: str) -> set[str]:
    text = _without_strings(expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = GROUPING.sub(" ", text)
    names = set()
    for match in re.finditer(rf"(?<![\w.]){IDENT}", text):
        if text[match.end() :].lstrip().startswith("(") or match.group(0) in KEYWORDS:
            continue  # a function or an operator
        names.add(match.group(0))
    return names


def matchers(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, label names its selector matches on)."""
    text = _without_strings(expr)
    return [
        (m.group(1), set(re.findall(rf"({IDENT})\s*(?:=~|!~|!=|=)", m.group(2))))
        for m in re.finditer(rf"({IDENT})\s*\{{([^}}]*)\}}", text)
    ]


def grouping_labels(expr: str) -> set[str]:
    return {label.strip() for _, labels in GROUPING.findall(expr) for label in labels.split(",") if label.strip()}


def test_the_promql_reader() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, job_type) (rate(x_seconds_bucket{job_type=~"Snos.*"}[5m]))) '
        "/ 1e18 > on (job_type) y_total unless ignoring(a) z offset 5m"
    )
    assert metric_names(expr) == {"x_seconds_bucket", "y_total", "z"}
    assert matchers(expr) == [("x_seconds_bucket", {"job_type"})]
    assert grouping_labels(expr) == {"le", "job_type", "a"}


# -- the files' own shape -------------------------------------------------------------------------------


def test_the_dashboard_and_the_rules_are_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    titles = {p["title"] for p in dashboard["panels"] if p["type"] == "row"}
    rows = {"Pipeline progress", "Job outcomes and latency", "Settlement and fees", "Queues and workers", "Batching"}
    assert rows <= titles
    for panel in dashboard["panels"]:
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
        for target in panel.get("targets", []):
            assert target["refId"] and target["expr"] and target["datasource"]["uid"] == "${datasource}"

    rules = alert_rules(yaml.safe_load(ALERTS.read_text()))
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["expr"].strip() and rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"]
    covered = " ".join(names)
    for topic in ("JobStuck", "VerificationTimeout", "SettlementLag", "FeeAboveCap", "DeadLetterQueue"):
        assert topic in covered, f"no alert for {topic}"


# -- against a real scrape ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scrape(tmp_path_factory: pytest.TempPathFactory) -> str:
    import asyncio

    async def run(tmp_path: Path) -> str:
        p = await start_pipeline(tmp_path, blocks=2)
        try:

            async def settled() -> bool:
                last = await p.stack.store.get_job_by_internal_id(JobType.STATE_TRANSITION, 2)
                return last is not None and last.status == JobStatus.COMPLETED

            await eventually(settled, 40, "two blocks to settle")
            async with httpx.AsyncClient(base_url=p.api.url) as client:
                response = await client.get("/metrics")
                response.raise_for_status()
                return response.text
        finally:
            await p.close()

    return asyncio.run(run(tmp_path_factory.mktemp("ops")))


def _families(text: str) -> dict[str, tuple[str, set[str], bool]]:
    """series name → (family, label names seen, has samples)."""
    out: dict[str, tuple[str, set[str], bool]] = {}
    for family in text_string_to_metric_families(text):
        labels = {label for sample in family.samples for label in sample.labels}
        for suffix in SUFFIXES.get(family.type, ("",)):
            out[family.name + suffix] = (family.name, labels, bool(family.samples))
    return out


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_every_metric_queried_is_exported(scrape: str, source: str) -> None:
    if source == "dashboard":
        exprs = dashboard_exprs(json.loads(DASHBOARD.read_text()))
    else:
        exprs = [r["expr"] for r in alert_rules(yaml.safe_load(ALERTS.read_text()))]
    assert exprs
    exported = _families(scrape)
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        names -= PROMETHEUS_OWN
        unknown = sorted(n for n in names if n not in exported)
        assert not unknown, f"{unknown} in {expr!r} are not exported by /metrics"
        for name in names:
            family, _, has_samples = exported[name]
            assert has_samples or family in NOT_ON_A_CLEAN_DEVNET, f"{name} ({expr!r}) has no sample after a run"
        for name, used in matchers(expr):
            if name in PROMETHEUS_OWN:
                continue
            family, labels, has_samples = exported[name]
            if has_samples:
                assert used <= labels, f"{expr!r}: {name} has no label {sorted(used - labels)}"
        if all(exported[n][2] for n in names):
            available = set().union(*(exported[n][1] for n in names))
            assert grouping_labels(expr) <= available, f"{expr!r} groups by a label its series lack"
