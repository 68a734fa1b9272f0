"""Live analysis from the real Prometheus agrees with analysis of the incident's snapshot.

One Prometheus serves one TSDB that holds one simulated incident per fault type (their time
ranges differ). For each, the live path (catalog queries, rate(), histogram quantiles, pods,
the service-graph topology, the scenario's own logs as the log source) must rank the same
top three services as the engine does on the snapshot the simulator wrote. Both paths run
the same engine, so this tests the connectors, not the engine's accuracy.

The seeds are scenarios whose snapshot uses the Prometheus naming dialect with per-pod
series: the raw export always uses Prometheus names, so there a snapshot series and a live
series describe the same quantity (other dialects rename, rescale or roll up pods).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_server import (
    PrometheusServer,
    backfill_scenarios,
    require_binaries,
    start_prometheus,
)

from agent.cli import cli
from agent.models import Candidate, FaultType, LogRecord, Signal
from agent.pipeline import analyze
from agent.snapshot import load_snapshot, write_snapshot
from connectors.collect import Scope, collect_live
from connectors.prometheus import PrometheusSource
from connectors.settings import CollectSettings, PrometheusSettings
from evals.simulator import Scenario, simulate

SEEDS = {
    FaultType.BAD_DEPLOY: 131,
    FaultType.CODE_EXCEPTION: 49,
    FaultType.CPU_SATURATION: 54,
    FaultType.DB_POOL_EXHAUSTION: 87,
    FaultType.DEPENDENCY_OUTAGE: 17,
    FaultType.DISK_FULL: 133,
    FaultType.MEMORY_LEAK: 145,
    FaultType.NETWORK_LATENCY: 11,
    FaultType.PACKET_LOSS: 48,
}


@dataclass
class ScenarioLogs:
    """The scenario's own log lines, standing in for Elasticsearch (same LogFetch shape)."""

    lines: list[LogRecord]
    records: list[LogRecord] = field(default_factory=list)
    count_signals: list[Signal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fetch(
        self,
        services: Sequence[str],
        start: datetime,
        end: datetime,
        deadline: float | None = None,
    ) -> ScenarioLogs:
        inside = [r for r in self.lines if start <= r.timestamp <= end]
        return ScenarioLogs(self.lines, records=inside)


@dataclass
class Incidents:
    server: PrometheusServer
    scenarios: dict[FaultType, Scenario]


def _overlapping(scenarios: list[Scenario]) -> list[tuple[int, int]]:
    spans = [
        (s.seed, s.graph.namespace, s.telemetry.timeline.start, s.telemetry.timeline.end)
        for s in scenarios
    ]
    return [
        (a[0], b[0])
        for i, a in enumerate(spans)
        for b in spans[i + 1 :]
        if a[1] == b[1] and a[2] <= b[3] and b[2] <= a[3]
    ]


@pytest.fixture(scope="module")
def incidents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Incidents]:
    require_binaries("promtool", "prometheus")
    root = tmp_path_factory.mktemp("live-vs-snapshot")
    scenarios = {fault: simulate(seed) for fault, seed in SEEDS.items()}
    assert {f: s.plan.fault for f, s in scenarios.items()} == {f: f for f in scenarios}
    assert _overlapping(list(scenarios.values())) == [], "scenarios would mix in one TSDB"
    server = start_prometheus(backfill_scenarios(scenarios.values(), root / "tsdb"), root / "run")
    yield Incidents(server, scenarios)
    server.stop()


def _top(candidates: Sequence[Candidate], n: int = 3) -> list[str]:
    return [c.service for c in candidates[:n]]


@pytest.mark.integration
@pytest.mark.parametrize("fault", list(SEEDS), ids=[f.value for f in SEEDS])
def test_live_analysis_ranks_the_same_top_three_as_the_snapshot(
    incidents: Incidents, fault: FaultType
) -> None:
    scenario = incidents.scenarios[fault]
    snapshot = scenario.snapshot.model_copy(update={"ground_truth": None})
    offline = analyze(snapshot)
    timeline = scenario.telemetry.timeline
    start = datetime.fromtimestamp(timeline.start, UTC)
    incident_start = offline.window.incident_start
    scope = Scope((), incident_start, datetime.fromtimestamp(timeline.end, UTC), snapshot.alert)
    baseline = CollectSettings(baseline_minutes=(incident_start - start).total_seconds() / 60)
    source = PrometheusSource(incidents.server.url, PrometheusSettings())
    collected = collect_live(scope, source, ScenarioLogs(list(snapshot.logs)), baseline)

    live = analyze(collected.snapshot, source_failures=collected.failures)

    assert collected.failures == []
    assert collected.snapshot.topology is not None and snapshot.topology is not None
    assert {(e.caller, e.callee) for e in collected.snapshot.topology.edges} == {
        (e.caller, e.callee) for e in snapshot.topology.edges
    }
    assert live.window == offline.window
    assert set(_top(live.candidates)) == set(_top(offline.candidates)), (
        f"live {_top(live.candidates)} vs snapshot {_top(offline.candidates)}"
    )


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
