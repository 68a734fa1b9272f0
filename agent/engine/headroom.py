"""How near its CPU limit a pod ran: a CPU rise that stays far below the limit is more work,
not saturation; a pod pegged at its limit is starved, whatever the rise's z-score.

Where a pod reports its CPU as a share of its limit (``%``, a ``ratio``, OpenTelemetry's
``1``), that share says whether a rise could have starved it. A stress process or a hot loop
takes the pod to its limit; a pod that went from 1 % to 2 % of it is doing more work, which
its callers' traffic or a retry storm explains as well as anything wrong with it. Its CPU
findings then weigh less as a cause and do not read as CPU saturation.

The other end is what an SRE looks at first: a pod whose CPU ran at its limit through the
incident, having run below it before, is short of CPU, and its own latency and errors are
what that does to it. Its CPU is a finding even where a noisy baseline keeps the rise's
z-score under the threshold, and it reads as CPU saturation (``at_limit``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import replace

from agent.engine.detect.kinds import host_level
from agent.engine.detect.series import SeriesFinding, score_signal
from agent.models import Signal
from agent.units import unit_of

HEADROOM = 0.3  # a pod whose CPU stayed under this share of its limit was not short of CPU
FAR_WEIGHT = 0.5  # what a CPU finding of such a pod keeps of its weight as a cause
AT_LIMIT = 0.85  # a pod at this share of its CPU limit or above is pegged there
AT_LIMIT_S = 120.0  # in a row, this long at least: a minute at the limit is a burst

_SHARE_UNITS = {"%": 100.0, "percent": 100.0, "ratio": 1.0, "1": 1.0, "percentunit": 1.0}
_CPU = re.compile(r"cpu", re.IGNORECASE)
_THROTTLING = re.compile(r"throttl", re.IGNORECASE)  # a share of periods, not of the limit

Pod = tuple[str, str | None]


def _share_per_unit(signal: Signal) -> float | None:
    """What one unit of the series is as a share of the CPU limit; ``None`` unless the series
    is a pod's CPU use as a share of its limit."""
    if not _cpu_use(signal) or host_level(signal):
        return None
    scale = _SHARE_UNITS.get(unit_of(signal.name, signal.unit).lower())
    return None if scale is None else 1.0 / scale


def far_below_limit(signals: Iterable[Signal], split: float) -> frozenset[Pod]:
    """Pods whose CPU, as a share of their limit, stayed under :data:`HEADROOM` through the
    incident (from ``split`` on) in every such series they report."""
    peak: dict[Pod, float] = {}
    for signal in signals:
        per_unit = _share_per_unit(signal)
        if per_unit is None:
            continue
        after = [v * per_unit for _, v in signal.points(split)]
        if after:
            pod = (signal.service, signal.pod)
            peak[pod] = max(peak.get(pod, -math.inf), max(after))
    return frozenset(pod for pod, share in peak.items() if share < HEADROOM)


def pegged(
    signals: Iterable[Signal], split: float, fired: float | None = None
) -> dict[Pod, Signal]:
    """Pods whose CPU ran at :data:`AT_LIMIT` of their limit or above for :data:`AT_LIMIT_S`
    in a row (samples times the resolution) from ``split`` on, having run below it through
    most of the baseline, each with its share-of-limit series.

    Where only an alert dates the incident (``fired``), the run must last until a sample
    before the alert fired or later: a pod pegged by an earlier incident that had ended by
    then is that incident's.
    """
    found: dict[Pod, Signal] = {}
    for signal in signals:
        per_unit = _share_per_unit(signal)
        if per_unit is None:
            continue
        before = [v * per_unit for t, v in signal.points() if t < split]
        after = [(t, v * per_unit) for t, v in signal.points(split)]
        if before and sorted(before)[len(before) // 2] < AT_LIMIT and _held(after, signal, fired):
            found[(signal.service, signal.pod)] = signal
    return found


def _held(after: list[tuple[float, float]], signal: Signal, fired: float | None) -> bool:
    """A run of samples at the limit long enough, and (with an alert) lasting until it fired."""
    step = signal.resolution_s or 60.0
    since = -math.inf if fired is None else fired - step
    run = 0
    for t, share in after:
        run = run + 1 if share >= AT_LIMIT else 0
        if run * step >= AT_LIMIT_S and t >= since:
            return True
    return False


def mark_headroom(
    findings: list[SeriesFinding],
    signals: Iterable[Signal],
    split: float,
    threshold: float,
    fired: float | None = None,
) -> list[SeriesFinding]:
    """``findings`` with the rising CPU use of pods far below their limit marked as such, and
    that of pods pegged at it (:func:`pegged`) read from their share of the limit.

    A pod that reports its CPU both in cores and as a share of its limit (the default
    catalog asks for both) has one quantity twice, and it counts once: from its share where
    the pod ran pegged at its limit, else from its other series, the share being read for
    its headroom only.
    """
    signals = list(signals)
    far = far_below_limit(signals, split)
    at_limit = pegged(signals, split, fired)
    counted = {
        (s.service, s.pod)
        for s in signals
        if _cpu_use(s) and not host_level(s) and _share_per_unit(s) is None
    }
    kept: list[SeriesFinding] = []
    for f in findings:
        pod = (f.service, f.signal.pod)
        own_cpu = _cpu_use(f.signal) and not host_level(f.signal)
        if own_cpu and (pod in at_limit or (pod in counted and _share_per_unit(f.signal))):
            continue  # read once: below from the share where pegged, else from the other
        kept.append(replace(f, far_below_limit=True) if _far(f, far) else f)
    for share in at_limit.values():
        found = score_signal(share, split, 0.0)
        if found is not None and found.direction > 0:
            score = max(found.score, threshold)  # a finding for being at the limit
            kept.append(replace(found, score=score, z=found.score, at_limit=True))
    kept.sort(key=lambda f: (-f.score, f.onset, f.signal.series_id))
    return kept


def _far(f: SeriesFinding, pods: frozenset[Pod]) -> bool:
    return f.direction > 0 and (f.service, f.signal.pod) in pods and _cpu_use(f.signal)


def _cpu_use(signal: Signal) -> bool:
    return bool(_CPU.search(signal.name)) and not _THROTTLING.search(signal.name)
