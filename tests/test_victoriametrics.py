"""The Prometheus connector against the real VictoriaMetrics: one simulated incident loaded
into VictoriaMetrics and into Prometheus; the live analysis through connectors/prometheus.py
finds the same on both."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from prometheus_server import PrometheusServer, require_binaries, start_prometheus
from victoriametrics_server import VictoriaMetricsServer, import_openmetrics, start_victoriametrics

from agent.cli_sources import scenario_openmetrics
from agent.engine.pipeline import analyze
from agent.models import Analysis
from connectors.collect import Collected, Scope, collect_live
from connectors.prometheus import PrometheusSource
from connectors.promtool import backfill
from connectors.settings import CollectSettings, PrometheusSettings
from evals.simulator import Scenario, simulate

SEED = 145  # a memory leak in shipping-service, 8 services at 10 s: small and clear

pytestmark = pytest.mark.integration


@dataclass
class Backends:
    scenario: Scenario
    prometheus: PrometheusServer
    victoriametrics: VictoriaMetricsServer

    def collect(self, url: str) -> Collected:
        timeline = self.scenario.telemetry.timeline
        start = datetime.fromtimestamp(timeline.start, UTC)
        end = datetime.fromtimestamp(timeline.end, UTC)
        scope = Scope((), start, end, self.scenario.snapshot.alert)
        source = PrometheusSource(url, PrometheusSettings())
        return collect_live(scope, source, None, CollectSettings())


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    require_binaries("promtool", "prometheus", "victoria-metrics")
    root = tmp_path_factory.mktemp("victoriametrics")
    scenario = simulate(SEED)
    openmetrics = scenario_openmetrics(scenario, root / "metrics.om")
    backfill(openmetrics, root / "tsdb")
    prometheus = start_prometheus(root / "tsdb", root / "prometheus")
    victoriametrics = start_victoriametrics(root / "vm")
    try:
        assert import_openmetrics(victoriametrics, openmetrics) > 10_000
        yield Backends(scenario, prometheus, victoriametrics)
    finally:
        prometheus.stop()
        victoriametrics.stop()


@pytest.fixture(scope="module")
def analyses(backends: Backends) -> dict[str, tuple[Collected, Analysis]]:
    found = {}
    for name, url in (
        ("prometheus", backends.prometheus.url),
        ("victoriametrics", backends.victoriametrics.url),
    ):
        collected = backends.collect(url)
        assert collected.failures == [], (name, collected.failures)
        found[name] = (collected, analyze(collected.snapshot))
    return found


def test_the_same_series_and_call_graph_come_back(
    analyses: dict[str, tuple[Collected, Analysis]],
) -> None:
    (prom, _), (vm, _) = analyses["prometheus"], analyses["victoriametrics"]
    series = {(s.service, s.name, s.pod) for s in prom.snapshot.signals}
    assert len(series) > 50
    assert {(s.service, s.name, s.pod) for s in vm.snapshot.signals} == series
    assert prom.notes == vm.notes  # the scrape interval measured alike, the same step
    topology = prom.snapshot.topology
    assert topology is not None and vm.snapshot.topology is not None
    assert sorted(map(str, vm.snapshot.topology.edges)) == sorted(map(str, topology.edges))


def test_the_analysis_finds_the_same_root_cause(
    backends: Backends, analyses: dict[str, tuple[Collected, Analysis]]
) -> None:
    (_, prom), (_, vm) = analyses["prometheus"], analyses["victoriametrics"]
    truth = backends.scenario.snapshot.ground_truth
    assert truth is not None and prom.root_cause is not None and vm.root_cause is not None
    assert vm.root_cause.service == prom.root_cause.service == truth.service
    assert vm.root_cause.fault_type == prom.root_cause.fault_type
    leaders = [(c.service, c.fault_type) for c in prom.candidates[:3]]
    assert [(c.service, c.fault_type) for c in vm.candidates[:3]] == leaders
    # VictoriaMetrics' rate() does not extrapolate to the window's edges as Prometheus'
    # does, so scores differ a little; the verdict does not.
    for ours, theirs in zip(vm.candidates[:3], prom.candidates[:3], strict=True):
        assert ours.score == pytest.approx(theirs.score, rel=0.05)
    assert vm.confidence == pytest.approx(prom.confidence, abs=0.05)
    assert {e.pattern for e in vm.evidence} == {e.pattern for e in prom.evidence}


def test_check_sources_reports_the_same_catalog_rows(backends: Backends) -> None:
    at = datetime.fromtimestamp(backends.scenario.telemetry.timeline.end, UTC)
    rows = {}
    for url in (backends.prometheus.url, backends.victoriametrics.url):
        rows[url] = PrometheusSource(url, PrometheusSettings()).check(at)
    prom, vm = rows[backends.prometheus.url], rows[backends.victoriametrics.url]
    assert [r.error for r in vm] == [None] * len(vm)
    assert [(r.name, r.series, r.services) for r in vm] == [
        (r.name, r.series, r.services) for r in prom
    ]
    assert sum(r.series for r in vm) > 20
