"""The incident simulator: determinism, topologies, every fault type, propagation, realism knobs,
and the raw OpenMetrics / ECS exports."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from agent.errors import UsageError
from agent.models import FaultType
from agent.snapshot import load_snapshot
from evals.simulator import Scenario, simulate, write_scenario
from evals.simulator.dialects import choose_naming
from evals.simulator.plan import SIMULATED_FAULTS, plan_fault
from evals.simulator.scenario import Incident, build_graph, choose_timeline, fault_for_seed, unfold
from evals.simulator.shops import shop_graph
from evals.simulator.topology import ServiceGraph, random_graph

SMALL = 8  # services: enough for callers, quick to simulate


@pytest.fixture(scope="module")
def scenarios() -> list[Scenario]:
    """A spread of default scenarios (shop and random graphs, every dialect)."""
    return [simulate(seed) for seed in range(8)]


def _is_dag(graph: ServiceGraph) -> bool:
    return len(graph.caller_first_order()) == len(graph.services)


# --- determinism ---------------------------------------------------------------------------


def test_same_seed_gives_the_same_snapshot() -> None:
    first, again = simulate(7), simulate(7)
    assert first.snapshot.model_dump_json() == again.snapshot.model_dump_json()
    assert first.snapshot.meta.created_at == again.snapshot.meta.created_at


def test_different_seeds_give_different_snapshots() -> None:
    assert simulate(7).snapshot.model_dump_json() != simulate(8).snapshot.model_dump_json()


# --- topologies ----------------------------------------------------------------------------


def test_shop_graphs_have_at_least_eleven_services_and_one_entry() -> None:
    for seed in range(20):
        graph = shop_graph(np.random.default_rng(seed))
        assert len(graph.services) >= 11
        assert _is_dag(graph)
        assert [s.name for s in graph.services if s.tier == "entry"] in (
            ["frontend"],
            ["front-end"],
        )
        assert any(s.is_datastore for s in graph.services)


@pytest.mark.parametrize("size", [5, 6, 17, 60])
def test_random_graphs_have_exactly_the_requested_size(size: int) -> None:
    for seed in range(5):
        graph = random_graph(np.random.default_rng(seed), size)
        names = [s.name for s in graph.services]
        assert len(names) == len(set(names)) == size
        assert _is_dag(graph)
        for spec in graph.services:
            if spec.tier == "entry":
                assert not graph.callers(spec.name)
            else:
                assert graph.callers(spec.name), f"{spec.name} is unreachable"
            assert 1 <= len(spec.pods) <= 3 or spec.is_external
        assert any(s.has_pool for s in graph.services)
        assert any(s.has_disk for s in graph.services)


def test_default_topology_mixes_shop_and_random_graphs() -> None:
    graphs = [build_graph(np.random.default_rng(seed), None) for seed in range(40)]
    shops = [g for g in graphs if g.flavor != "random"]
    assert 8 <= len(shops) <= 28
    assert {len(g.services) for g in graphs if g.flavor == "random"} <= set(range(5, 61))
    assert len({g.flavor for g in shops}) >= 2


@pytest.mark.parametrize("size", [5, 60])
def test_services_argument_forces_a_random_graph_of_that_size(size: int) -> None:
    snapshot = simulate(3, services=size).snapshot
    assert snapshot.topology is not None
    assert len(snapshot.topology.services) == size


@pytest.mark.parametrize("size", [0, 4, 1001])
def test_out_of_range_service_counts_are_usage_errors(size: int) -> None:
    with pytest.raises(UsageError, match="services must be between 5 and 60"):
        simulate(1, services=size)


def test_unknown_fault_and_negative_seed_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="cannot simulate fault"):
        simulate(1, fault=FaultType.UNKNOWN)
    with pytest.raises(UsageError, match="non-negative"):
        simulate(-1)


# --- every fault type ----------------------------------------------------------------------


@pytest.mark.parametrize("fault", SIMULATED_FAULTS)
def test_each_fault_type_round_trips_with_its_ground_truth(
    fault: FaultType, tmp_path: Path
) -> None:
    scenario = simulate(5, fault=fault, services=SMALL)
    truth = scenario.snapshot.ground_truth
    assert truth is not None
    assert truth.fault_type is fault
    assert truth.service in scenario.snapshot.services()
    assert truth.onset is not None
    loaded = load_snapshot(write_scenario(scenario, tmp_path / fault.value))
    assert loaded.model_dump_json() == scenario.snapshot.model_dump_json()


def test_fault_types_are_balanced_over_consecutive_seeds(scenarios: list[Scenario]) -> None:
    for scenario in scenarios:
        truth = scenario.snapshot.ground_truth
        assert truth is not None and truth.fault_type is fault_for_seed(scenario.seed)
    for first in (0, 4, 1000):
        counts = Counter(fault_for_seed(seed) for seed in range(first, first + 18))
        assert set(counts) == set(SIMULATED_FAULTS)
        assert set(counts.values()) == {2}


def test_dependency_outage_takes_down_a_dependency_and_silences_its_logs() -> None:
    for seed in range(2):
        scenario = simulate(seed, fault=FaultType.DEPENDENCY_OUTAGE, services=SMALL)
        plan, graph = scenario.plan, scenario.graph
        assert not graph.by_name[plan.service].is_app
        series = scenario.telemetry.services[plan.service]
        during = slice(plan.onset, plan.end)
        assert np.all(np.isnan(series.up[during]) | (series.up[during] == 0))
        start, end = (scenario.telemetry.timeline.time(i) for i in (plan.onset, plan.end - 1))
        own = [r for r in scenario.snapshot.logs if r.service == plan.service]
        assert not [r for r in own if start <= r.timestamp.timestamp() <= end]
        callers = set(graph.callers(plan.service))
        refusals = [
            r
            for r in scenario.snapshot.logs
            if r.service in callers
            and re.search("refused|ECONNREFUSED|timed? ?out|timeout", r.message)
        ]
        assert refusals


def test_memory_leak_restarts_the_container() -> None:
    scenario = simulate(2, fault=FaultType.MEMORY_LEAK, services=SMALL)
    series = scenario.telemetry.services[scenario.plan.service]
    pods = [p for p in series.pods if p.name in scenario.plan.pods]
    assert any(np.nanmax(p.restarts) > np.nanmin(p.restarts) for p in pods)
    assert any(e.kind == "oom" for e in scenario.telemetry.events)


def test_bad_deploy_changes_the_generation_at_the_onset_and_logs_the_version() -> None:
    scenario = simulate(4, fault=FaultType.BAD_DEPLOY, services=SMALL)
    plan = scenario.plan
    generation = scenario.telemetry.services[plan.service].generation
    before = np.nanmax(generation[: plan.onset])
    assert np.nanmin(generation[plan.onset : plan.end]) == before + 1
    own = [r.message for r in scenario.snapshot.logs if r.service == plan.service]
    assert any("deployed version" in m or "version" in m for m in own)


def test_code_exception_logs_stack_traces_without_a_deploy() -> None:
    scenario = simulate(6, fault=FaultType.CODE_EXCEPTION, services=SMALL)
    plan = scenario.plan
    generation = scenario.telemetry.services[plan.service].generation
    assert np.nanmax(generation) == np.nanmin(generation)
    onset = scenario.snapshot.ground_truth.onset  # type: ignore[union-attr]
    traces = [
        r
        for r in scenario.snapshot.logs
        if r.service == plan.service
        and r.timestamp >= onset
        and r.level == "ERROR"
        and re.search(r"(\n|\\n)(\tat |\s+at |  File |goroutine )", r.message)
    ]
    assert traces


# --- propagation ---------------------------------------------------------------------------


def _departure(values: np.ndarray, onset: int) -> int | None:
    """First index from shortly before the onset where three samples in a row leave the baseline.

    Three, because heavy-tailed noise and one-sample spikes do make two in a row now and then.
    """
    baseline = values[max(0, onset - 40) : onset - 5]
    median = np.nanmedian(baseline)
    spread = max(1.4826 * np.nanmedian(np.abs(baseline - median)), 0.5 * np.nanstd(baseline))
    threshold = 4 * spread + 0.1 * abs(median) + 1e-9
    away = np.nan_to_num(np.abs(values - median), nan=0.0) > threshold
    for i in range(onset - 5, len(values) - 2):
        if away[i] and away[i + 1] and away[i + 2]:
            return i
    return None


def _cause_series(incident: Incident) -> list[np.ndarray]:
    plan = incident.plan
    series = incident.telemetry.services[plan.service]
    pods = [p for p in series.pods if p.name in plan.pods]
    return {
        FaultType.CPU_SATURATION: [p.cpu for p in pods],
        FaultType.MEMORY_LEAK: [p.memory for p in pods] + [p.restarts for p in pods],
        FaultType.PACKET_LOSS: [series.net_errors],
        FaultType.DB_POOL_EXHAUSTION: [series.pool_in_use, series.pool_pending],
        FaultType.DISK_FULL: [series.disk_used],
    }[plan.fault]


@pytest.mark.parametrize(
    "fault",
    [
        FaultType.CPU_SATURATION,
        FaultType.MEMORY_LEAK,
        FaultType.PACKET_LOSS,
        FaultType.DB_POOL_EXHAUSTION,
        FaultType.DISK_FULL,
    ],
)
def test_the_cause_moves_no_later_than_the_callers_symptoms(fault: FaultType) -> None:
    """On noisy data a caller's excursion can precede the onset by chance, so this asks for
    the causal order in nearly every scenario, and for the cause never to move before the onset.
    (Slow ramps, a leak or a filling disk, cross the threshold some samples after it.)"""
    in_order, checked = 0, 0
    for seed in range(60):
        incident = unfold(seed, fault=fault, services=20)
        plan, telemetry = incident.plan, incident.telemetry
        symptoms = [
            _departure(values, plan.onset)
            for caller in incident.graph.callers(plan.service)
            for values in (
                telemetry.services[caller].latency[2],
                telemetry.services[caller].error_ratio,
            )
        ]
        symptoms = [d for d in symptoms if d is not None]
        if not symptoms:
            continue
        causes = [_departure(v, plan.onset) for v in _cause_series(incident)]
        assert any(d is not None for d in causes), f"seed {seed}: the cause never moved"
        cause = min(d for d in causes if d is not None)
        assert cause >= plan.onset - 1, f"seed {seed}: the cause moved at {cause}, before the onset"
        in_order += cause <= min(symptoms)
        checked += 1
        if checked == 8:
            break
    assert checked >= 6, f"only {checked} scenarios had callers with visible symptoms"
    assert in_order >= checked - 1


def test_callers_sometimes_show_larger_errors_than_the_faulty_service() -> None:
    larger = 0
    for seed in range(30):
        incident = unfold(seed, fault=FaultType.CODE_EXCEPTION, services=20)
        plan, telemetry = incident.plan, incident.telemetry
        during = slice(plan.onset, plan.end)
        own = np.nanmax(telemetry.services[plan.service].error_ratio[during])
        for caller in incident.graph.ancestors(plan.service):
            if np.nanmax(telemetry.services[caller].error_ratio[during]) > own:
                larger += 1
                break
    assert 3 <= larger <= 27


# --- realism knobs -------------------------------------------------------------------------


def test_short_faults_are_common_and_never_shorter_than_three_samples() -> None:
    graph = random_graph(np.random.default_rng(0), 20)
    durations = []
    for seed in range(300):
        rng = np.random.default_rng(seed)
        timeline = choose_timeline(rng)
        plan = plan_fault(graph, timeline, SIMULATED_FAULTS[seed % 9], rng)
        durations.append(plan.duration)
        assert int(0.6 * timeline.length) <= plan.onset <= 0.85 * timeline.length
        assert plan.end <= timeline.length
    assert min(durations) >= 3
    assert 0.15 <= np.mean(np.array(durations) <= 6) <= 0.4
    assert max(durations) > 60


def test_resolutions_and_lengths_vary_within_bounds() -> None:
    seen = Counter()
    for seed in range(200):
        timeline = choose_timeline(np.random.default_rng(seed))
        seen[timeline.resolution] += 1
        assert 120 <= timeline.length <= 600
        assert timeline.length * timeline.resolution <= 6 * 3600
    assert set(seen) == {1, 5, 10, 15, 30, 60}


def test_missing_points_occur_at_a_realistic_rate(scenarios: list[Scenario]) -> None:
    values = [v for s in scenarios for signal in s.snapshot.signals for v in signal.values]
    missing = sum(v is None for v in values) / len(values)
    assert 0.003 <= missing <= 0.05


def test_some_signals_leave_their_kind_to_be_inferred(scenarios: list[Scenario]) -> None:
    signals = [signal for s in scenarios for signal in s.snapshot.signals]
    share = sum(signal.kind is None for signal in signals) / len(signals)
    assert 0.2 <= share <= 0.7


def test_naming_dialects_vary_and_include_bare_rcaeval_names(scenarios: list[Scenario]) -> None:
    dialects = Counter(choose_naming(np.random.default_rng(seed)).dialect for seed in range(60))
    assert set(dialects) == {"prometheus", "opentelemetry", "datadog", "rcaeval"}
    for scenario in scenarios:
        names = {s.name for s in scenario.snapshot.signals}
        if scenario.naming.dialect == "rcaeval":
            assert {"cpu", "mem", "workload", "error", "latency-90"} <= names
        if scenario.naming.dialect == "prometheus":
            assert any(n.startswith(("container_", "kube_")) for n in names)
    assert len({s.naming.dialect for s in scenarios}) >= 2


def test_signals_per_service_and_pod_names_look_like_kubernetes(scenarios: list[Scenario]) -> None:
    for scenario in scenarios:
        per_service = Counter(s.service for s in scenario.snapshot.signals)
        assert 4 <= np.median(list(per_service.values())) <= 20
        for spec in scenario.graph.services:
            for pod in spec.pods:
                assert re.fullmatch(
                    rf"{re.escape(spec.name)}-([a-z0-9]{{9,10}}-[a-z0-9]{{5}}|\d)", pod
                )


def test_log_volume_and_levels_are_realistic(scenarios: list[Scenario]) -> None:
    for scenario in scenarios:
        logs = scenario.snapshot.logs
        assert 3000 <= len(logs) <= 40000
        levels = Counter(r.level for r in logs)
        assert levels["INFO"] > levels["ERROR"] > 0
        assert levels["WARN"] > 0
        assert [r.timestamp for r in logs] == sorted(r.timestamp for r in logs)


def test_no_name_or_label_gives_the_answer_away(scenarios: list[Scenario]) -> None:
    telltale = re.compile(r"\bfault|root.?cause|inject|chaos|ground.?truth", re.IGNORECASE)
    for scenario in scenarios:
        snapshot = scenario.snapshot
        texts = [snapshot.meta.id, snapshot.meta.description, snapshot.meta.source]
        texts += [f"{s.name} {s.labels} {s.origin} {s.unit}" for s in snapshot.signals]
        texts += [r.message for r in snapshot.logs]
        texts.append(snapshot.alert.model_dump_json())  # type: ignore[union-attr]
        assert not [t for t in texts if telltale.search(t)]


def test_the_alert_fires_after_the_onset_on_a_symptomatic_service(
    scenarios: list[Scenario],
) -> None:
    for scenario in scenarios:
        snapshot, plan = scenario.snapshot, scenario.plan
        alert = snapshot.alert
        assert alert is not None and snapshot.ground_truth is not None
        assert alert.groupKey == f'{{}}:{{alertname="{alert.alert_name}"}}'
        assert all(re.fullmatch("[0-9a-f]{16}", a.fingerprint) for a in alert.alerts)
        assert snapshot.meta.window.incident_start is None
        window = snapshot.window()
        assert snapshot.ground_truth.onset < alert.starts_at <= window.end
        assert window.incident_start <= snapshot.ground_truth.onset
        for service in alert.services():
            assert (
                service == plan.service
                or plan.service in scenario.graph.callees(service)
                or (service in scenario.graph.ancestors(plan.service))
            )
