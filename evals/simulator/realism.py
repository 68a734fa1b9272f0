"""The realism profile: what recorded fault-injection incidents showed that the plain simulator
does not, drawn per seed, one feature at a time (``simulate(seed, realism=True)``).

Each feature is drawn independently, so a case has some of them:

- ``client_side``: callers export a client-side latency series (what they wait for), and a
  network delay injected at a callee lands on the wire: its callers wait longer while the
  callee's own serving latency barely moves;
- ``text_levels``: log records carry no parsed level (the shipper says INFO), the level is
  only inside the text, logback style;
- ``partial_logs``: log lines exist only from 30-90 s before the onset to a few minutes after;
- ``previous_fault``: an earlier fault on the same pod ended a few minutes before the onset, so
  its tail sits in the baseline;
- ``minute_scrapes``: 1-minute resolution, 10 minutes of baseline, a fault of about 5 minutes,
  the window ending 5 minutes after the onset;
- ``shared_traces``: a request's lines carry one trace id along its call path.

Every draw of the profile comes from its own generator (``default_rng([seed, STREAM])``), so
the plain simulator's draws, and its snapshots, are exactly what they were without it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from agent.models import FaultType, Signal
from evals.simulator.dialects import Naming
from evals.simulator.faults import inject
from evals.simulator.plan import FaultPlan, Symptom, eligible
from evals.simulator.propagation import apply_symptoms, propagate
from evals.simulator.render import significant
from evals.simulator.telemetry import FloatArray, Telemetry, Timeline, noise
from evals.simulator.topology import ServiceGraph

STREAM = 16  # the profile's generator: default_rng([seed, STREAM])
SHARE = 0.5  # chance of each feature
BASELINE_MINUTES, AFTER_MINUTES = 10, 5
# Faults that real experiments inject back to back on one pod.
PREVIOUS_FAULTS = (FaultType.CPU_SATURATION, FaultType.NETWORK_LATENCY, FaultType.CODE_EXCEPTION)
# How little of a network delay the callee's own serving latency shows.
SERVER_SHARE = (0.03, 0.12)


@dataclass(frozen=True)
class Realism:
    """Which realism features one case has."""

    client_side: bool = False
    text_levels: bool = False
    partial_logs: bool = False
    previous_fault: bool = False
    minute_scrapes: bool = False
    shared_traces: bool = False

    def names(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name)]


def realism_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, STREAM])


def draw_realism(rng: np.random.Generator) -> Realism:
    """Each feature on with probability :data:`SHARE`, independently."""
    return Realism(*(bool(rng.random() < SHARE) for _ in fields(Realism)))


def minute_timeline(start: float) -> Timeline:
    """10 minutes before the onset and 5 after, one sample a minute (the onset is sample 10)."""
    return Timeline(start=start, resolution=60, length=BASELINE_MINUTES + AFTER_MINUTES + 1)


def minute_plan(plan: FaultPlan, rng: np.random.Generator) -> FaultPlan:
    """The fault starts at the 10th minute and lasts about 5 (to the window's end or less)."""
    onset = BASELINE_MINUTES
    end = min(onset + int(rng.integers(4, 7)), onset + AFTER_MINUTES + 1)
    return replace(plan, onset=onset, end=end)


def previous_plan(
    graph: ServiceGraph, timeline: Timeline, plan: FaultPlan, rng: np.random.Generator
) -> FaultPlan | None:
    """An earlier fault on the same pods, ending 2-5 minutes before ``plan`` starts and lasting
    3-5 minutes; None when the window has no room for it before the onset."""
    spec = graph.by_name[plan.service]
    faults = [f for f in PREVIOUS_FAULTS if spec in eligible(graph, f)]
    if not faults or not plan.pods:
        return None
    fault = faults[int(rng.integers(len(faults)))]
    step = timeline.resolution
    end = plan.onset - max(1, round(float(rng.uniform(120, 300)) / step))
    onset = max(1, end - max(2, round(float(rng.uniform(180, 300)) / step)))
    if end - onset < 2:
        return None
    return FaultPlan(fault, plan.service, plan.pods, onset, end, float(rng.uniform(0.4, 1.0)))


def add_previous_fault(
    graph: ServiceGraph, telemetry: Telemetry, plan: FaultPlan, rng: np.random.Generator
) -> FaultPlan | None:
    """Inject the earlier fault and its propagation into the baseline; returns it, or None."""
    earlier = previous_plan(graph, telemetry.timeline, plan, rng)
    if earlier is None:
        return None
    symptoms = propagate(graph, telemetry, earlier, inject(telemetry, graph, earlier, rng), rng)
    apply_symptoms(telemetry, earlier, symptoms, rng)
    return earlier


def onto_the_wire(
    plan: FaultPlan, symptoms: dict[str, Symptom], rng: np.random.Generator
) -> dict[str, FloatArray]:
    """A network delay at the callee: callers already carry it (``propagate`` ran with the full
    delay); the callee's own serving latency keeps only a few percent of it. Returns the delay
    on the wire to each callee (rows p50/p90/p99), for the callers' client-side series."""
    if plan.fault is not FaultType.NETWORK_LATENCY:
        return {}
    root = symptoms[plan.service]
    symptoms[plan.service] = replace(root, latency=root.latency * rng.uniform(*SERVER_SHARE))
    return {plan.service: root.latency}


CLIENT_NAMES = {
    "prometheus": ("http_client_request_duration_seconds:p90", "s", 1.0),
    "opentelemetry": ("http.client.duration.p90", "ms", 1000.0),
    "datadog": ("trace.http.client.request.duration.by.service.90p", "s", 1.0),
    "rcaeval": ("client-latency-90", "", 1.0),
}


def client_signals(
    graph: ServiceGraph,
    telemetry: Telemetry,
    wire: dict[str, FloatArray],
    naming: Naming,
    rng: np.random.Generator,
) -> list[Signal]:
    """Per calling service, the p90 of what its outbound calls wait for: its callees' serving
    p90 plus any delay on the wire to them, plus its own client overhead, with noise."""
    name, unit, scale = CLIENT_NAMES[naming.dialect]
    timeline = telemetry.timeline
    n = timeline.length
    signals = []
    for spec in graph.services:
        callees = [c for c in graph.callees(spec.name) if c in telemetry.services]
        if not callees or spec.is_external:
            continue
        waits = []
        for callee in callees:
            p90 = telemetry.services[callee].latency[1].copy()
            fill = float(np.nanmedian(p90)) if np.isfinite(p90).any() else 0.05
            p90 = np.where(np.isfinite(p90), p90, fill)
            if callee in wire:
                p90 = p90 + wire[callee][1]
            waits.append(p90)
        overhead = float(rng.uniform(0.001, 0.01))
        series = (np.mean(waits, axis=0) + overhead) * noise(rng, n, 0.05)
        signals.append(
            Signal(
                service=spec.name,
                name=name,
                kind=None if rng.random() < naming.kind_missing else "latency",
                unit=unit if naming.units else "",
                resolution_s=float(timeline.resolution),
                timestamps=timeline.times.tolist(),
                values=significant(series * scale),
            )
        )
    return signals
