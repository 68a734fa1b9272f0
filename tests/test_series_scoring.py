"""Robust per-series scoring and onset detection."""

from __future__ import annotations

import numpy as np
import pytest

from agent.engine.detect.series import Z_CAP, robust_scale, score_signal, score_signals
from agent.models import Signal, SignalKind

T0 = 1_767_225_600.0


def _signal(values, step: float = 15.0, name: str = "cpu", kind=None, **kw) -> Signal:
    ts = [T0 + step * i for i in range(len(values))]
    return Signal(
        service=kw.pop("service", "cart"),
        name=name,
        kind=kind,
        timestamps=ts,
        values=[None if v is None else float(v) for v in values],
        **kw,
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_step_change_is_found_with_its_onset(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(50, 2, 200)
    values[170:] += 30
    sig = _signal(values)
    finding = score_signal(sig, split=T0 + 15 * 160, threshold=4.0)
    assert finding is not None
    assert finding.direction == 1
    assert finding.onset == pytest.approx(T0 + 15 * 170, abs=15)
    assert finding.baseline.median == pytest.approx(50, abs=1.5)
    assert finding.incident.max > 75


def test_noise_alone_is_not_a_finding() -> None:
    rng = np.random.default_rng(7)
    sig = _signal(rng.normal(50, 5, 300))
    assert score_signal(sig, split=T0 + 15 * 240, threshold=4.0) is None


def test_a_single_sample_spike_does_not_count_but_three_samples_do() -> None:
    rng = np.random.default_rng(11)
    base = rng.normal(10, 0.5, 100)
    spike = base.copy()
    spike[90] = 100
    assert score_signal(_signal(spike), split=T0 + 15 * 80, threshold=4.0) is None
    fault = base.copy()
    fault[95:98] = 100  # a fault window of exactly three samples
    finding = score_signal(_signal(fault), split=T0 + 15 * 80, threshold=4.0)
    assert finding is not None and finding.score > 10


def test_a_lasting_version_change_counts_but_a_one_sample_blip_does_not() -> None:
    deploy = [68.0] * 80 + [69.0] * 20
    finding = score_signal(
        _signal(deploy, name="app_version", kind=SignalKind.CHANGE),
        split=T0 + 15 * 70,
        threshold=4.0,
    )
    assert finding is not None and finding.kind is SignalKind.CHANGE
    assert finding.onset == T0 + 15 * 80
    blip = [1.0] * 80 + [0.0] + [1.0] * 19  # a restart counter read as 0 once
    assert score_signal(_signal(blip, name="restarts"), split=T0 + 15 * 70, threshold=4.0) is None


def test_one_quantum_over_a_flat_zero_baseline_is_not_news() -> None:
    pending = [0.0] * 90 + [1.0] * 10
    assert score_signal(_signal(pending, name="pool_pending"), T0 + 15 * 85, 4.0) is None
    surge = [0.0] * 90 + [1.0, 3.0, 8.0, 12.0, 15.0, 15.0, 15.0, 15.0, 15.0, 15.0]
    assert score_signal(_signal(surge, name="pool_pending"), T0 + 15 * 85, 4.0) is not None


def test_every_request_failing_after_none_did_is_news() -> None:
    # A callee whose pods are gone: its errors ratio sat at exactly 0 and is now exactly 1.
    # A share's quantum is not the whole; the same values as a count stay one quantum.
    outage = [0.0] * 90 + [1.0] * 10
    kind = SignalKind.ERRORS
    share = _signal(outage, name="http_requests_5xx:ratio", kind=kind, unit="ratio")
    finding = score_signal(share, T0 + 15 * 85, 4.0)
    assert finding is not None and finding.direction == 1
    count = _signal(outage, name="errors_per_second", kind=kind, unit="")
    assert score_signal(count, T0 + 15 * 85, 4.0) is None


def test_a_gauge_that_sat_still_and_then_grew_is_found() -> None:
    # A memory gauge that read one value for ten minutes, then grew by a third: its smallest
    # step, not its size, says what one quantum of it is.
    memory = [37.8] * 11 + [39.0, 43.6, 48.7, 49.7]
    finding = score_signal(_signal(memory, step=60.0, name="memory_mib"), T0 + 60 * 10, 4.0)
    assert finding is not None and finding.direction == 1
    assert finding.onset == T0 + 60 * 12


def test_a_still_level_moving_within_two_percent_is_not_news() -> None:
    level = [200.0] * 80 + [203.0] * 20
    assert score_signal(_signal(level, name="memory_mib"), T0 + 15 * 75, 4.0) is None


def test_a_still_latency_is_judged_against_its_usual_wobble_not_its_stillness() -> None:
    # Every request in one histogram bucket: the p99 reads that bucket's interpolation,
    # 9.94 ms give or take 0.01 ms, and a few requests past its bound read 23 ms. Judged
    # against the 2 % drift a memory gauge may have, that step was a 65-sigma rise (the cap).
    still = [0.00994, 0.00995, 0.00993, 0.00994, 0.00995, 0.00994, 0.00993, 0.00995, 0.00994]

    def scored(incident: list[float]):
        latency = _signal(still + incident, step=60.0, name="http_p99_latency_seconds")
        return score_signal(latency, T0 + 60 * len(still), 4.0)

    hop = scored([0.00994, 0.023, 0.023, 0.00994])
    assert hop is not None and hop.kind is SignalKind.LATENCY
    assert 4.0 <= hop.score < 20.0
    assert scored([0.0115] * 4) is None  # 16 % slower: within a latency's usual wobble
    tenfold = scored([0.1] * 4)
    assert tenfold is not None and tenfold.score == Z_CAP  # ten times slower is news in full
    # The same step on a still gauge of another kind is judged against 2 %, as before.
    memory = _signal(
        [x * 1000 for x in still] + [9.94, 23.0, 23.0, 9.94], step=60.0, name="memory_mib"
    )
    gauge = score_signal(memory, T0 + 60 * len(still), 4.0)
    assert gauge is not None and gauge.score == Z_CAP


def test_a_gap_in_the_middle_of_the_incident_is_a_vanished_finding() -> None:
    values: list[float | None] = [10.0] * 80 + [None] * 8 + [10.0] * 12
    finding = score_signal(_signal(values), split=T0 + 15 * 75, threshold=4.0)
    assert finding is not None and finding.direction == 0
    assert finding.onset == T0 + 15 * 80


def test_flat_baseline_does_not_divide_by_zero() -> None:
    median, scale = robust_scale(np.zeros(50))
    assert median == 0 and scale > 0
    finding = score_signal(
        _signal([0.0] * 60 + [1.0] + [3.0] * 9), split=T0 + 15 * 55, threshold=4.0
    )
    assert finding is not None and np.isfinite(finding.score)


def test_all_flat_series_give_no_findings() -> None:
    signals = [_signal([5.0] * 100, name=f"m{i}") for i in range(5)]
    assert score_signals(signals, split=T0 + 15 * 80, threshold=4.0) == []


def test_series_that_stops_reporting_is_a_vanished_finding() -> None:
    values: list[float | None] = [10.0] * 80 + [None] * 20
    finding = score_signal(_signal(values), split=T0 + 15 * 75, threshold=4.0)
    assert finding is not None
    assert finding.direction == 0
    assert finding.onset == pytest.approx(T0 + 15 * 80)


def test_missing_points_are_tolerated() -> None:
    rng = np.random.default_rng(5)
    values: list[float | None] = list(rng.normal(20, 1, 120))
    for i in range(0, 120, 9):
        values[i] = None
    for i in range(100, 120):
        if values[i] is not None:
            values[i] = values[i] + 15  # type: ignore[operator]
    finding = score_signal(_signal(values, step=60), split=T0 + 60 * 90, threshold=4.0)
    assert finding is not None and finding.direction == 1


def test_drops_are_scored_downwards() -> None:
    rng = np.random.default_rng(9)
    values = rng.normal(100, 3, 150)
    values[130:] = 5
    finding = score_signal(_signal(values, name="requests"), split=T0 + 15 * 120, threshold=4.0)
    assert finding is not None and finding.direction == -1


def test_too_little_baseline_is_skipped_rather_than_guessed() -> None:
    assert score_signal(_signal([1.0, 1.0, 9.0, 9.0]), split=T0 + 15 * 2, threshold=4.0) is None


def test_findings_are_sorted_strongest_first() -> None:
    rng = np.random.default_rng(3)
    weak = rng.normal(10, 1, 100)
    weak[90:] += 8
    strong = rng.normal(10, 1, 100)
    strong[90:] += 40
    found = score_signals(
        [_signal(weak, name="a"), _signal(strong, name="b")], split=T0 + 15 * 85, threshold=4.0
    )
    assert [f.signal.name for f in found] == ["b", "a"]


@pytest.mark.parametrize("gap_at", [175, 181, 189])
def test_onset_reaches_back_across_a_missed_scrape(gap_at: int) -> None:
    rng = np.random.default_rng(gap_at)
    values: list[float | None] = list(rng.normal(50, 2, 200))
    for i in range(170, 200):
        values[i] = float(values[i] or 0) + 40
    values[gap_at] = None
    finding = score_signal(_signal(values), split=T0 + 15 * 160, threshold=4.0)
    assert finding is not None
    assert finding.onset == pytest.approx(T0 + 15 * 170, abs=15)


def _pod_series(name: str, stops: bool, pod: str = "cart-0") -> Signal:
    values: list[float | None] = [10.0 + (i % 3) for i in range(80)]
    values += [None if stops else 10.0 + (i % 3) for i in range(20)]
    return _signal(values, name=name, pod=pod)


def test_one_series_stopping_while_its_pod_reports_on_is_not_a_finding() -> None:
    signals = [_pod_series("cpu", stops=True)] + [
        _pod_series(n, stops=False) for n in ("mem", "restarts", "threads")
    ]
    assert score_signals(signals, split=T0 + 15 * 75, threshold=4.0) == []


def test_a_pod_whose_series_mostly_stop_is_down() -> None:
    signals = [_pod_series(n, stops=True) for n in ("cpu", "mem", "threads")]
    signals.append(_pod_series("kube_pod_status_ready", stops=False))
    findings = score_signals(signals, split=T0 + 15 * 75, threshold=4.0)
    assert sorted(f.signal.name for f in findings if f.direction == 0) == ["cpu", "mem", "threads"]


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_a_lasting_latency_shift_below_the_noise_is_found(seed: int) -> None:
    # One pod of four slowed by 100 ms: the service p99 moves by about 1.5 sigma, which no
    # single sample gives away, for 60 samples.
    rng = np.random.default_rng(seed)
    values = rng.normal(0.5, 0.07, 300)
    values[240:] += 0.1
    split = T0 + 15 * 220
    latency = score_signal(_signal(values, name="http_p99_seconds"), split, threshold=4.0)
    assert latency is not None and latency.direction == 1
    assert latency.onset == pytest.approx(T0 + 15 * 240, abs=15 * 4)
    # Only latency is averaged this way: the same shift on a CPU series stays below the bar.
    assert score_signal(_signal(values, name="cpu"), split, threshold=4.0) is None


@pytest.mark.parametrize("seed", [21, 22, 23, 24, 25])
def test_latency_noise_alone_is_not_a_lasting_shift(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(0.5, 0.07, 300) * (1 + 0.05 * np.sin(np.arange(300) / 40))
    sig = _signal(values, name="http_p99_seconds")
    assert score_signal(sig, split=T0 + 15 * 220, threshold=4.0) is None
