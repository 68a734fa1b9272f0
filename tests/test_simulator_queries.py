"""The simulator's snapshot holds what a live PromQL query returns (evals/simulator/query.py).

Pure tests of the emulation against values worked out by hand from Prometheus' own rules
(``irate`` over the last two samples of a closed range, ``histogram_quantile`` interpolating
inside a bucket); the real server checks the whole path in ``test_live_vs_snapshot.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from evals.simulator import simulate
from evals.simulator.query import histogram_quantile, irate, observe, ratio, sum_present
from evals.simulator.scrape import BUCKETS, Counter, expose, printed

NAN = float("nan")


def _same(got: np.ndarray, want: list[float]) -> bool:
    return bool(np.allclose(got, np.array(want), equal_nan=True, rtol=0, atol=1e-12))


# --- irate ---------------------------------------------------------------------------------


def test_irate_is_the_increase_between_the_last_two_samples_per_second() -> None:
    total = np.array([0.0, 10.0, 20.0, 35.0, 40.0])
    assert _same(irate(total, np.ones(5, dtype=bool), window=3, step=5.0), [NAN, 2, 2, 3, 1])


def test_irate_spans_a_missed_scrape_and_gives_up_past_the_window() -> None:
    total = np.array([0.0, 10.0, 20.0, 30.0, 40.0, 50.0])
    one_missed = np.array([True, True, False, True, True, True])
    # at the missed step the window still holds the two samples before it
    assert _same(irate(total, one_missed, 3, 5.0), [NAN, 2, 2, 2, 2, 2])
    two_missed = np.array([True, False, False, True, True, True])
    # Prometheus 2.x ranges include t - 3 steps: the sample before the hole still counts
    assert _same(irate(total, two_missed, 3, 5.0), [NAN, NAN, NAN, 2, 2, 2])
    three_missed = np.array([True, False, False, False, True, True])
    # one step later it has left the range: one sample, no rate
    assert _same(irate(total, three_missed, 3, 5.0), [NAN, NAN, NAN, NAN, NAN, 2])


def test_irate_counts_a_reset_from_zero() -> None:
    total = np.array([0.0, 100.0, 6.0])
    assert _same(irate(total, np.ones(3, dtype=bool), 3, 2.0), [NAN, 50, 3])


def test_sum_skips_absent_series_and_is_absent_where_all_are() -> None:
    a, b = np.array([1.0, NAN, NAN]), np.array([2.0, 3.0, NAN])
    assert _same(sum_present([a, b]), [3, 3, NAN])
    assert _same(ratio(np.array([1.0, 0.0, 1.0]), np.array([4.0, 0.0, NAN])), [0.25, NAN, NAN])


# --- histogram_quantile ----------------------------------------------------------------------


def _rates(*cumulative: float) -> np.ndarray:
    assert len(cumulative) == len(BUCKETS) + 1
    return np.array(cumulative, dtype=np.float64)[:, None]


# le: 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 +Inf
SPREAD = _rates(0, 0, 0, 0, 10, 50, 90, 99, 100, 100, 100, 100)


@pytest.mark.parametrize(
    ("q", "want"),
    [
        (0.5, 0.25),  # rank 50 is the top of (0.1, 0.25]
        (0.75, 0.25 + 0.25 * (25 / 40)),  # 25 of the 40 in (0.25, 0.5]
        (0.99, 1.0),
        (0.05, 0.05 + 0.05 * (5 / 10)),  # inside the first bucket that holds anything
    ],
)
def test_quantiles_interpolate_linearly_inside_the_bucket(q: float, want: float) -> None:
    assert math.isclose(float(histogram_quantile(q, SPREAD)[0]), want, rel_tol=1e-12)


def test_a_rank_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    beyond = _rates(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 90, 100)
    assert float(histogram_quantile(0.99, beyond)[0]) == BUCKETS[-1]


def test_no_observations_or_a_missing_bucket_give_no_quantile() -> None:
    idle = _rates(*([0.0] * 12))
    missing = SPREAD.copy()
    missing[3, 0] = NAN
    assert math.isnan(histogram_quantile(0.99, idle)[0])
    assert math.isnan(histogram_quantile(0.99, missing)[0])


def test_buckets_that_dip_by_rounding_are_made_monotonic() -> None:
    dipping = _rates(0, 0, 0, 0, 10, 50, 49, 99, 100, 100, 100, 100)
    # (0.25, 0.5] holds nothing after the fix: rank 50 stays at 0.25
    assert float(histogram_quantile(0.5, dipping)[0]) == 0.25


# --- scraping and observing a scenario -------------------------------------------------------


@pytest.mark.parametrize("scale", [1e-3, 1.0, 4e4, 6e8, 2e11])
@pytest.mark.parametrize("spec", [".3f", ".6g"])
def test_samples_are_the_values_prometheus_parses_from_the_text(scale: float, spec: str) -> None:
    values = np.random.default_rng(7).uniform(0, scale, 5000)
    values[::50] = NAN
    read_back = [float(format(v, spec)) for v in values.tolist()]
    assert np.array_equal(printed(values, spec), np.array(read_back), equal_nan=True)


def test_a_missed_scrape_loses_the_sample_not_the_count() -> None:
    scenario = simulate(212)
    telemetry = scenario.telemetry
    assert telemetry.counted is not None
    step = float(telemetry.timeline.resolution)
    checked = 0
    for counter in expose(scenario.graph, telemetry).series("node_netstat_tcp_retrans_segs"):
        assert isinstance(counter, Counter)
        service = counter.labels["service"]
        before = telemetry.counted[service].net_errors
        missed = np.isfinite(before) & ~np.isfinite(telemetry.services[service].net_errors)
        assert not counter.scraped[missed].any()
        for i in np.flatnonzero(missed):
            if 0 < i < len(before) - 1 and counter.scraped[i - 1] and counter.scraped[i + 1]:
                counted = before[i] + before[i + 1]
                increase = counter.total[i + 1] - counter.total[i - 1]
                assert abs(increase - counted * step) <= 1.0  # whole segments
                checked += 1
    assert checked >= 3


def test_observed_telemetry_is_what_the_queries_return() -> None:
    scenario = simulate(212)
    observed = observe(scenario.graph, scenario.telemetry)
    name = scenario.graph.services[0].name
    truth, seen = scenario.telemetry.services[name], observed.services[name]
    # irate needs two samples: nothing at the first step
    assert math.isnan(seen.rps[0]) and math.isnan(seen.latency[2][0])
    # bucket interpolation: every p99 lies on or inside a bucket of the histogram
    p99 = seen.latency[2][np.isfinite(seen.latency[2])]
    assert len(p99) and (p99 <= BUCKETS[-1]).all() and (p99 > 0).all()
    assert not np.allclose(p99, truth.latency[2][np.isfinite(seen.latency[2])])
    # counted in whole requests, the rate stays close to the simulated one
    assert np.nanmedian(np.abs(seen.rps - truth.rps) / truth.rps) < 0.05


def test_a_pods_cpu_rate_outlives_the_pod_by_the_window() -> None:
    scenario = simulate(95)  # a bad deploy: the rollout replaces pods
    observed = observe(scenario.graph, scenario.telemetry)
    gone = 0
    for name, series in scenario.telemetry.services.items():
        for pod, seen in zip(series.pods, observed.services[name].pods, strict=True):
            if pod.alive[-1]:
                continue
            last_alive = np.flatnonzero(pod.alive)[-1]
            assert np.isfinite(seen.cpu[last_alive + 1]), "Prometheus still has two samples"
            assert math.isnan(seen.memory[last_alive + 1]), "a gauge goes stale with its pod"
            gone += 1
    assert gone
