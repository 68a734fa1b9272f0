"""Harmless oddities that real incident windows are full of.

A nightly batch job's CPU burst, a deploy of an unrelated service, one-sample spikes and
scrape gaps. Red herrings are placed inside the incident window about half the time, so an
engine that blames "whatever changed near the alert" is wrong often enough to notice.
"""

from __future__ import annotations

import copy

import numpy as np

from evals.simulator.plan import FaultPlan
from evals.simulator.telemetry import Event, FloatArray, Telemetry, noise, roll_out
from evals.simulator.topology import ServiceGraph

_BATCH_JOBS = ("nightly-export", "report-rollup", "reindex", "cache-warmup", "gdpr-purge")


def _near_incident(rng: np.random.Generator, plan: FaultPlan, n: int, span: int) -> int:
    """A start index inside the incident about half the time, anywhere earlier otherwise."""
    if rng.random() < 0.5:
        low, high = max(0, plan.onset - 3), min(n - 1, plan.end + 2)
    else:
        low, high = 0, max(1, plan.onset - span)
    return int(rng.integers(low, high))


def add_red_herrings(
    telemetry: Telemetry, graph: ServiceGraph, plan: FaultPlan, rng: np.random.Generator
) -> None:
    """Put a batch burst and an unrelated deploy on services other than the faulty one."""
    others = [s for s in graph.services if s.name != plan.service and s.pods]
    if others and rng.random() < 0.55:
        _batch_burst(telemetry, others[int(rng.integers(len(others)))].name, plan, rng)
    apps = [s for s in others if s.is_app]
    if apps and rng.random() < 0.5:
        spec = apps[int(rng.integers(len(apps)))]
        n = telemetry.timeline.length
        at = _near_incident(rng, plan, n, 5)
        previous, current = roll_out(telemetry.services[spec.name], spec, at, rng)
        detail = {"previous": previous, "version": current}
        telemetry.events.append(Event(at, spec.name, "deploy", detail=detail))


def _batch_burst(
    telemetry: Telemetry, service: str, plan: FaultPlan, rng: np.random.Generator
) -> None:
    series = telemetry.services[service]
    n = telemetry.timeline.length
    span = int(rng.integers(3, 21))
    start = _near_incident(rng, plan, n, span)
    window = slice(start, min(n, start + span))
    pod = series.pods[int(rng.integers(len(series.pods)))]
    width = window.stop - window.start
    level = pod.cpu_limit * rng.uniform(0.6, 0.97) * noise(rng, width, 0.05)
    pod.cpu[window] = np.minimum(np.maximum(pod.cpu[window], level), pod.cpu_limit)
    pod.throttled[window] = np.maximum(pod.throttled[window], rng.uniform(0.05, 0.4))
    pod.memory[window] *= rng.uniform(1.05, 1.3)
    job = _BATCH_JOBS[int(rng.integers(len(_BATCH_JOBS)))]
    telemetry.events.append(Event(window.start, service, "batch_start", pod.name, {"job": job}))
    telemetry.events.append(Event(window.stop - 1, service, "batch_end", pod.name, {"job": job}))


def _spike(rng: np.random.Generator, values: FloatArray, rate: float, additive: bool) -> None:
    hits = np.asarray(rng.random(values.shape[-1]) < rate)
    if not hits.any():
        return
    if additive:
        values[..., hits] += rng.uniform(0.02, 0.2, int(hits.sum()))
    else:
        values[..., hits] *= rng.uniform(1.8, 5.0, int(hits.sum()))


def add_spikes(telemetry: Telemetry, rng: np.random.Generator) -> None:
    """One-sample spikes anywhere: a GC pause, a retry burst, a slow scrape."""
    rate = rng.uniform(0.001, 0.004)
    for series in telemetry.services.values():
        _spike(rng, series.rps, rate, additive=False)
        _spike(rng, series.latency, rate * 2, additive=False)
        _spike(rng, series.net_errors, rate, additive=False)
        _spike(rng, series.error_ratio, rate, additive=True)
        np.clip(series.error_ratio, 0, 1, out=series.error_ratio)
        for pod in series.pods:
            _spike(rng, pod.cpu, rate, additive=False)
            np.minimum(pod.cpu, pod.cpu_limit, out=pod.cpu)


def punch_gaps(telemetry: Telemetry, rng: np.random.Generator) -> None:
    """Missing scrapes: scattered single points everywhere, sometimes a short outage.

    A missed scrape loses the sample, not what the exporter counted meanwhile: the series as
    they were before are kept in ``telemetry.counted`` for the counters (``scrape.py``).
    """
    telemetry.counted = copy.deepcopy(telemetry.services)
    n = telemetry.timeline.length
    rate = rng.uniform(0.005, 0.02)
    names = list(telemetry.services)
    for name in names:
        for values in telemetry.services[name].arrays():
            values[..., rng.random(n) < rate] = np.nan
    if rng.random() < 0.3:
        name = names[int(rng.integers(len(names)))]
        start = int(rng.integers(0, n - 4))
        for values in telemetry.services[name].arrays():
            values[..., start : start + int(rng.integers(1, 5))] = np.nan
