"""Per-series anomaly scoring against a robust baseline, with onset detection.

Each series is split at the incident start. The baseline gives a median and a robust scale
(IQR and MAD, floored at a share of the level: 2 %, a latency's usual 10 % wobble); the
incident part is scored by robust z-scores. A finding's score is the largest z that
*persists* for two consecutive samples, so single-sample scrape glitches and harmless spikes
do not win, while a fault that lasts only three samples still does. Cumulative series
(restart counters, versions) keep their new level, so they pass the same test. A latency
series that no sample gives away is also judged by short moving averages (:func:`_shift_z`),
which catch a lasting shift smaller than its noise.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from agent.engine.detect.kinds import kind_of
from agent.models import Signal, SignalKind, Stats

Z_CAP = 50.0  # beyond this a bigger z says nothing more; keeps flat-then-step series finite
MIN_BASELINE_POINTS = 3
SHARE_QUANTUM = 0.1  # the most a share of requests (an errors ratio) takes as its quantum
# Latency is where a small lasting shift is news (a network delay on one pod of several);
# averaging other kinds this way finds more harmless drift than faults.
SHIFT_KINDS = frozenset({SignalKind.LATENCY})
SHIFT_WINDOW = 5  # samples averaged when judging a lasting shift
PINNED_SHARE = 0.7  # share of identical baseline samples that marks a quantile without traffic
REGIME_T = 8.0  # how clearly an older level must differ before the baseline drops it
DRIFT = 0.02  # of its level: the least noise any series is taken to have
# The least a request latency is taken to wobble, as a share of its level, from scrape to
# scrape. A quantile that sat stiller was reading one histogram bucket's interpolation (every
# request in one bucket), and its step into the next bucket is no measure of how much slower
# the requests got: judged against 2 %, a p99 from 9.9 ms to 23 ms read as a 50-sigma rise.
LATENCY_WOBBLE = 0.1


@dataclass(frozen=True)
class SeriesFinding:
    """One anomalous (or vanished) series, in numbers the ranking and the report use."""

    signal: Signal
    kind: SignalKind
    score: float
    direction: int  # +1 up, -1 down, 0 vanished (data stopped)
    onset: float  # Unix seconds
    peak: float  # Unix seconds of the strongest persistent deviation
    end: float  # the incident's last sample; for a vanished series, when data came back
    baseline: Stats
    incident: Stats
    pinned: bool = False  # a latency quantile that sat on one value: too few requests to judge
    # What the report quotes: the value the deviation held at its peak (never a lone sample
    # when two in a row deviate), and the last sample of the run of deviating samples.
    level: float | None = None
    until: float | None = None
    run: int = 0  # samples in that run; 1 is a spike
    versus: str | None = None  # a canary comparison: what the new pods were compared with
    far_below_limit: bool = False  # CPU of a pod that stayed far under its limit (headroom)
    at_limit: bool = False  # CPU of a pod pegged at its limit through the incident (headroom)
    z: float | None = None  # the robust z where ``score`` is not it (an at-limit finding)

    @property
    def at_data_end(self) -> bool:
        """The deviation begins at the last sample: it may be the start of something or a
        glitch, and only later data can tell."""
        return self.direction != 0 and self.onset >= self.end

    @property
    def service(self) -> str:
        return self.signal.service


def _quantiles(ordered: NDArray[np.float64], qs: tuple[float, ...]) -> list[float]:
    """Linear-interpolated quantiles of an already sorted array (np.percentile is slow)."""
    last = ordered.size - 1
    out = []
    for q in qs:
        pos = q * last
        lo = int(pos)
        hi = min(lo + 1, last)
        out.append(float(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)))
    return out


def _median(values: NDArray[np.float64]) -> float:
    """The median of a non-empty, NaN-free array: np.median's overhead is most of its cost on
    series this short, and scoring takes several per series."""
    return _quantiles(np.sort(values), (0.5,))[0]


def _stats(values: NDArray[np.float64]) -> Stats:
    if values.size == 0:
        return Stats(count=0)
    p50, p95 = _quantiles(np.sort(values), (0.5, 0.95))
    return Stats(
        median=float(p50),
        p95=float(p95),
        max=float(values.max()),
        mean=float(values.mean()),
        count=int(values.size),
    )


def robust_scale(
    baseline: NDArray[np.float64],
    quantum: float = 0.0,
    stepwise: bool = False,
    drift: float = DRIFT,
) -> tuple[float, float]:
    """Median and a noise scale that is never zero, even for a constant baseline.

    ``quantum`` is the series' smallest non-zero magnitude (1 for counts); ``stepwise``
    series (versions, restart counters) treat any lasting change as significant; ``drift``
    is the least noise, as a share of the level, the series is taken to have.
    """
    lo, q1, median, q3, hi = _quantiles(np.sort(baseline), (0.01, 0.25, 0.5, 0.75, 0.99))
    mad = _median(np.abs(baseline - median))
    # The outer spread keeps bursty, heavy-tailed baselines (throttling, error counts that sit
    # near zero) from turning every ordinary burst into a huge z; for Gaussian noise it is
    # about one sigma, below the IQR estimate, so it changes nothing there.
    scale = max((q3 - q1) / 1.349, 1.4826 * mad, (hi - lo) / 5)
    steps = np.abs(np.diff(baseline))
    typical_step = _median(steps) if steps.size else 0.0
    if scale == 0 and not steps.any():
        if stepwise:
            # A version, a replica count, a restart counter: any lasting change is news.
            return float(median), 1e-3 * max(abs(float(median)), 1.0)
        # No noise to learn from: one quantum (0 -> 1 pending connection) is not yet news,
        # a few quanta are; nor is a move within the drift any level is allowed.
        return float(median), max(quantum / 3, drift * abs(float(median)), 1e-9)
    # A series that moves a lot between samples is noisier than its IQR says.
    floor = max(drift * abs(median), typical_step, 1e-9)
    return float(median), max(scale, floor)


def recent_regime(baseline: NDArray[np.float64]) -> NDArray[np.float64]:
    """The baseline's last stable stretch, when an earlier level ended inside it.

    Faults follow each other: the window before one incident can hold the tail of the
    previous one (a CPU burst that ended three minutes ago), and a median over both levels
    sits between them while their spread swamps the new fault. The split is the one that best
    separates an older level from a recent one (a two-sample t statistic whose noise comes
    from first differences, which a level shift barely moves); only a clear one counts, and
    the recent stretch keeps at least :data:`MIN_BASELINE_POINTS` samples.
    """
    n = baseline.size
    if n < MIN_BASELINE_POINTS + 2:
        return baseline
    k, weight = _splits(n)
    sums = np.cumsum(baseline)
    older = sums[k - 1] / k
    recent = (sums[-1] - sums[k - 1]) / (n - k)
    gap = (older - recent) * weight  # the t statistic times the noise, which is one number
    best = int(np.argmax(gap))
    if gap[best] <= 0:
        return baseline
    steps = np.sort(np.abs(np.diff(baseline)))
    noise = max(_quantiles(steps, (0.5,))[0] / 0.954, 1e-9)  # MAD-of-differences sigma
    if gap[best] / noise < REGIME_T:
        return baseline
    # A level, not a spike: one outlier drags a short stretch's mean as far as a level
    # shift does, but not its median.
    cut = int(k[best])
    shift = abs(_median(baseline[:cut]) - _median(baseline[cut:]))
    return baseline[cut:] if shift * weight[best] / noise >= REGIME_T else baseline


@functools.lru_cache(maxsize=64)
def _splits(n: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Where a baseline of ``n`` samples may split (2 older, MIN_BASELINE_POINTS recent at
    least) and each split's 1 / sqrt(1/k + 1/(n-k)); series in one snapshot share ``n``."""
    k = np.arange(2, n - MIN_BASELINE_POINTS + 1)
    return k, 1.0 / np.sqrt(1.0 / k + 1.0 / (n - k))


def _nan_as_zero(z: NDArray[np.float64]) -> NDArray[np.float64]:
    """``z`` with its missing samples read as 0. Every z here is clipped, so never infinite:
    np.nan_to_num's handling of infinities would be all overhead."""
    return np.where(np.isnan(z), 0.0, z)


def _persistent(z: NDArray[np.float64]) -> NDArray[np.float64]:
    """The deviation each sample keeps for two samples in a row (NaN-tolerant)."""
    if z.size < 2:
        return _nan_as_zero(z)
    a, b = z[:-1], z[1:]
    both = np.where(np.sign(a) == np.sign(b), np.sign(a) * np.minimum(np.abs(a), np.abs(b)), 0.0)
    both = _nan_as_zero(both)
    # The last sample has no successor yet: it counts at half strength, because at alert time
    # the newest sample is often all there is of the fault (the report says "at the end of
    # the data" when a finding rests on it alone).
    return np.append(both, _nan_as_zero(z[-1:]) * 0.5)


def _onset_index(z: NDArray[np.float64], peak: int, sign: int, threshold: float) -> int:
    """Start of the run of same-signed, clearly raised samples leading up to the peak.

    Missing samples (scrape gaps) neither end the run nor start it: a fault that began ten
    minutes ago keeps that onset across a missed scrape.
    """
    missing = np.isnan(z)
    above = _nan_as_zero(z * sign) >= threshold / 2
    onset = i = peak
    while i > 0 and (above[i - 1] or missing[i - 1]):
        i -= 1
        if above[i]:
            onset = i
    return onset


def score_signal(signal: Signal, split: float, threshold: float) -> SeriesFinding | None:
    """Score one series; ``None`` when it is normal or has too little data to judge."""
    ts = np.asarray(signal.timestamps, dtype=np.float64)
    values = np.array(signal.values, dtype=np.float64)  # a missing sample (None) is NaN
    in_base = ts < split
    base = values[in_base]
    base = base[~np.isnan(base)]
    inc_ts = ts[~in_base]
    inc = values[~in_base]
    if base.size < MIN_BASELINE_POINTS or inc.size == 0:
        return None
    kind = kind_of(signal)
    if kind is not SignalKind.CHANGE:
        base = recent_regime(base)
    present = ~np.isnan(inc)
    silence = _silence(inc, values[in_base])
    if silence is not None:
        first_missing, back = silence
        return SeriesFinding(
            signal,
            kind,
            Z_CAP / 2,
            0,
            float(inc_ts[first_missing]),
            float(inc_ts[first_missing]),
            float(inc_ts[min(back, inc_ts.size - 1)]),
            _stats(base),
            _stats(inc[present]),
        )
    finite = values[~np.isnan(values)]
    if finite.min() == finite.max():
        return None  # it never moved (a flat gauge, an empty histogram's constant)
    quantum = _quantum(finite)
    if kind is SignalKind.ERRORS and signal.unit == "ratio":
        # A share of requests that sat at 0 and went to 1 (every request failing) is no
        # count's "one more": its quantum is not the whole.
        quantum = min(quantum, SHARE_QUANTUM)
    median, scale = robust_scale(
        base,
        quantum,
        stepwise=kind is SignalKind.CHANGE,
        drift=LATENCY_WOBBLE if kind is SignalKind.LATENCY else DRIFT,
    )
    z = np.clip((values - median) / scale, -Z_CAP, Z_CAP)
    offset = int(in_base.sum())
    shifted = None
    if kind in SHIFT_KINDS and float(np.max(np.abs(_persistent(z[offset:])))) < threshold:
        shifted = _shift_z(z, offset, threshold)
    sustained = _persistent(z[offset:] if shifted is None else shifted[offset:])
    peak = int(np.argmax(np.abs(sustained)))
    score = float(abs(sustained[peak]))
    if score < threshold:
        return None
    sign = 1 if sustained[peak] > 0 else -1
    if shifted is None:
        onset = _onset_index(z, offset + peak, sign, threshold)
        last = _run_end(z, offset + peak, sign, threshold)
        level = _held(values, offset + peak, sign)
    else:
        onset = _change_point(z, offset, offset + peak, sign, threshold)
        last = _run_end(shifted, offset + peak, sign, threshold)
        level = float(np.nanmean(values[onset : last + 1]))
    base_median = _median(base)
    if not (level - base_median) * sign > 0:
        return None  # nothing to quote that supports the direction: not a finding
    return SeriesFinding(
        signal=signal,
        kind=kind,
        score=score,
        direction=sign,
        onset=float(ts[onset]),
        peak=float(inc_ts[peak]),
        end=float(inc_ts[-1]),
        baseline=_stats(base),
        incident=_stats(inc[present]),
        pinned=kind is SignalKind.LATENCY and (_pinned(base) or _sparse(values)),
        level=level,
        until=float(ts[last]),
        run=last - onset + 1,
    )


def _quantum(values: NDArray[np.float64]) -> float:
    """The series' smallest non-zero magnitude or step: 1 for a count, the allocation
    granularity of a memory gauge that sat still and then grew."""
    moves = np.abs(np.concatenate((values, np.diff(values))))
    moves = moves[moves > 0]
    return float(moves.min()) if moves.size else 0.0


def _run_end(z: NDArray[np.float64], peak: int, sign: int, threshold: float) -> int:
    """Last sample of the run of clearly raised samples that goes through the peak (the
    mirror of :func:`_onset_index`: missing samples neither end nor extend it)."""
    missing = np.isnan(z)
    above = _nan_as_zero(z * sign) >= threshold / 2
    last = i = peak
    while i + 1 < z.size and (above[i + 1] or missing[i + 1]):
        i += 1
        if above[i]:
            last = i
    return last


def _held(values: NDArray[np.float64], peak: int, sign: int) -> float:
    """The value the series held at its peak: the lesser deviation of the peak sample and the
    next (what :func:`_persistent` scores), the sample itself when it is the last one."""
    pair = values[peak : peak + 2]
    pair = pair[~np.isnan(pair)]
    if pair.size == 0:
        return float(values[peak])
    return float(pair.min() if sign > 0 else pair.max())


SPARSE_SHARE = 0.2


def _pinned(baseline: NDArray[np.float64]) -> bool:
    """Whether a latency quantile sat on one value for most of the baseline.

    Real request latencies vary from scrape to scrape; a quantile that repeats one value
    exactly is reading a histogram bucket bound (or a default) over next to no requests,
    and its jumps (0.005 s to 28 s: the next bucket's interpolation) say little."""
    _, counts = np.unique(baseline, return_counts=True)
    return (
        baseline.size >= MIN_BASELINE_POINTS and int(counts.max()) >= PINNED_SHARE * baseline.size
    )


def _sparse(values: NDArray[np.float64]) -> bool:
    """Whether a latency quantile has no value in many scrapes: minutes without a request, so
    the minutes with one are a quantile over a handful of requests, one slow call its p99."""
    return bool(np.isnan(values).mean() >= SPARSE_SHARE)


def _shift_z(z: NDArray[np.float64], split: int, threshold: float) -> NDArray[np.float64] | None:
    """Robust z of a centred moving average of the (clipped) per-sample z.

    An added delay on one pod of several (a few tens of ms on a jittery p99) never makes one
    sample stand out, but it moves every average of a few samples. Each sample's z is clipped
    at the threshold first, so one spike cannot carry an average, and the averages are judged
    against the spread of the baseline's own averages, which already holds the series'
    autocorrelation and slow drift. ``None`` when there is too little data on either side.
    """
    half = SHIFT_WINDOW // 2
    if split < 4 * SHIFT_WINDOW or z.size - split < 2 * SHIFT_WINDOW:
        return None
    clipped = np.clip(np.nan_to_num(z, nan=0.0), -threshold, threshold)
    smooth = np.convolve(clipped, np.ones(SHIFT_WINDOW) / SHIFT_WINDOW, mode="same")
    median, scale = robust_scale(smooth[half : split - half])
    shifted = (smooth - median) / max(scale, 0.2)
    shifted[:half] = 0.0
    shifted[-half:] = 0.0
    return np.asarray(np.clip(shifted, -Z_CAP, Z_CAP), dtype=np.float64)


def _change_point(
    z: NDArray[np.float64], split: int, peak: int, sign: int, threshold: float
) -> int:
    """Where a lasting shift most likely began (the CUSUM estimate): the start that best
    splits the samples up to ``peak`` into an unshifted part and a shifted one."""
    clipped = np.clip(np.nan_to_num(z * sign, nan=0.0), -threshold, threshold)
    level = _median(clipped[:split])
    part = clipped[split : peak + 1] - level
    shift = max(float(np.mean(part[-SHIFT_WINDOW:])), 1e-6)
    gain = np.cumsum((part - shift / 2)[::-1])[::-1]
    return split + int(np.argmax(gain))


def _longest_gap(values: NDArray[np.float64]) -> tuple[int, int]:
    """Length and start index of the longest run of missing samples."""
    missing = np.isnan(values)
    if not missing.any():
        return 0, 0
    edges = np.flatnonzero(np.diff(np.concatenate(([0], missing.astype(np.int8), [0]))))
    lengths = edges[1::2] - edges[::2]
    longest = int(np.argmax(lengths))
    return int(lengths[longest]), int(edges[::2][longest])


def _silence(
    incident: NDArray[np.float64], baseline: NDArray[np.float64]
) -> tuple[int, int] | None:
    """Where data that was reliably there stopped for a while (the target went down), and
    where it came back (the incident's length when it did not)."""
    if baseline.size == 0 or incident.size < 3 or float(np.mean(np.isnan(baseline))) > 0.1:
        return None
    gap, start = _longest_gap(incident)
    usual_gap, _ = _longest_gap(baseline)
    return (start, start + gap) if gap >= max(3, 3 * usual_gap) else None


def score_signals(signals: list[Signal], split: float, threshold: float) -> list[SeriesFinding]:
    """All anomalous series, strongest first.

    A series that stops while most of its siblings (the same pod, or the same service when it
    has no pod) keep reporting is an exporter or relabelling hiccup, not the target going
    down, so it is not a finding. (When a target dies, most of its series stop; a few, such
    as ``up`` or kube-state-metrics' series, go on.)
    """
    findings = [f for s in signals if (f := score_signal(s, split, threshold)) is not None]
    vanished = Counter(_owner(f.signal) for f in findings if f.direction == 0)
    if vanished:
        series = Counter(_owner(signal) for signal in signals)
        findings = [
            f
            for f in findings
            if f.direction != 0 or 2 * vanished[_owner(f.signal)] >= series[_owner(f.signal)]
        ]
    findings.sort(key=lambda f: (-f.score, f.onset, f.signal.series_id))
    return findings


def _owner(signal: Signal) -> tuple[str, str | None]:
    return signal.service, signal.pod
