"""One rollout incident from one seed: ``simulate_rollout(seed) -> Scenario``.

Most production incidents follow a change, and changes rarely come alone. Each incident here
is a namespace scraped every minute in which several Deployments roll out within the same
few minutes, pod by pod. In seven of nine seeds one of those rollouts ships a defect (see
``defects.py``) and is the root cause (``bad_deploy``); in the other two the rollouts are
all healthy and the fault is something else (a saturated CPU, a leaking pod, a dead
database: the main simulator's faults), so blaming whatever changed is wrong.

The ground truth names the root-cause service and fault type and, for a defective rollout,
the change (``service@to_version``); :attr:`Scenario.changes` lists every rollout as a
:class:`~agent.models.Change`, as CI/CD would report them. The steps: the namespace and its
normal behaviour (here), who rolls out when (``rollout_plan.py``), what the defect or the
fault did pod by pod (``rollout_incident.py``), the signals (``rollout_render.py``). Every
draw comes from one ``default_rng(seed)``, in that order.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from agent.changes import changes_from_signals, merge_changes
from agent.errors import UsageError
from agent.models import FaultType
from agent.snapshot import Snapshot
from evals.simulator.baseline import build_baseline
from evals.simulator.defects import DefectKind
from evals.simulator.dialects import Naming
from evals.simulator.plan import SIMULATED_FAULTS
from evals.simulator.rollout_incident import ground_truth, page, reported_changes, unfold
from evals.simulator.rollout_plan import plan_rollouts
from evals.simulator.rollout_render import Shape, render_rollout_signals
from evals.simulator.scenario import (
    MIN_SERVICES,
    SHOP_SHARE,
    Scenario,
    check_seed_and_fault,
    random_start,
    snapshot_meta,
)
from evals.simulator.shops import shop_graph
from evals.simulator.telemetry import Telemetry, Timeline, noise
from evals.simulator.topology import ServiceGraph, random_graph, replica_pods

RESOLUTION = 60
MAX_ROLLOUT_SERVICES = 30  # random graphs; every app has up to six pods with ~8 series each
INNOCENT_FAULTS = tuple(f for f in SIMULATED_FAULTS if f is not FaultType.BAD_DEPLOY)
# Seed s gets slot s % 9: the seven defects, then two incidents whose rollouts are innocent.
SLOTS: tuple[DefectKind | None, ...] = (*DefectKind, None, None)
REPORTED_SHARE = 0.75  # incidents whose rollouts CI/CD reported (the rest: telemetry only)
_REPLICAS = ((1, 2, 3, 4, 5, 6), (0.08, 0.27, 0.3, 0.17, 0.12, 0.06))
_NAMING = Naming("prometheus", {}, (0, 2), pod_level=True, units=True, kind_missing=0.0)


def rollout_graph(rng: np.random.Generator, services: int | None) -> ServiceGraph:
    """A shop or a random graph whose Deployments run 1 to 6 replicas."""
    if services is not None:
        base = random_graph(rng, services)
    elif rng.random() < SHOP_SHARE:
        base = shop_graph(rng)
    else:
        base = random_graph(rng, int(rng.integers(MIN_SERVICES, MAX_ROLLOUT_SERVICES + 1)))
    specs = []
    for spec in base.services:
        if spec.is_app:
            count = int(rng.choice(_REPLICAS[0], p=_REPLICAS[1]))
            spec = dataclasses.replace(spec, pods=replica_pods(rng, spec.name, count))
        specs.append(spec)
    return ServiceGraph(base.flavor, base.namespace, tuple(specs), base.edges)


def rollout_timeline(rng: np.random.Generator) -> Timeline:
    """One sample a minute, two to six hours."""
    length = int(rng.integers(120, 361))
    return Timeline(start=random_start(rng, RESOLUTION), resolution=RESOLUTION, length=length)


def uniform_replicas(telemetry: Telemetry, rng: np.random.Generator) -> None:
    """Replicas of one Deployment run alike: the same limits, working sets and CPU within a
    few percent of each other (the main simulator draws each pod on its own)."""
    for series in telemetry.services.values():
        if len(series.pods) < 2:
            continue
        first = series.pods[0]
        memory, cpu = float(np.nanmedian(first.memory)), float(np.nanmedian(first.cpu))
        for pod in series.pods[1:]:
            pod.memory = (
                pod.memory * memory / float(np.nanmedian(pod.memory)) * rng.uniform(0.9, 1.1)
            )
            pod.cpu = pod.cpu * cpu / float(np.nanmedian(pod.cpu)) * rng.uniform(0.85, 1.15)
            pod.cpu_limit, pod.memory_limit = first.cpu_limit, first.memory_limit
            pod.cpu = np.minimum(pod.cpu, pod.cpu_limit)
            pod.throttled = first.throttled * noise(rng, len(pod.cpu), 0.3)


def _slot(seed: int, fault: FaultType | None) -> tuple[DefectKind | None, FaultType]:
    if fault is FaultType.BAD_DEPLOY:
        return SLOTS[seed % len(DefectKind)], fault
    if fault is not None:
        return None, fault
    slot = seed % len(SLOTS)
    kind = SLOTS[slot]
    if kind is not None:
        return kind, FaultType.BAD_DEPLOY
    return None, INNOCENT_FAULTS[(seed // len(SLOTS) * 2 + slot - len(DefectKind)) % 8]


def _check(seed: int, fault: FaultType | None, services: int | None) -> None:
    check_seed_and_fault(seed, fault)
    if services is not None and not MIN_SERVICES <= services <= MAX_ROLLOUT_SERVICES:
        raise UsageError(
            f"rollout incidents take {MIN_SERVICES} to {MAX_ROLLOUT_SERVICES} services, "
            f"got {services}"
        )


def simulate_rollout(
    seed: int, fault: FaultType | None = None, services: int | None = None
) -> Scenario:
    """Simulate one rollout incident (module docstring). ``fault``: ``bad_deploy`` for a
    defective rollout (the defect by seed), another fault for innocent rollouts;
    ``services`` forces a random graph of that size."""
    chosen = FaultType(fault) if fault is not None else None
    _check(seed, chosen, services)
    kind, root_fault = _slot(seed, chosen)
    rng = np.random.default_rng(seed)
    graph = rollout_graph(rng, services)
    timeline = rollout_timeline(rng)
    telemetry = build_baseline(graph, timeline, rng)
    uniform_replicas(telemetry, rng)
    plan, fault_plan = plan_rollouts(telemetry, graph, kind, root_fault, rng)
    incident, pods = unfold(telemetry, graph, plan, fault_plan, rng)
    alert = page(graph, telemetry, incident, rng)
    shape = Shape(versions=rng.random() < 2 / 3, service_requests=rng.random() < 0.5)
    by_service = {r.service: r for r in plan.rollouts}
    signals = render_rollout_signals(graph, telemetry, pods, by_service, shape, rng)
    changes = reported_changes(list(plan.rollouts), timeline, graph.namespace)
    # What a live analysis sees: the rollouts the telemetry shows (new ReplicaSets, version
    # labels, generation and replicas steps), merged with what CI/CD reported, if it did.
    seen = changes_from_signals(signals)
    known = merge_changes(changes, seen) if rng.random() < REPORTED_SHARE else seen
    meta = snapshot_meta(
        rng,
        timeline,
        id=f"sim-rollout-{seed}",
        source=f"rca-agent simulator, rollout suite, seed {seed}",
        description=(
            f"Simulated rollout incident on {len(graph.services)} services, "
            f"{len(plan.rollouts)} rollouts, at {RESOLUTION} s resolution."
        ),
    )
    snapshot = Snapshot(
        meta=meta,
        alert=alert,
        signals=signals,
        logs=[],
        topology=graph.topology(),
        ground_truth=ground_truth(incident, plan, timeline),
        changes=known,
    )
    return Scenario(seed, snapshot, graph, telemetry, incident.plan, _NAMING, tuple(changes), plan)
