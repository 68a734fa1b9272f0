"""Where, when and how hard a fault hits, and the shapes every fault effect is built from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.models import FaultType
from evals.simulator.telemetry import FloatArray, PodSeries, ServiceSeries, Timeline
from evals.simulator.topology import ServiceGraph, ServiceSpec

SIMULATED_FAULTS = tuple(f for f in FaultType if f is not FaultType.UNKNOWN)
# Faults that hit every pod of the service; the others may hit a single pod.
SERVICE_WIDE = frozenset(
    {
        FaultType.CODE_EXCEPTION,
        FaultType.BAD_DEPLOY,
        FaultType.DB_POOL_EXHAUSTION,
        FaultType.DISK_FULL,
        FaultType.DEPENDENCY_OUTAGE,
    }
)


@dataclass(frozen=True)
class FaultPlan:
    """Where and when: samples ``onset`` (inclusive) to ``end`` (exclusive)."""

    fault: FaultType
    service: str
    pods: tuple[str, ...]
    onset: int
    end: int
    severity: float

    @property
    def duration(self) -> int:
        return self.end - self.onset

    @property
    def pod(self) -> str | None:
        """The one affected pod, when the fault is pod-scoped and hit a single pod."""
        if self.fault in SERVICE_WIDE or len(self.pods) != 1:
            return None
        return self.pods[0]


@dataclass
class Symptom:
    """Extra latency (rows p50/p90/p99, seconds) and error ratio a service shows.

    ``family`` names what its error logs say (``timeout``, ``refused``, ``exception``, ...);
    ``peer`` is the callee the trouble came from, for caller-side messages.
    """

    latency: FloatArray
    errors: FloatArray
    family: str
    peer: str | None = None


def eligible(graph: ServiceGraph, fault: FaultType) -> list[ServiceSpec]:
    """Services on which ``fault`` makes physical sense."""
    specs = graph.services
    if fault is FaultType.DEPENDENCY_OUTAGE:
        return [s for s in specs if not s.is_app and graph.callers(s.name)]
    if fault is FaultType.DB_POOL_EXHAUSTION:
        return [s for s in specs if s.has_pool]
    if fault is FaultType.DISK_FULL:
        return [s for s in specs if s.has_disk]
    if fault in (FaultType.CODE_EXCEPTION, FaultType.BAD_DEPLOY):
        return [s for s in specs if s.is_app]
    return [s for s in specs if s.pods]


def plan_fault(
    graph: ServiceGraph, timeline: Timeline, fault: FaultType, rng: np.random.Generator
) -> FaultPlan:
    """Onset in the last 15-40% of the window; about a quarter of faults last 3-6 samples."""
    candidates = eligible(graph, fault)
    spec = candidates[int(rng.integers(len(candidates)))]
    n = timeline.length
    onset = int(n * rng.uniform(0.6, 0.85))
    room = n - onset
    draw = rng.random()
    if draw < 0.27:
        duration = int(rng.integers(3, 7))
    elif draw < 0.55:
        duration = room
    else:
        duration = int(rng.integers(7, room + 1))
    pods = spec.pods
    if fault not in SERVICE_WIDE and len(pods) > 1 and rng.random() < 0.6:
        pods = (pods[int(rng.integers(len(pods)))],)
    severity = float(rng.uniform(0.3, 1.0))
    return FaultPlan(fault, spec.name, pods, onset, onset + duration, severity)


def envelope(n: int, plan: FaultPlan, rise: int = 0, delay: int = 0) -> FloatArray:
    """0 outside the fault, 1 inside, reaching 1 over ``rise`` samples after ``delay``."""
    env = np.zeros(n)
    start = min(plan.onset + delay, plan.end - 1)
    env[start : plan.end] = 1.0
    for step in range(min(rise, plan.end - start)):
        env[start + step] = (step + 1) / (rise + 1)
    return env


def spread(fraction: float) -> FloatArray:
    """How a problem on ``fraction`` of the pods shows in p50/p90/p99: tails first."""
    p50 = fraction if fraction > 0.5 else 0.3 * fraction
    return np.array([[p50], [min(1.0, 2.5 * fraction)], [1.0]])


def typical_latency(series: ServiceSeries, onset: int) -> FloatArray:
    recent = series.latency[:, max(0, onset - 30) : onset]
    return np.asarray(np.nanmedian(recent, axis=1, keepdims=True), dtype=np.float64)


def affected_pods(series: ServiceSeries, plan: FaultPlan) -> list[PodSeries]:
    return [p for p in series.pods if p.name in plan.pods]


def pod_fraction(series: ServiceSeries, plan: FaultPlan) -> float:
    return len(plan.pods) / max(1, len(series.pods))
