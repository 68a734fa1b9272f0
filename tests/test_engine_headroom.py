"""A CPU rise far below the pod's limit is more work, not saturation (agent/engine/headroom)."""

from __future__ import annotations

import numpy as np
import pytest
from findings_support import T0, THR, log_finding

from agent.engine.detect.series import score_signal, score_signals
from agent.engine.headroom import far_below_limit, mark_headroom, pegged
from agent.engine.hypothesis import fault_scores, hypothesize
from agent.engine.rank import rank_services
from agent.engine.service_score import metric_weight
from agent.models import FaultType, Signal

STEP = 60.0
SPLIT = T0 + 10 * STEP


def _signal(name: str, pod: str, values: list[float], unit: str = "") -> Signal:
    """A pod's series, one sample a minute from T0."""
    return Signal(
        service=pod.split("-")[0],
        pod=pod,
        name=name,
        unit=unit,
        resolution_s=STEP,
        timestamps=[T0 + i * STEP for i in range(len(values))],
        values=values,
    )


def _series(name: str, pod: str, before: float, after: float, seed: int, unit: str = "") -> Signal:
    rng = np.random.default_rng(seed)
    values = [before * (1 + rng.normal(0, 0.03)) for _ in range(10)] + [after] * 5
    return _signal(name, pod, values, unit)


@pytest.mark.parametrize(
    ("name", "unit", "scale"),
    [
        ("CpuUsageRate(%)", "", 100.0),
        ("pod:container_cpu_usage:ratio_limit", "ratio", 1.0),
        ("container.cpu.utilization", "1", 1.0),
    ],
)
def test_a_pod_whose_cpu_share_stayed_low_is_far_below_its_limit(
    name: str, unit: str, scale: float
) -> None:
    idle = _series(name, "station-1", 0.01 * scale, 0.025 * scale, 1, unit)
    starved = _series(name, "cart-1", 0.05 * scale, 0.95 * scale, 2, unit)
    assert far_below_limit([idle, starved], SPLIT) == {("station", "station-1")}


def test_series_that_do_not_measure_the_pods_cpu_share_say_nothing() -> None:
    node = _series("NodeCpuUsageRate(%)", "station-1", 1, 2.5, 1)
    throttled = _series("container_cpu_cfs_throttled_periods:ratio", "station-1", 0.0, 0.1, 2)
    cores = _series("container_cpu_usage_seconds_total", "station-1", 0.01, 0.03, 3)
    assert far_below_limit([node, throttled, cores], SPLIT) == frozenset()


@pytest.mark.parametrize("seed", [4, 11, 23])
def test_cpu_far_below_its_limit_weighs_less_and_is_not_read_as_saturation(seed: int) -> None:
    signals = [
        _series("CpuUsage(m)", "station-1", 4, 10.6, seed),
        _series("CpuUsageRate(%)", "station-1", 0.8, 2.1, seed + 1),
    ]
    plain = score_signals(signals, SPLIT, THR)
    [marked_cores] = marked = mark_headroom(plain, signals, SPLIT, THR)
    [plain_cores] = [f for f in plain if f.signal.name == "CpuUsage(m)"]
    assert marked_cores.far_below_limit and marked_cores.signal.name == "CpuUsage(m)"
    assert metric_weight(marked_cores) == pytest.approx(0.5 * metric_weight(plain_cores))
    errors = log_finding("station", "ERROR StationController#query failed", 6.0)
    assert hypothesize(fault_scores(plain, [errors], THR)) is FaultType.CPU_SATURATION
    assert hypothesize(fault_scores(marked, [errors], THR)) is FaultType.CODE_EXCEPTION
    assert hypothesize(fault_scores(marked, [], THR)) is not FaultType.CPU_SATURATION


@pytest.mark.parametrize("seed", [4, 11, 23])
def test_cpu_at_its_limit_keeps_its_weight(seed: int) -> None:
    signals = [_series("CpuUsageRate(%)", "cart-1", 5, 97, seed)]
    found = score_signals(signals, SPLIT, THR)
    assert found and not any(f.far_below_limit for f in mark_headroom(found, signals, SPLIT, THR))


def test_the_report_says_why_such_cpu_weighed_less() -> None:
    signals = [_series("CpuUsageRate(%)", "station-1", 0.8, 2.1, 7)]
    marked = mark_headroom(score_signals(signals, SPLIT, THR), signals, SPLIT, THR)
    [station] = rank_services(marked, [], None, THR, STEP)
    assert "its CPU stayed under 30% of its limit: busier, not starved" in station.reasons


@pytest.mark.parametrize("seed", [3, 17, 29])
def test_cpu_in_cores_and_as_a_share_of_the_limit_counts_once(seed: int) -> None:
    cores = _series("container_cpu_usage_seconds:rate", "cart-1", 0.05, 0.6, seed, "cores")
    share = _series("container_cpu_usage:limit_ratio", "cart-1", 0.05, 0.6, seed, "ratio")
    both = mark_headroom(score_signals([cores, share], SPLIT, THR), [cores, share], SPLIT, THR)
    alone = mark_headroom(score_signals([cores], SPLIT, THR), [cores], SPLIT, THR)
    assert [f.signal.name for f in both] == ["container_cpu_usage_seconds:rate"]
    [twice] = rank_services(both, [], None, THR, STEP)
    [once] = rank_services(alone, [], None, THR, STEP)
    assert twice.strength == pytest.approx(once.strength)


def test_a_share_of_the_limit_is_kept_where_the_pod_reports_no_other_cpu() -> None:
    share = _series("container_cpu_usage:limit_ratio", "cart-1", 0.05, 0.6, 5, "ratio")
    other = _series("container_cpu_usage_seconds:rate", "front-1", 0.2, 0.2, 6, "cores")
    found = mark_headroom(score_signals([share, other], SPLIT, THR), [share, other], SPLIT, THR)
    assert [f.signal.name for f in found] == ["container_cpu_usage:limit_ratio"]


def _noisy_then_pegged(seed: int) -> list[Signal]:
    """A pod whose CPU swung between 8 % and 44 % of its limit, already at 87 % in the last
    baseline minute (the injection logged late), then at 88-96 % for three minutes while its
    serving latency went up twentyfold: the noisy baseline keeps the CPU rise's z-score low."""
    rng = np.random.default_rng(seed)
    shape = [39, 36, 8, 9, 8.5, 35, 31, 44, 30, 87, 88, 88, 96, 54, 33]
    share = [v * (1 + rng.normal(0, 0.01)) for v in shape]
    latency = [0.015 * (1 + rng.normal(0, 0.2)) for _ in range(10)] + [0.3, 0.31, 0.3, 0.02, 0.01]
    return [
        _signal(name, "cart-1", v)
        for name, v in (("CpuUsageRate(%)", share), ("PodServerLatencyP90(s)", latency))
    ]


@pytest.mark.parametrize("seed", [2, 13, 31])
def test_a_pod_pegged_at_its_limit_reads_as_cpu_saturation_under_the_threshold(seed: int) -> None:
    signals = _noisy_then_pegged(seed)
    cpu = score_signal(signals[0], SPLIT, 0.0)
    assert cpu is not None and cpu.score < THR  # the z-score alone would not count it
    plain = score_signals(signals, SPLIT, THR)
    assert hypothesize(fault_scores(plain, [], THR)) is FaultType.NETWORK_LATENCY
    marked = mark_headroom(plain, signals, SPLIT, THR)
    [at_limit] = [f for f in marked if f.at_limit]
    assert at_limit.signal.name == "CpuUsageRate(%)" and at_limit.score == pytest.approx(THR)
    assert hypothesize(fault_scores(marked, [], THR)) is FaultType.CPU_SATURATION


def test_a_pod_that_ran_at_its_limit_before_the_incident_too_is_not_pegged_by_it() -> None:
    busy = _series("CpuUsageRate(%)", "cart-1", 90, 96, 3)
    assert pegged([busy], SPLIT) == {}


def test_with_only_an_alert_a_limit_run_that_ended_before_it_fired_is_an_earlier_incident() -> None:
    cpu = _signal("CpuUsageRate(%)", "cart-1", [10.0] * 10 + [95.0, 96.0, 12.0, 11.0, 10.0])
    assert pegged([cpu], SPLIT) == {("cart", "cart-1"): cpu}  # the injection time given
    assert pegged([cpu], SPLIT, fired=SPLIT + STEP) == {("cart", "cart-1"): cpu}
    assert pegged([cpu], SPLIT, fired=SPLIT + 4 * STEP) == {}  # the run had ended by the alert


def test_a_pegged_pod_that_reports_cores_too_counts_its_cpu_once_from_its_share() -> None:
    cores = _series("container_cpu_usage_seconds:rate", "cart-1", 0.05, 0.95, 8, "cores")
    share = _series("container_cpu_usage:limit_ratio", "cart-1", 0.05, 0.95, 8, "ratio")
    found = mark_headroom(score_signals([cores, share], SPLIT, THR), [cores, share], SPLIT, THR)
    assert [(f.signal.name, f.at_limit) for f in found] == [
        ("container_cpu_usage:limit_ratio", True)
    ]


def test_the_report_says_the_pod_was_starved_at_its_limit() -> None:
    signals = _noisy_then_pegged(4)
    marked = mark_headroom(score_signals(signals, SPLIT, THR), signals, SPLIT, THR)
    [cart] = rank_services(marked, [], None, THR, STEP)
    assert "its CPU ran at 85% of its limit or more: starved of CPU" in cart.reasons
    assert cart.fault_type is FaultType.CPU_SATURATION
