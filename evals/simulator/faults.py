"""Fault injection: what each fault does to the faulty service's own series.

The cause signal moves first, at the onset (CPU, memory, pool, disk, retransmits, a deploy, a
vanished dependency); the service's own latency and errors follow in the same or the next
sample. What callers see is worked out by :mod:`evals.simulator.propagation` from the
:class:`~evals.simulator.plan.Symptom` returned here. Pool, disk and outage faults live in
:mod:`evals.simulator.saturation`.
"""

from __future__ import annotations

import numpy as np

from agent.models import FaultType
from evals.simulator.plan import (
    FaultPlan,
    Symptom,
    affected_pods,
    envelope,
    pod_fraction,
    spread,
    typical_latency,
)
from evals.simulator.saturation import SATURATION_INJECTORS, Injector
from evals.simulator.telemetry import Event, Telemetry, noise, roll_out
from evals.simulator.topology import ServiceGraph, ServiceSpec


def _cpu_saturation(
    telemetry: Telemetry, spec: ServiceSpec, plan: FaultPlan, rng: np.random.Generator
) -> Symptom:
    series = telemetry.services[spec.name]
    n = telemetry.timeline.length
    env = envelope(n, plan, rise=int(rng.integers(0, 2)))
    for pod in affected_pods(series, plan):
        near_limit = pod.cpu_limit * rng.uniform(0.9, 0.99) * (1 - np.abs(rng.normal(0, 0.02, n)))
        pod.cpu = np.maximum(pod.cpu, pod.cpu * (1 - env) + near_limit * env)
        stalled = env * rng.uniform(0.3, 0.85) * noise(rng, n, 0.1)
        pod.throttled = np.clip(np.maximum(pod.throttled, stalled), 0, 1)
    lagged = envelope(n, plan, delay=int(rng.integers(0, 2)))
    fraction = pod_fraction(series, plan)
    slowdown = typical_latency(series, plan.onset) * rng.uniform(0.5, 4.0) * plan.severity
    latency = spread(fraction) * slowdown * lagged
    errors = lagged * rng.uniform(0.0, 0.05) * fraction * plan.severity
    return Symptom(latency, errors, "server_timeout")


def _memory_leak(
    telemetry: Telemetry, spec: ServiceSpec, plan: FaultPlan, rng: np.random.Generator
) -> Symptom:
    """Memory climbs to the limit, the container is OOM-killed, restarts and climbs again."""
    series = telemetry.services[spec.name]
    n = telemetry.timeline.length
    ramp = int(rng.integers(min(2, plan.duration - 1), min(plan.duration - 1, 60) + 1))
    pressure, crashes = np.zeros(n), np.zeros(n)
    for pod in affected_pods(series, plan):
        start = float(np.nanmedian(pod.memory[max(0, plan.onset - 10) : plan.onset + 1]))
        step = (pod.memory_limit - start) / ramp
        level = start
        for i in range(plan.onset, plan.end):
            level += step * rng.uniform(0.8, 1.2)
            if level >= pod.memory_limit:
                level = start * rng.uniform(0.5, 0.7)
                pod.restarts[i:] += 1
                crashes[i] = 1.0
                telemetry.events.append(Event(i, spec.name, "oom", pod.name))
            pod.memory[i] = level * (1 + rng.normal(0, 0.004))
            heat = np.clip((level / pod.memory_limit - 0.8) / 0.2, 0, 1)
            pressure[i] = max(pressure[i], heat)
    fraction = pod_fraction(series, plan)
    after_crash = np.concatenate([[0.0], crashes[:-1]]) * 0.4
    failing = (crashes + after_crash) * rng.uniform(0.2, 0.6) * fraction
    errors = np.clip(failing + pressure * 0.02 * plan.severity, 0, 1)
    gc_pauses = pressure * rng.uniform(0.5, 3.0) + crashes * rng.uniform(1.0, 3.0)
    latency = spread(fraction) * typical_latency(series, plan.onset) * gc_pauses
    return Symptom(latency, errors, "oom")


def _network_latency(
    telemetry: Telemetry, spec: ServiceSpec, plan: FaultPlan, rng: np.random.Generator
) -> Symptom:
    """Added delay on every packet: all percentiles shift, nothing else on the service moves."""
    series = telemetry.services[spec.name]
    n = telemetry.timeline.length
    fraction = pod_fraction(series, plan)
    weights = np.ones((3, 1)) if fraction == 1 else spread(fraction)
    latency = weights * rng.uniform(0.1, 0.5) * envelope(n, plan)
    return Symptom(latency, np.zeros(n), "server_timeout")


def _packet_loss(
    telemetry: Telemetry, spec: ServiceSpec, plan: FaultPlan, rng: np.random.Generator
) -> Symptom:
    """Drops force retransmits and resets: errors, and tail latency from retransmit timeouts."""
    series = telemetry.services[spec.name]
    n = telemetry.timeline.length
    env = envelope(n, plan)
    fraction = pod_fraction(series, plan)
    series.net_errors = series.net_errors * (1 + env * rng.uniform(10, 80) * fraction)
    series.rps = series.rps * (1 + env * rng.uniform(0.0, 0.2))  # client retries
    errors = env * rng.uniform(0.02, 0.3) * plan.severity * fraction
    added = np.array(
        [[rng.uniform(0.002, 0.03)], [rng.uniform(0.05, 0.3)], [rng.uniform(0.2, 1.0)]]
    )
    latency = spread(fraction) * added * env * max(plan.severity, 0.5)
    return Symptom(latency, errors, "reset")


def _code_exception(
    telemetry: Telemetry, spec: ServiceSpec, plan: FaultPlan, rng: np.random.Generator
) -> Symptom:
    """A code path throws: 5xx at once, requests that fail fast even lower the median."""
    series = telemetry.services[spec.name]
    n = telemetry.timeline.length
    env = envelope(n, plan)
    errors = env * rng.uniform(0.05, 0.6) * plan.severity
    change = np.array([[rng.uniform(-0.3, 0.05)], [rng.uniform(-0.1, 0.3)], [rng.uniform(0, 0.8)]])
    latency = typical_latency(series, plan.onset) * change * env
    series.rps = series.rps * (1 + env * rng.uniform(0.0, 0.25))
    return Symptom(latency, errors, "exception")


def _bad_deploy(
    telemetry: Telemetry, spec: ServiceSpec, plan: FaultPlan, rng: np.random.Generator
) -> Symptom:
    """A rollout at the onset, then errors with templates never seen before; rolled back at end."""
    series = telemetry.services[spec.name]
    n = telemetry.timeline.length
    before = series.version
    previous, current = roll_out(series, spec, plan.onset, rng)
    telemetry.events.append(
        Event(plan.onset, spec.name, "deploy", detail={"previous": previous, "version": current})
    )
    if plan.end < n:
        undo = roll_out(series, spec, plan.end, rng, version=before)
        detail = {"previous": undo[0], "version": undo[1]}
        telemetry.events.append(Event(plan.end, spec.name, "deploy", detail=detail))
    env = envelope(n, plan, rise=int(rng.integers(0, 2)), delay=int(rng.integers(0, 2)))
    errors = env * rng.uniform(0.05, 0.5) * plan.severity
    change = np.array([[rng.uniform(0, 0.3)], [rng.uniform(0, 0.8)], [rng.uniform(0, 2.0)]])
    latency = typical_latency(series, plan.onset) * change * env * plan.severity
    return Symptom(latency, errors, "regression")


def inject(
    telemetry: Telemetry, graph: ServiceGraph, plan: FaultPlan, rng: np.random.Generator
) -> Symptom:
    """Apply the fault's cause to the faulty service; return the symptom it causes there."""
    injectors: dict[FaultType, Injector] = {
        FaultType.CPU_SATURATION: _cpu_saturation,
        FaultType.MEMORY_LEAK: _memory_leak,
        FaultType.NETWORK_LATENCY: _network_latency,
        FaultType.PACKET_LOSS: _packet_loss,
        FaultType.CODE_EXCEPTION: _code_exception,
        FaultType.BAD_DEPLOY: _bad_deploy,
        **SATURATION_INJECTORS,
    }
    return injectors[plan.fault](telemetry, graph.by_name[plan.service], plan, rng)
