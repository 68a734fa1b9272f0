"""Faults where something runs out: connection pools, disk space, a whole dependency."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from agent.models import FaultType
from evals.simulator.plan import FaultPlan, Symptom, envelope, typical_latency
from evals.simulator.telemetry import Event, ServiceSeries, Telemetry, noise
from evals.simulator.topology import ServiceSpec


def _db_pool_exhaustion(
    telemetry: Telemetry, spec: ServiceSpec, plan: FaultPlan, rng: np.random.Generator
) -> Symptom:
    """Connections leak or queries hang: in-use pins at the maximum, requests queue for one."""
    series = telemetry.services[spec.name]
    n = telemetry.timeline.length
    env = envelope(n, plan, rise=int(rng.integers(0, 3)))
    size = series.pool_size
    assert series.pool_in_use is not None and series.pool_pending is not None
    series.pool_in_use = np.clip(np.round(series.pool_in_use * (1 - env) + size * env), 0, size)
    queued = env * rng.uniform(5, 60) * plan.severity * noise(rng, n, 0.2)
    series.pool_pending = np.round(series.pool_pending + queued)
    for pod in series.pods:
        pod.cpu = pod.cpu * (1 - 0.2 * env)  # threads wait instead of working
    lagged = envelope(n, plan, rise=1, delay=int(rng.random() < 0.3))
    wait = rng.uniform(0.3, 5.0) * plan.severity
    weights = np.array([[rng.uniform(0.2, 0.6)], [rng.uniform(0.6, 1.0)], [1.0]])
    errors = lagged * rng.uniform(0.02, 0.4) * plan.severity
    return Symptom(weights * wait * lagged, errors, "pool")


def _disk_full(
    telemetry: Telemetry, spec: ServiceSpec, plan: FaultPlan, rng: np.random.Generator
) -> Symptom:
    """Usage climbs to 100%, then writes fail; a clean-up frees space when the fault ends."""
    series = telemetry.services[spec.name]
    n = telemetry.timeline.length
    used = series.disk_used
    assert used is not None
    ramp = int(rng.integers(min(2, plan.duration - 1), min(plan.duration - 1, 40) + 1))
    start = float(np.nanmedian(used[max(0, plan.onset - 5) : plan.onset]))
    full_at = plan.onset + ramp
    used[plan.onset : full_at] = np.linspace(start + (0.999 - start) / ramp, 0.999, ramp)
    used[full_at : plan.end] = np.clip(0.999 + rng.normal(0, 0.0003, plan.end - full_at), 0, 1)
    if plan.end < n:
        used[plan.end :] -= used[plan.end] - rng.uniform(0.4, 0.7)
        np.clip(used, 0, 1, out=used)
    for threshold in (0.9, 0.95):
        crossed = np.flatnonzero(used[plan.onset : full_at + 1] >= threshold)
        if crossed.size:
            index = plan.onset + int(crossed[0])
            detail = {"percent": str(round(100 * used[index]))}
            telemetry.events.append(Event(index, spec.name, "disk_warn", detail=detail))
    full = np.zeros(n)
    full[full_at : plan.end] = 1.0
    errors = full * rng.uniform(0.05, 0.5) * plan.severity
    change = np.array([[0.0], [rng.uniform(0, 0.5)], [rng.uniform(0, 1.5)]])
    return Symptom(typical_latency(series, plan.onset) * change * full, errors, "disk")


def _crash_loop(series: ServiceSeries, window: slice, rng: np.random.Generator) -> None:
    """A dead StatefulSet pod: no metrics from the container, restarts ticking up."""
    for pod in series.pods:
        for values in (pod.cpu, pod.memory, pod.throttled):
            values[window] = np.nan
        ticks = np.zeros(len(pod.restarts))
        ticks[window.start : window.stop : int(rng.integers(2, 7))] = 1.0
        pod.restarts += np.cumsum(ticks)


def _dependency_outage(
    telemetry: Telemetry, spec: ServiceSpec, plan: FaultPlan, rng: np.random.Generator
) -> Symptom:
    """A datastore or external API goes away: its series vanish or read zero, its logs stop."""
    series = telemetry.services[spec.name]
    n = telemetry.timeline.length
    window = slice(plan.onset, plan.end)
    hangs = rng.random() < 0.35  # connects time out instead of being refused
    if spec.is_external:
        series.up[window] = 0.0
        series.error_ratio[window] = 1.0
        series.latency[:, window] = rng.uniform(1.0, 10.0) if hangs else 0.002
    elif rng.random() < 0.5:
        for values in series.arrays():
            values[..., window] = np.nan
    else:
        series.up[window] = 0.0
        series.rps[window] = 0.0
        series.net_errors[window] = 0.0
        series.error_ratio[window] = np.nan
        series.latency[:, window] = np.nan
        _crash_loop(series, window, rng)
    env = envelope(n, plan)
    connect = rng.uniform(1.0, 10.0) if hangs else 0.0
    latency = np.ones((3, 1)) * connect * env
    return Symptom(latency, env.copy(), "connect_timeout" if hangs else "refused")


Injector = Callable[[Telemetry, ServiceSpec, FaultPlan, np.random.Generator], Symptom]

SATURATION_INJECTORS: dict[FaultType, Injector] = {
    FaultType.DB_POOL_EXHAUSTION: _db_pool_exhaustion,
    FaultType.DISK_FULL: _disk_full,
    FaultType.DEPENDENCY_OUTAGE: _dependency_outage,
}
