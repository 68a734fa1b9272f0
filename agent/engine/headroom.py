"""How near its CPU limit a pod ran: a CPU rise that stays far below the limit is more work,
not saturation.

Where a pod reports its CPU as a share of its limit (``%``, a ``ratio``, OpenTelemetry's
``1``), that share says whether a rise could have starved it. A stress process or a hot loop
takes the pod to its limit; a pod that went from 1 % to 2 % of it is doing more work, which
its callers' traffic or a retry storm explains as well as anything wrong with it. Its CPU
findings then weigh less as a cause and do not read as CPU saturation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import replace

from agent.engine.detect.kinds import host_level
from agent.engine.detect.series import SeriesFinding
from agent.models import Signal
from agent.units import unit_of

HEADROOM = 0.3  # a pod whose CPU stayed under this share of its limit was not short of CPU
FAR_WEIGHT = 0.5  # what a CPU finding of such a pod keeps of its weight as a cause

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
        after = [
            v * per_unit
            for t, v in zip(signal.timestamps, signal.values, strict=True)
            if t >= split and v is not None
        ]
        if after:
            pod = (signal.service, signal.pod)
            peak[pod] = max(peak.get(pod, -math.inf), max(after))
    return frozenset(pod for pod, share in peak.items() if share < HEADROOM)


def mark_headroom(
    findings: list[SeriesFinding], signals: Iterable[Signal], split: float
) -> list[SeriesFinding]:
    """``findings`` with the rising CPU use of pods far below their limit marked as such.

    A pod that reports its CPU both in cores and as a share of its limit (the default
    catalog asks for both) has one quantity twice: the share is read for its headroom only,
    and its findings go, so that the same rise is not counted twice as evidence.
    """
    signals = list(signals)
    pods = far_below_limit(signals, split)
    counted = {
        (s.service, s.pod)
        for s in signals
        if _cpu_use(s) and not host_level(s) and _share_per_unit(s) is None
    }
    return [
        replace(f, far_below_limit=True) if _far(f, pods) else f
        for f in findings
        if (f.service, f.signal.pod) not in counted or _share_per_unit(f.signal) is None
    ]


def _far(f: SeriesFinding, pods: frozenset[Pod]) -> bool:
    return f.direction > 0 and (f.service, f.signal.pod) in pods and _cpu_use(f.signal)


def _cpu_use(signal: Signal) -> bool:
    return bool(_CPU.search(signal.name)) and not _THROTTLING.search(signal.name)
