"""The simulator's rollout family: pods renamed pod by pod, new pods without history, the
defective change in the ground truth, healthy rollouts in the same minutes, each defect's
signature on the new pods, reproducibility, and ``rca eval --suite sim-rollout``."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from agent.errors import UsageError
from agent.models import ChangeKind, FaultType, Signal
from agent.snapshot import load_snapshot
from evals.runner import ROLLOUT_SUITE, expand_suites, simulated_cases
from evals.simulator import Scenario, simulate_rollout, write_scenario
from evals.simulator.defects import DefectKind, RolloutPlan
from evals.simulator.rollout_scenario import INNOCENT_FAULTS, SLOTS
from evals.simulator.rollouts import Rollout

SEEDS = range(18)  # two of every slot: seven defects, two innocent incidents
_POD = re.compile(r"^(?P<service>.+)-(?P<hash>[bcdfghjklmnpqrstvwxz2456789]{9,10})-[a-z0-9]{5}$")


@pytest.fixture(scope="module")
def many() -> list[Scenario]:
    """Four turns of the nine slots."""
    return [simulate_rollout(seed) for seed in range(36)]


@pytest.fixture(scope="module")
def scenarios(many: list[Scenario]) -> list[Scenario]:
    return many[: len(SEEDS)]


def _plan(scenario: Scenario) -> RolloutPlan:
    assert scenario.rollouts is not None
    return scenario.rollouts


def _pod_series(scenario: Scenario, service: str, name: str) -> dict[str, Signal]:
    return {
        s.pod: s
        for s in scenario.snapshot.signals
        if s.service == service and s.name == name and s.pod is not None
    }


def _index(scenario: Scenario, stamp: float) -> int:
    timeline = scenario.telemetry.timeline
    return round((stamp - timeline.start) / timeline.resolution)


def _values_between(signal: Signal, scenario: Scenario, start: int, end: int) -> list[float]:
    return [
        v
        for t, v in zip(signal.timestamps, signal.values, strict=True)
        if v is not None and start <= _index(scenario, t) < end
    ]


# --- pods, names and history ---------------------------------------------------------------


def test_pods_change_names_across_a_rollout(scenarios: list[Scenario]) -> None:
    for scenario in scenarios:
        for rollout in _plan(scenario).rollouts:
            cpu = _pod_series(scenario, rollout.service, "container_memory_working_set_bytes")
            old_hashes = {_POD.match(p)["hash"] for p in rollout.old_pods}  # type: ignore[index]
            assert len(old_hashes) == 1
            for pod in rollout.new_pods:
                match = _POD.match(pod)
                assert match and match["service"] == rollout.service
                assert match["hash"] == rollout.template_hash not in old_hashes
            assert set(rollout.new_pods).isdisjoint(rollout.old_pods)
            for swap in rollout.swaps:
                if swap.old is not None:  # the old pod is gone once its successor serves
                    last = _index(scenario, cpu[swap.old].timestamps[-1])
                    assert last == swap.ready - 1
            assert set(cpu) == {*rollout.old_pods, *rollout.new_pods}


def test_new_pods_have_no_history_before_they_start(scenarios: list[Scenario]) -> None:
    for scenario in scenarios:
        for rollout in _plan(scenario).rollouts:
            starts = {s.new: s.start for s in rollout.swaps}
            for signal in scenario.snapshot.signals:
                if signal.pod in starts:
                    assert _index(scenario, signal.timestamps[0]) >= starts[signal.pod]
            assert min(starts.values()) > 0


def test_rollouts_go_pod_by_pod_over_a_few_minutes(scenarios: list[Scenario]) -> None:
    for scenario in scenarios:
        for rollout in _plan(scenario).rollouts:
            starts = sorted(s.start for s in rollout.swaps)
            if len(starts) >= 3:
                assert starts[-1] > starts[0], "new pods start one after another"
            assert rollout.end - rollout.start <= 20


def test_series_are_one_minute_prometheus_names_with_units(scenarios: list[Scenario]) -> None:
    unitless = {
        "kube_deployment_status_observed_generation",
        "kube_deployment_spec_replicas",
        "kube_pod_container_status_restarts_total",
        "db_client_connections_in_use",
        "db_client_connections_pending",
        "up",
    }
    for scenario in scenarios:
        for signal in scenario.snapshot.signals:
            assert signal.resolution_s == 60.0
            assert re.fullmatch(r"[a-z0-9_:]+", signal.name)
            assert signal.unit or signal.name in unitless, signal.name
        per_pod = {s.name for s in scenario.snapshot.signals if s.pod}
        assert {"http_requests_5xx:ratio", "http_request_duration_seconds:p99"} <= per_pod
        assert {"container_cpu_usage_seconds:rate", "container_memory_working_set_bytes"} <= per_pod


def test_version_labels_name_the_old_and_the_new_version(scenarios: list[Scenario]) -> None:
    labelled = 0
    for scenario in scenarios:
        for rollout in _plan(scenario).rollouts:
            series = _pod_series(scenario, rollout.service, "container_cpu_usage_seconds:rate")
            versions = {pod: s.labels.get("version") for pod, s in series.items()}
            if all(versions.values()):
                labelled += 1
                assert {versions[p] for p in rollout.new_pods} == {rollout.to_version}
                assert {versions[p] for p in rollout.old_pods} == {rollout.from_version}
            else:  # only the ReplicaSet hash in the pod names tells the versions apart
                assert not any(versions.values())
    assert labelled > 0


def test_the_generation_steps_when_a_rollout_starts(scenarios: list[Scenario]) -> None:
    for scenario in scenarios:
        for rollout in _plan(scenario).rollouts:
            (generation,) = [
                s
                for s in scenario.snapshot.signals
                if s.service == rollout.service
                and s.name == "kube_deployment_status_observed_generation"
            ]
            steps = [
                _index(scenario, t)
                for t, a, b in zip(
                    generation.timestamps[1:],
                    generation.values[:-1],
                    generation.values[1:],
                    strict=True,
                )
                if a is not None and b is not None and b > a
            ]
            assert len(steps) <= 1 and all(abs(i - rollout.start) <= 5 for i in steps)


# --- changes and ground truth --------------------------------------------------------------


def test_the_defective_change_is_marked_in_the_ground_truth(scenarios: list[Scenario]) -> None:
    for scenario in scenarios:
        plan, truth = _plan(scenario), scenario.snapshot.ground_truth
        assert truth is not None
        services = [c.service for c in scenario.changes]
        assert sorted(services) == sorted(r.service for r in plan.rollouts)
        assert all(c.kind is ChangeKind.DEPLOY and c.from_version for c in scenario.changes)
        if plan.defective is None:
            assert truth.change is None and truth.fault_type is not FaultType.BAD_DEPLOY
            assert truth.service not in services  # the rollouts are innocent
            continue
        assert truth.fault_type is FaultType.BAD_DEPLOY
        assert truth.service == plan.defective.service
        assert truth.change == f"{plan.defective.service}@{plan.defective.to_version}"
        (defective,) = [c for c in scenario.changes if c.service == truth.service]
        assert defective.to_version == plan.defective.to_version
        assert defective.at.timestamp() == scenario.telemetry.timeline.time(plan.defective.start)


def test_ground_truth_change_survives_a_snapshot_round_trip(tmp_path: Path) -> None:
    scenario = simulate_rollout(0)
    root = write_scenario(scenario, tmp_path / "sim-rollout-0")
    loaded = load_snapshot(root)
    assert loaded.ground_truth is not None and scenario.snapshot.ground_truth is not None
    assert loaded.ground_truth.change == scenario.snapshot.ground_truth.change is not None
    written = json.loads((root / "ground_truth.json").read_text())
    assert written["change"].startswith(scenario.snapshot.ground_truth.service + "@")


def test_the_snapshot_holds_the_changes_a_live_analysis_sees(scenarios: list[Scenario]) -> None:
    """Every rollout, once: as CI/CD reported it (versions, author, link) in most incidents,
    else as the telemetry shows it (version labels or ReplicaSet hashes)."""
    reported = 0
    for scenario in scenarios:
        plan = _plan(scenario)
        deploys = [c for c in scenario.snapshot.changes if c.kind is ChangeKind.DEPLOY]
        assert sorted(c.service for c in deploys) == sorted(r.service for r in plan.rollouts)
        truth = {c.service: c for c in scenario.changes}
        for change in deploys:
            rollout = next(r for r in plan.rollouts if r.service == change.service)
            assert change.at == truth[change.service].at
            if change.source == "api":
                assert change == truth[change.service]
            else:
                assert change.to_version in (rollout.to_version, rollout.template_hash)
        reported += all(c.source == "api" for c in deploys)
        scales = [c for c in scenario.snapshot.changes if c.kind is ChangeKind.SCALE]
        assert bool(scales) == (plan.defect is not None and plan.defect.kind.value == "scale_down")
    assert 0 < reported < len(scenarios)


def test_healthy_rollouts_are_zero_to_five_in_the_same_minutes(many: list[Scenario]) -> None:
    counts: Counter[int] = Counter()
    for scenario in many:
        plan = _plan(scenario)
        healthy = plan.healthy
        counts[len(healthy)] += 1
        assert 0 <= len(healthy) <= 5
        if plan.defective is not None:
            assert all(abs(r.start - plan.defective.start) <= 4 for r in healthy)
        else:
            assert len(healthy) >= 1
    assert counts[0] > 0 and max(counts) >= 4


def test_slots_cycle_through_every_defect_and_innocent_incidents(many: list[Scenario]) -> None:
    assert len(SLOTS) == 9 and SLOTS[-2:] == (None, None)
    defects = [_plan(s).defect for s in many[:9]]
    named = [d.kind if d is not None else None for d in defects]
    assert set(named[:7]) <= set(DefectKind) and named[7:] == [None, None]
    assert len(set(named[:7])) >= 6  # a graph without room for a defect falls back to throws
    innocent = {many[seed].plan.fault for seed in (7, 8, 16, 17, 25, 26, 34, 35)}
    assert innocent == set(INNOCENT_FAULTS)


# --- what each defect does ---------------------------------------------------------------


def _defective_seed(kind: DefectKind, delayed: bool = False) -> Scenario:
    for seed in range(list(DefectKind).index(kind), 400, len(SLOTS)):
        scenario = simulate_rollout(seed)
        defect = _plan(scenario).defect
        if defect is not None and defect.kind is kind and bool(defect.delay) == delayed:
            return scenario
    raise AssertionError(f"no seed below 400 simulates {kind}")


def _new_vs_old(scenario: Scenario, name: str) -> tuple[float, float]:
    """Median of ``name`` over the new pods once all serve, and over the old pods before."""
    rollout: Rollout = _plan(scenario).defective  # type: ignore[assignment]
    series = _pod_series(scenario, rollout.service, name)
    defect = _plan(scenario).defect
    start = rollout.end + (defect.delay if defect else 0) + 1
    new = [v for p in rollout.new_pods for v in _values_between(series[p], scenario, start, 10**6)]
    old = [
        v for p in rollout.old_pods for v in _values_between(series[p], scenario, 0, rollout.start)
    ]
    return float(np.median(new)), float(np.median(old))


@pytest.mark.parametrize(
    ("kind", "series", "factor"),
    [
        (DefectKind.THROWS, "http_requests_5xx:ratio", 3.0),
        (DefectKind.BAD_CONFIG, "http_requests_5xx:ratio", 10.0),
        (DefectKind.SLOW_QUERIES, "http_request_duration_seconds:p99", 1.2),
        (DefectKind.SCALE_DOWN, "container_cpu_usage_seconds:rate", 1.3),
    ],
)
def test_a_defect_shows_on_the_new_pods(kind: DefectKind, series: str, factor: float) -> None:
    new, old = _new_vs_old(_defective_seed(kind), series)
    assert new > factor * old


def test_a_memory_leak_climbs_on_the_new_pods_until_they_are_killed() -> None:
    scenario = _defective_seed(DefectKind.MEMORY_LEAK)
    rollout: Rollout = _plan(scenario).defective  # type: ignore[assignment]
    restarts = _pod_series(scenario, rollout.service, "kube_pod_container_status_restarts_total")
    killed = [p for p in rollout.new_pods if (restarts[p].values[-1] or 0) > 0]
    assert killed, "a leak reaches the limit within the window"
    old_restarts = {restarts[p].values[-1] - restarts[p].values[0] for p in rollout.old_pods}
    assert old_restarts == {0}


def test_wrong_values_leave_the_service_clean_and_fail_its_callers() -> None:
    scenario = _defective_seed(DefectKind.WRONG_VALUES)
    new, old = _new_vs_old(scenario, "http_requests_5xx:ratio")
    assert new < 3 * old + 0.01
    rollout: Rollout = _plan(scenario).defective  # type: ignore[assignment]
    on = scenario.plan.onset
    worse = [
        c
        for c in scenario.graph.ancestors(rollout.service)
        if np.nanmedian(scenario.telemetry.services[c].error_ratio[on + 5 :])
        > 3 * np.nanmedian(scenario.telemetry.services[c].error_ratio[: rollout.start]) + 0.01
    ]
    assert worse


def test_a_missing_call_drops_the_callees_traffic() -> None:
    scenario = _defective_seed(DefectKind.MISSING_CALL)
    defect = _plan(scenario).defect
    assert defect is not None and defect.callee is not None
    rps = scenario.telemetry.services[defect.callee].rps
    on = scenario.plan.onset
    assert np.nanmedian(rps[on + 5 :]) < 0.85 * np.nanmedian(rps[: on - 5])
    alert = scenario.snapshot.alert
    assert alert is not None and alert.alerts[0].labels["service"] == defect.callee


def test_a_delayed_defect_looks_normal_until_traffic_reaches_it() -> None:
    scenario = _defective_seed(DefectKind.THROWS, delayed=True)
    plan = _plan(scenario)
    rollout, defect = plan.defective, plan.defect
    assert rollout is not None and defect is not None
    series = _pod_series(scenario, rollout.service, "http_requests_5xx:ratio")
    trigger = rollout.end + defect.delay

    def values(start: int, end: int) -> list[float]:
        return [
            v for p in rollout.new_pods for v in _values_between(series[p], scenario, start, end)
        ]

    quiet, loud = values(rollout.end, trigger), values(trigger + 1, 10**6)
    assert np.median(loud) > 2 * np.median(quiet)
    truth = scenario.snapshot.ground_truth
    assert truth is not None and truth.onset is not None
    assert _index(scenario, truth.onset.timestamp()) == trigger


# --- reproducibility and the eval suite -------------------------------------------------------


def test_the_same_seed_gives_the_same_incident() -> None:
    first, again = simulate_rollout(11), simulate_rollout(11)
    assert first.snapshot.model_dump_json() == again.snapshot.model_dump_json()
    assert first.changes == again.changes
    assert simulate_rollout(12).snapshot.model_dump_json() != first.snapshot.model_dump_json()


def test_forced_faults_and_sizes() -> None:
    innocent = simulate_rollout(3, fault=FaultType.DISK_FULL, services=12)
    assert innocent.snapshot.ground_truth is not None
    assert innocent.snapshot.ground_truth.fault_type is FaultType.DISK_FULL
    assert len(innocent.graph.services) == 12
    defective = simulate_rollout(8, fault=FaultType.BAD_DEPLOY)
    assert _plan(defective).defective is not None
    with pytest.raises(UsageError, match="5 to 30 services"):
        simulate_rollout(1, services=200)
    with pytest.raises(UsageError):
        simulate_rollout(-1)


def test_the_suite_is_a_named_simulated_suite() -> None:
    (suite,) = expand_suites([ROLLOUT_SUITE])
    assert suite.name == ROLLOUT_SUITE and suite.path is None
    cases = simulated_cases(range(5, 7), suite=ROLLOUT_SUITE)
    assert [c.name for c in cases] == ["sim-rollout-5", "sim-rollout-6"]
    assert cases[0].load().meta.id == "sim-rollout-5"
    with pytest.raises(UsageError, match="sim-rollout"):
        simulated_cases(range(1), suite="sim-rollouts")


def test_rca_eval_runs_the_rollout_suite_end_to_end(tmp_path: Path) -> None:
    from agent.cli import cli

    out = tmp_path / "rollout.json"
    args = ["eval", "--suite", "sim-rollout", "--seeds", "40000-40002", "--json", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.stderr
    assert "AC@1" in result.stdout
    data = json.loads(out.read_text())
    assert data["suite"] == "sim-rollout" and data["seeds"] == "40000-40002"
    assert [c["case"] for c in data["cases"]] == [f"sim-rollout-{s}" for s in (40000, 40001, 40002)]
    assert data["metrics"]["n_cases"] == 3
    assert CliRunner().invoke(cli, ["eval", "--suite", "sim-rollout"]).exit_code == 2


def test_the_change_benchmark_scores_verdicts_against_the_simulated_rollouts() -> None:
    from evals.bench_changes import score

    totals, by_kind = score(range(40000, 40009))  # one incident of each slot
    assert totals["cases"] == 9
    assert totals["defective"] == 7 and totals["innocent"] == 2
    assert totals["healthy"] > 0
    assert 0 <= totals["defective_suspect"] <= totals["defective"]
    assert sum(n for (what, _), n in by_kind.items() if what == "n") == 9
