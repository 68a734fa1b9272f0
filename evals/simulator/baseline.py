"""Normal behaviour: diurnal load flowing through the call graph, with realistic noise.

Traffic follows the time of day; downstream rates follow callers; latency and CPU follow
load. Noise levels are drawn per service independently of any fault, and a few services are
simply noisy, so that "the noisiest series is the culprit" is never a valid shortcut.
"""

from __future__ import annotations

import numpy as np

from evals.simulator.telemetry import (
    GIB,
    MIB,
    FloatArray,
    PodSeries,
    ServiceSeries,
    Telemetry,
    Timeline,
    noise,
)
from evals.simulator.topology import ServiceGraph, ServiceSpec

_CPU_LIMITS = (0.25, 0.5, 1.0, 2.0, 4.0)
_POOL_SIZES = (10, 16, 20, 32, 50)
_DISK_SIZES_GIB = (10, 20, 50, 100, 200, 500)


def diurnal_load(timeline: Timeline, rng: np.random.Generator) -> FloatArray:
    """Relative load (mean 1): a daily cycle peaking in the afternoon, plus slow wander."""
    hours = (timeline.times % 86400.0) / 3600.0
    peak = rng.uniform(13.0, 20.0)
    daily = 1.0 + rng.uniform(0.2, 0.6) * np.cos(2 * np.pi * (hours - peak) / 24.0)
    load = daily * noise(rng, timeline.length, rng.uniform(0.02, 0.05))
    return np.asarray(load / load.mean(), dtype=np.float64)


def _request_rates(graph: ServiceGraph, rng: np.random.Generator) -> dict[str, float]:
    """Mean requests per second: entries get user traffic, callees what callers send them."""
    rates: dict[str, float] = {}
    for name in graph.caller_first_order():
        spec = graph.by_name[name]
        callers = graph.callers(name)
        if not callers:
            rates[name] = rng.uniform(20, 400) if spec.tier == "entry" else rng.uniform(2, 30)
            continue
        fan = (0.8, 3.0) if spec.is_datastore else (0.2, 1.2)
        rates[name] = sum(rates[c] * rng.uniform(*fan) for c in callers)
        rates[name] = float(np.clip(rates[name], 0.5, 20000.0))
    return rates


def _median_latencies(graph: ServiceGraph, rng: np.random.Generator) -> dict[str, float]:
    """Median latency in seconds: own work plus a share of each callee's latency."""
    latency: dict[str, float] = {}
    for name in reversed(graph.caller_first_order()):
        spec = graph.by_name[name]
        own = {"datastore": (0.0003, 0.004), "external": (0.06, 0.25)}.get(spec.tier, (0.002, 0.03))
        total = rng.uniform(*own)
        total += sum(latency[c] * rng.uniform(0.2, 0.8) for c in graph.callees(name))
        latency[name] = min(total, 2.0)
    return latency


def _sawtooth(rng: np.random.Generator, n: int) -> FloatArray:
    """A JVM heap between collections: climbs, then drops at each GC."""
    period = int(rng.integers(4, 31))
    phase = ((np.arange(n) + rng.integers(period)) % period) / period
    amplitude = rng.uniform(0.1, 0.35)
    return np.asarray(1.0 - amplitude / 2 + amplitude * phase, dtype=np.float64)


def _pod(
    rng: np.random.Generator, spec: ServiceSpec, name: str, load: FloatArray, sigma: float
) -> PodSeries:
    n = len(load)
    limit = float(rng.choice(_CPU_LIMITS))
    usage = limit * rng.uniform(0.08, 0.5)
    cpu = usage * (0.25 + 0.75 * load) * noise(rng, n, min(sigma * 1.5, 0.2))
    base = rng.uniform(120, 2048) * MIB
    memory = base * (1 + 0.05 * (load - 1)) * noise(rng, n, sigma * 0.2)
    if spec.runtime == "java" and rng.random() < 0.4:
        memory *= _sawtooth(rng, n)
    memory_limit = np.ceil(base * rng.uniform(1.7, 3.0) / (64 * MIB)) * 64 * MIB
    utilisation = cpu / limit
    throttled = np.clip((utilisation - 0.55) * 1.5, 0, 1) + rng.uniform(0, 0.01) * noise(
        rng, n, 0.5
    )
    initial_restarts = float(rng.choice([0, 0, 0, 0, 0, 0, 0, 1, 2, 4]))
    return PodSeries(
        name=name,
        cpu=np.minimum(cpu, limit),
        cpu_limit=limit,
        memory=memory,
        memory_limit=float(memory_limit),
        restarts=np.full(n, initial_restarts),
        throttled=np.clip(throttled, 0, 1),
        alive=np.ones(n, dtype=bool),
    )


def _service(
    rng: np.random.Generator,
    spec: ServiceSpec,
    rate: float,
    median: float,
    load: FloatArray,
    sigma: float,
) -> ServiceSeries:
    n = len(load)
    rps = rate * load * noise(rng, n, sigma)
    shape = 1 + rng.uniform(0.1, 0.5) * (load - 1)
    p50 = median * shape * noise(rng, n, sigma * 1.5)
    p90 = p50 * rng.uniform(1.6, 3.0) * noise(rng, n, sigma)
    p99 = p90 * rng.uniform(1.5, 3.5) * noise(rng, n, sigma * 2)
    error_level = 0.0 if rng.random() < 0.2 else rng.uniform(0.0005, 0.01)
    series = ServiceSeries(
        rps=rps,
        error_ratio=np.clip(error_level * noise(rng, n, sigma * 4), 0, 1),
        latency=np.vstack([p50, np.maximum(p90, p50), np.maximum(p99, p90)]),
        net_errors=rps * rng.uniform(0.0005, 0.004) * noise(rng, n, sigma * 3),
        generation=np.full(n, float(rng.integers(2, 90))),
        up=np.ones(n),
        pods=[_pod(rng, spec, pod, load, sigma) for pod in spec.pods],
        noise=sigma,
        version=(1, int(rng.integers(0, 12)), int(rng.integers(0, 20))),
    )
    if spec.has_pool:
        _add_pool(rng, series, load, sigma)
    if spec.has_disk:
        used = rng.uniform(0.35, 0.8) + np.linspace(0, rng.uniform(0, 0.03), n)
        series.disk_used = np.clip(used + rng.normal(0, 0.001, n), 0, 0.99)
        series.disk_bytes = float(rng.choice(_DISK_SIZES_GIB)) * GIB
    return series


def _add_pool(
    rng: np.random.Generator, series: ServiceSeries, load: FloatArray, sigma: float
) -> None:
    """Connections in use follow Little's law: request rate times time holding a connection."""
    n = len(load)
    series.pool_size = int(rng.choice(_POOL_SIZES))
    busy = series.pool_size * rng.uniform(0.1, 0.45) * load * noise(rng, n, sigma * 2)
    series.pool_in_use = np.clip(np.round(busy), 0, series.pool_size)
    waits = rng.poisson(0.03 * np.clip(busy / series.pool_size, 0, 1) * 4, n)
    series.pool_pending = waits.astype(np.float64)


def build_baseline(graph: ServiceGraph, timeline: Timeline, rng: np.random.Generator) -> Telemetry:
    """Healthy telemetry for every service; about one in ten is noisy but healthy."""
    load = diurnal_load(timeline, rng)
    rates = _request_rates(graph, rng)
    medians = _median_latencies(graph, rng)
    services = {}
    for spec in graph.services:
        sigma = rng.uniform(0.03, 0.1) * (3.0 if rng.random() < 0.1 else 1.0)
        services[spec.name] = _service(rng, spec, rates[spec.name], medians[spec.name], load, sigma)
    return Telemetry(timeline=timeline, load=load, services=services)
