"""Recurring incidents: a stream in which some incidents repeat an earlier one's cause.

On call, the same fault comes back: the same service's pool runs dry again a month later,
under other traffic, with other pods, while the call graph has moved on a little. This
stream models that for the incident-memory benchmark (``python -m evals.recurring``):

- a few *systems* (call graphs drawn once per system from the stream's seed);
- each incident happens in one system, on that system's graph with fresh pods (a new
  ReplicaSet) and, half of the time, one call edge dropped (topology drifts);
- about ``repeat_share`` of the incidents after the first few repeat the cause of an earlier
  incident in the same system, its *twin*: the same fault type at the same service, hitting
  as hard (severity), for as long and as early (as shares of the window) and as many pods,
  because a failure mode that comes back tends to come back the same way; the others draw a
  new cause, as :func:`evals.simulator.simulate` does;
- every incident has its own noise, window length, resolution, metric naming, alert, pods
  and absolute time (its own random generator), so a twin is never a copy.

The engine sees only ``scenario.snapshot`` (ground truth stripped by the runner).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from agent.models import FaultType
from agent.snapshot import Snapshot
from evals.simulator.alert import build_alert
from evals.simulator.baseline import build_baseline
from evals.simulator.dialects import choose_naming
from evals.simulator.faults import inject
from evals.simulator.herrings import add_red_herrings, add_spikes, punch_gaps
from evals.simulator.logs import write_logs
from evals.simulator.plan import SERVICE_WIDE, SIMULATED_FAULTS, FaultPlan, eligible, plan_fault
from evals.simulator.propagation import apply_symptoms, propagate
from evals.simulator.query import observe
from evals.simulator.recorded import recorded_signals, recorded_topology
from evals.simulator.render import render_signals
from evals.simulator.scenario import (
    Scenario,
    _truth,
    build_graph,
    choose_timeline,
    snapshot_meta,
)
from evals.simulator.telemetry import Timeline
from evals.simulator.topology import ServiceGraph, replica_pods

WARMUP = 5  # incidents before the first repeat: something to repeat


@dataclass(frozen=True)
class Recurring:
    """One incident of the stream; ``twin`` is the index of the earlier incident whose cause
    it repeats (None: a new cause, though it may match an earlier one by chance)."""

    index: int
    system: int
    scenario: Scenario
    twin: int | None

    @property
    def cause(self) -> tuple[int, str, FaultType]:
        plan = self.scenario.plan
        return self.system, plan.service, plan.fault


def _drift(graph: ServiceGraph, keep: str, rng: np.random.Generator) -> ServiceGraph:
    """The system's graph as it is today: new pods everywhere; half of the time one call
    edge (not touching ``keep``, and whose callee keeps another caller) is gone."""
    specs = tuple(
        replace(s, pods=replica_pods(rng, s.name, max(1, len(s.pods) + int(rng.integers(-1, 2)))))
        if s.is_app and s.pods
        else s
        for s in graph.services
    )
    edges = list(graph.edges)
    if rng.random() < 0.5:
        callers = {b: sum(1 for _, c in edges if c == b) for _, b in edges}
        droppable = [e for e in edges if keep not in e and callers[e[1]] > 1]
        if droppable:
            edges.remove(droppable[int(rng.integers(len(droppable)))])
    return ServiceGraph(graph.flavor, graph.namespace, specs, tuple(edges))


def _cause(graph: ServiceGraph, rng: np.random.Generator) -> tuple[str, FaultType]:
    while True:
        fault = SIMULATED_FAULTS[int(rng.integers(len(SIMULATED_FAULTS)))]
        specs = eligible(graph, fault)
        if specs:
            return specs[int(rng.integers(len(specs)))].name, fault


@dataclass(frozen=True)
class Shape:
    """How a fault hit, as shares of the window: what a twin repeats."""

    onset: float
    duration: float
    severity: float
    single_pod: bool


def _plan(
    graph: ServiceGraph,
    timeline: Timeline,
    service: str,
    fault: FaultType,
    shape: Shape | None,
    rng: np.random.Generator,
) -> FaultPlan:
    drawn = plan_fault(graph, timeline, fault, rng)
    pods = graph.by_name[service].pods
    single = shape.single_pod if shape is not None else rng.random() < 0.6
    if fault not in SERVICE_WIDE and len(pods) > 1 and single:
        pods = (pods[int(rng.integers(len(pods)))],)
    plan = replace(drawn, service=service, pods=pods)
    if shape is None:
        return plan
    n = timeline.length
    onset = min(n - 3, int(shape.onset * n))
    end = min(n, onset + max(3, int(shape.duration * n)))
    return replace(plan, onset=onset, end=end, severity=shape.severity)


def shape_of(plan: FaultPlan, timeline: Timeline) -> Shape:
    n = timeline.length
    return Shape(plan.onset / n, plan.duration / n, plan.severity, len(plan.pods) == 1)


def _scenario(
    seed: int,
    graph: ServiceGraph,
    service: str,
    fault: FaultType,
    shape: Shape | None,
    rng: np.random.Generator,
) -> Scenario:
    """One incident of ``fault`` at ``service`` on ``graph``, as :func:`simulate` builds it."""
    timeline = choose_timeline(rng)
    plan = _plan(graph, timeline, service, fault, shape, rng)
    telemetry = build_baseline(graph, timeline, rng)
    add_red_herrings(telemetry, graph, plan, rng)
    symptoms = propagate(graph, telemetry, plan, inject(telemetry, graph, plan, rng), rng)
    apply_symptoms(telemetry, plan, symptoms, rng)
    logs = write_logs(graph, telemetry, plan, symptoms, rng)
    add_spikes(telemetry, rng)
    punch_gaps(telemetry, rng)
    naming = choose_naming(rng)
    if naming.recorded:
        signals = recorded_signals(graph, telemetry)
        topology = recorded_topology(graph, signals)
    else:
        signals = render_signals(graph, observe(graph, telemetry), naming, rng)
        topology = graph.topology()
    alert = build_alert(graph, telemetry, plan, symptoms, rng)
    meta = snapshot_meta(
        rng,
        timeline,
        id=f"recurring-{seed}",
        source=f"rca-agent simulator, recurring stream, incident seed {seed}",
        description=f"Simulated incident on {len(graph.services)} services.",
    )
    snapshot = Snapshot(
        meta=meta,
        alert=alert,
        signals=signals,
        logs=logs,
        topology=topology,
        ground_truth=_truth(plan, timeline),
    )
    return Scenario(seed, snapshot, graph, telemetry, plan, naming)


def recurring_stream(
    seed: int, count: int, repeat_share: float = 0.3, systems: int = 3
) -> Iterator[Recurring]:
    """``count`` incidents in order, one at a time (each holds its telemetry); about
    ``repeat_share`` of them after the first :data:`WARMUP` repeat an earlier incident's
    cause in the same system."""
    plan_rng = np.random.default_rng(seed)
    graphs = [build_graph(np.random.default_rng([seed, s]), None) for s in range(systems)]
    causes: list[tuple[int, str, FaultType, Shape]] = []
    for index in range(count):
        rng = np.random.default_rng([seed, systems, index])
        twin: int | None = None
        shape: Shape | None = None
        if index >= WARMUP and plan_rng.random() < repeat_share:
            twin = int(plan_rng.integers(index))
            system, service, fault, shape = causes[twin]
        else:
            system = int(plan_rng.integers(systems))
            service, fault = _cause(graphs[system], plan_rng)
        graph = _drift(graphs[system], service, rng)
        scenario = _scenario(seed * 100_000 + index, graph, service, fault, shape, rng)
        causes.append(
            (system, service, fault, shape_of(scenario.plan, scenario.telemetry.timeline))
        )
        yield Recurring(index, system, scenario, twin)
