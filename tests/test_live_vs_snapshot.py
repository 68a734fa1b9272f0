"""Live analysis from the real Prometheus is the analysis of the incident's snapshot.

One Prometheus serves one TSDB that holds one simulated incident per fault type (their time
ranges differ). Each is a scenario the simulator writes as ``rca record`` would record it
(``evals/simulator/recorded.py``): the default catalog's signals with the values PromQL
computes from the raw export (``irate`` over the plan's window, ``histogram_quantile`` inside
the export's buckets, gauges stale where a scrape was missed or a pod went). So the live
path (catalog queries, pods, the service-graph topology, the scenario's own logs as the log
source) must collect without failures exactly the snapshot's signals and call graph, and the
engine must rank the same candidates with the same scores. Any drift between the emulation
and the server shows here first; ``evals.live_agreement`` measures it over a seed range
(docs/benchmarks.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_server import (
    PrometheusServer,
    require_binaries,
    start_prometheus,
)

from agent.cli import cli
from agent.models import Analysis, FaultType, Signal
from agent.snapshot import load_snapshot, write_snapshot
from connectors.collect import Scope, collect_live
from connectors.prometheus import PrometheusSource
from connectors.settings import CollectSettings, PrometheusSettings
from evals.bench_sources import backfill_scenarios
from evals.live_agreement import analyze_both, compare, overlapping, same_quantities
from evals.simulator import Scenario, simulate

SEEDS = {
    FaultType.BAD_DEPLOY: 95,
    FaultType.CODE_EXCEPTION: 58,
    FaultType.CPU_SATURATION: 9,
    FaultType.DB_POOL_EXHAUSTION: 33,
    FaultType.DEPENDENCY_OUTAGE: 215,
    FaultType.DISK_FULL: 52,
    FaultType.MEMORY_LEAK: 1,
    FaultType.NETWORK_LATENCY: 11,
    FaultType.PACKET_LOSS: 12,
}


@dataclass
class Incidents:
    server: PrometheusServer
    scenarios: dict[FaultType, Scenario]


@pytest.fixture(scope="module")
def incidents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Incidents]:
    require_binaries("promtool", "prometheus")
    root = tmp_path_factory.mktemp("live-vs-snapshot")
    scenarios = {fault: simulate(seed) for fault, seed in SEEDS.items()}
    assert {f: s.plan.fault for f, s in scenarios.items()} == {f: f for f in scenarios}
    assert all(same_quantities(s) for s in scenarios.values())
    assert overlapping(scenarios.values()) == [], "scenarios would mix in one TSDB"
    server = start_prometheus(backfill_scenarios(scenarios.values(), root / "tsdb"), root / "run")
    yield Incidents(server, scenarios)
    server.stop()


def _unlinked(signals: list[Signal]) -> list[Signal]:
    """Signals without their graph links (a live link names the server; a snapshot has none)."""
    return [s.model_copy(update={"link": None}) for s in signals]


def _ranking(analysis: Analysis) -> list[tuple[str, str, float]]:
    return [(c.service, c.fault_type.value, c.score) for c in analysis.candidates]


@pytest.mark.integration
@pytest.mark.parametrize("fault", list(SEEDS), ids=[f.value for f in SEEDS])
def test_live_collection_is_the_snapshot_and_ranks_alike(
    incidents: Incidents, fault: FaultType
) -> None:
    scenario = incidents.scenarios[fault]
    offline, live, collected = analyze_both(scenario, incidents.server.url)
    snapshot = scenario.snapshot

    assert collected.failures == []
    assert _unlinked(collected.snapshot.signals) == _unlinked(snapshot.signals)
    assert collected.snapshot.topology == snapshot.topology
    assert live.window == offline.window
    assert _ranking(live) == _ranking(offline)
    assert compare(scenario, offline, live).same_top3


# --- rca record, then rca analyze DIR: the same analysis as rca analyze --alert -------------


def _comparable(analysis_json: str) -> dict[str, object]:
    data = json.loads(analysis_json)
    return {k: data[k] for k in ("id", "window", "candidates", "root_cause", "evidence", "summary")}


@pytest.mark.integration
def test_record_then_replay_gives_the_live_analysis(
    incidents: Incidents, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = incidents.scenarios[FaultType.MEMORY_LEAK]
    assert scenario.snapshot.alert is not None
    alert = tmp_path / "alert.json"
    alert.write_text(scenario.snapshot.alert.model_dump_json())
    end = datetime.fromtimestamp(scenario.telemetry.timeline.end, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    monkeypatch.setenv("RCA_PROMETHEUS_URL", incidents.server.url)
    runner = CliRunner()
    window = ["--alert", str(alert), "--end", end]

    live = runner.invoke(cli, ["analyze", *window, "--json"], catch_exceptions=False)
    recorded = runner.invoke(cli, ["record", *window, "--out", str(tmp_path / "rec")])
    replay = runner.invoke(cli, ["analyze", str(tmp_path / "rec"), "--json"])

    assert live.exit_code == 0, live.output
    assert recorded.exit_code == 0, recorded.output
    assert "replay with: rca analyze" in recorded.output
    assert replay.exit_code == 0, replay.output
    assert _comparable(replay.output) == _comparable(live.output)
    assert json.loads(live.output)["candidates"], "the live analysis found nothing to rank"


@pytest.mark.integration
def test_a_recorded_snapshot_reads_back_unchanged(incidents: Incidents, tmp_path: Path) -> None:
    scenario = incidents.scenarios[FaultType.DISK_FULL]
    timeline = scenario.telemetry.timeline
    scope = Scope(
        (),
        datetime.fromtimestamp((timeline.start + timeline.end) / 2, UTC),
        datetime.fromtimestamp(timeline.end, UTC),
        scenario.snapshot.alert,
    )
    source = PrometheusSource(incidents.server.url, PrometheusSettings())
    collected = collect_live(scope, source, None, CollectSettings())
    written = load_snapshot(write_snapshot(collected.snapshot, tmp_path / "rec"))
    assert written.signals == collected.snapshot.signals
    assert written.topology == collected.snapshot.topology
    assert written.window() == collected.snapshot.window()
