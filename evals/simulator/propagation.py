"""How a fault's symptoms travel upstream: every caller, transitively, sees part of them.

Each call edge attenuates or amplifies: a caller that calls the faulty service in a loop, or
retries, or aggregates many paths (an entry service) can show a larger anomaly than the
faulty service itself, which is exactly what makes "biggest anomaly wins" fail. Lag behind
the faulty service is 0 to 2 samples, the delay of rate windows and scrapes.
"""

from __future__ import annotations

import numpy as np

from agent.models import FaultType
from evals.simulator.plan import FaultPlan, Symptom
from evals.simulator.telemetry import FloatArray, Telemetry, noise
from evals.simulator.topology import ServiceGraph

# What a direct caller's error logs say when the faulty service misbehaves.
_DIRECT_FAMILY = {
    FaultType.CPU_SATURATION: "timeout",
    FaultType.MEMORY_LEAK: "upstream_5xx",
    FaultType.NETWORK_LATENCY: "timeout",
    FaultType.PACKET_LOSS: "reset",
    FaultType.CODE_EXCEPTION: "upstream_5xx",
    FaultType.BAD_DEPLOY: "upstream_5xx",
    FaultType.DB_POOL_EXHAUSTION: "timeout",
    FaultType.DISK_FULL: "upstream_5xx",
}


def _shift(values: FloatArray, samples: int) -> FloatArray:
    if samples <= 0:
        return values
    shifted = np.zeros_like(values)
    shifted[..., samples:] = values[..., :-samples]
    return shifted


def _edge_weights(rng: np.random.Generator) -> tuple[float, float]:
    """(latency, error) gain of one call edge; above 1 for loops, retries and fan-in."""
    latency = rng.uniform(1.1, 2.5) if rng.random() < 0.3 else rng.uniform(0.3, 1.0)
    errors = rng.uniform(1.1, 2.0) if rng.random() < 0.35 else rng.uniform(0.2, 0.9)
    return latency, errors


def _timeouts(telemetry: Telemetry, callee: str, extra: FloatArray, headroom: float) -> FloatArray:
    """Extra share of calls that exceed the caller's client timeout, which is set at
    ``headroom`` times the callee's usual p99 (and never below 100 ms)."""
    p99 = np.nan_to_num(telemetry.services[callee].latency[2])
    limit = max(0.1, headroom * float(np.nanmedian(telemetry.services[callee].latency[2])))

    def share(values: FloatArray) -> FloatArray:
        return np.asarray(np.clip((values - limit) / limit, 0, 1) * 0.5, dtype=np.float64)

    return share(p99 + extra[2]) - share(p99)


def _caller_family(plan: FaultPlan, root: Symptom, callee: str, symptom: Symptom) -> str:
    if callee == plan.service:
        if plan.fault is FaultType.DEPENDENCY_OUTAGE:
            return root.family
        return _DIRECT_FAMILY[plan.fault]
    slow = float(np.max(symptom.latency[2], initial=0.0)) > 0.5
    return "timeout" if slow else "upstream_5xx"


def propagate(
    graph: ServiceGraph,
    telemetry: Telemetry,
    plan: FaultPlan,
    root: Symptom,
    rng: np.random.Generator,
) -> dict[str, Symptom]:
    """Symptoms of the faulty service and of every service that (transitively) calls it."""
    symptoms = {plan.service: root}
    lags = {plan.service: 0}
    for name in graph.upstream_order(plan.service)[1:]:
        sources = [c for c in graph.callees(name) if c in symptoms]
        hops = {c: int(rng.random() < 0.3) for c in sources}
        lags[name] = min(2, max(lags[c] + hops[c] for c in sources))
        latency = np.zeros_like(root.latency)
        errors = np.zeros_like(root.errors)
        strongest, best = sources[0], -1.0
        for callee in sources:
            gain_latency, gain_errors = _edge_weights(rng)
            upstream = symptoms[callee]
            delay = lags[name] - lags[callee]
            carried = _shift(upstream.latency, delay) * gain_latency
            failed = _shift(upstream.errors, delay) * gain_errors
            failed += _timeouts(telemetry, callee, carried, rng.uniform(2.0, 10.0))
            latency += carried
            errors += failed
            if float(failed.sum() + carried[2].sum()) > best:
                strongest, best = callee, float(failed.sum() + carried[2].sum())
        family = _caller_family(plan, root, strongest, symptoms[strongest])
        symptoms[name] = Symptom(latency, np.clip(errors, 0, 1), family, strongest)
    return symptoms


def apply_symptoms(
    telemetry: Telemetry, plan: FaultPlan, symptoms: dict[str, Symptom], rng: np.random.Generator
) -> None:
    """Add the symptoms to each service's latency and error ratio, with the service's noise.

    A dependency outage already wrote the dead service's own series; only callers change.
    """
    n = telemetry.timeline.length
    for name, symptom in symptoms.items():
        if name == plan.service and plan.fault is FaultType.DEPENDENCY_OUTAGE:
            continue
        series = telemetry.services[name]
        jitter = noise(rng, n, series.noise)
        latency = np.maximum(series.latency + symptom.latency * jitter, 0.3 * series.latency)
        series.latency = np.maximum.accumulate(latency, axis=0)  # keep p50 <= p90 <= p99
        series.error_ratio = np.clip(series.error_ratio + symptom.errors * jitter, 0, 1)
