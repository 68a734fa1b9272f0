"""One rollout incident from one seed: ``simulate_rollout(seed) -> Scenario``.

Most production incidents follow a change, and changes rarely come alone. Each incident here
is a namespace scraped every minute in which several Deployments roll out within the same
few minutes, pod by pod. In seven of nine seeds one of those rollouts ships a defect (see
``defects.py``) and is the root cause (``bad_deploy``); in the other two the rollouts are
all healthy and the fault is something else (a saturated CPU, a leaking pod, a dead
database: the main simulator's faults), so blaming whatever changed is wrong.

The ground truth names the root-cause service and fault type and, for a defective rollout,
the change (``service@to_version``); :attr:`Scenario.changes` lists every rollout as a
:class:`~agent.models.Change`, as CI/CD would report them. The order of the steps is the
order of cause and effect, and every draw comes from one ``default_rng(seed)``.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np

from agent.errors import UsageError
from agent.models import Change, ChangeKind, FaultType, GroundTruth
from agent.snapshot import Snapshot, SnapshotMeta, WindowSpec
from connectors.alertmanager import AlertmanagerWebhook
from evals.simulator.alert import build_alert, build_drop_alert
from evals.simulator.baseline import build_baseline
from evals.simulator.defects import (
    DELAYABLE,
    Context,
    Defect,
    DefectKind,
    Harm,
    RolloutPlan,
    drop_traffic,
    ship,
)
from evals.simulator.dialects import Naming
from evals.simulator.faults import inject
from evals.simulator.plan import SIMULATED_FAULTS, FaultPlan, Symptom, eligible, plan_fault
from evals.simulator.podtraffic import (
    PodEffects,
    Split,
    load_cpu,
    split_requests,
    start_up,
    traffic_splits,
)
from evals.simulator.propagation import propagate
from evals.simulator.rollout_render import Shape, render_rollout_signals
from evals.simulator.rollouts import Rollout, roll
from evals.simulator.scenario import EPOCH, MIN_SERVICES, SHOP_SHARE, Scenario
from evals.simulator.shops import shop_graph
from evals.simulator.telemetry import Telemetry, Timeline, noise
from evals.simulator.topology import ServiceGraph, ServiceSpec, random_graph, replica_pods

RESOLUTION = 60
MAX_ROLLOUT_SERVICES = 30  # random graphs; every app has up to six pods with ~8 series each
INNOCENT_FAULTS = tuple(f for f in SIMULATED_FAULTS if f is not FaultType.BAD_DEPLOY)
# Seed s gets slot s % 9: the seven defects, then two incidents whose rollouts are innocent.
SLOTS: tuple[DefectKind | None, ...] = (*DefectKind, None, None)
DELAYED_SHARE = 0.25
REPORTED_SHARE = 0.75  # incidents whose changes CI/CD reported (the rest: telemetry only)
_REPLICAS = ((1, 2, 3, 4, 5, 6), (0.08, 0.27, 0.3, 0.17, 0.12, 0.06))
_NAMING = Naming("prometheus", {}, (0, 2), pod_level=True, units=True, kind_missing=0.0)


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


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
    offset = int(rng.integers(0, 730)) * 86400 + int(rng.integers(0, 86400))
    start = EPOCH.timestamp() + offset - offset % RESOLUTION
    return Timeline(start=start, resolution=RESOLUTION, length=length)


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


def _missing_callee(graph: ServiceGraph, spec: ServiceSpec) -> list[str]:
    """Callees whose traffic visibly drops when ``spec`` stops calling them."""
    own = [c for c in graph.callees(spec.name) if graph.by_name[c].pods]
    return [c for c in own if len(graph.callers(c)) <= 2]


def _candidates(graph: ServiceGraph, kind: DefectKind) -> list[ServiceSpec]:
    apps = [s for s in graph.services if s.is_app and s.pods]
    if kind is DefectKind.WRONG_VALUES:
        return [s for s in apps if graph.callers(s.name)]
    if kind is DefectKind.SCALE_DOWN:
        return [s for s in apps if len(s.pods) >= 2]
    if kind is DefectKind.MISSING_CALL:
        return [s for s in apps if _missing_callee(graph, s)]
    return apps


def _pick(rng: np.random.Generator, items: list[ServiceSpec]) -> ServiceSpec:
    return items[int(rng.integers(len(items)))]


def _defect(
    graph: ServiceGraph, kind: DefectKind, n: int, rng: np.random.Generator
) -> tuple[ServiceSpec, Defect, int]:
    """The defective service, its defect, and when its rollout starts."""
    if not _candidates(graph, kind):
        kind = DefectKind.THROWS  # the graph has no place for this defect
    spec = _pick(rng, _candidates(graph, kind))
    start = int(n * rng.uniform(0.6, 0.85))
    delay = 0
    if kind in DELAYABLE and rng.random() < DELAYED_SHARE:
        # Minutes after the rollout ended, leaving the incident a dozen samples to show.
        delay = min(int(rng.integers(3, 26)), n - start - 24)
        delay = delay if delay >= 3 else 0
    callee = None
    if kind is DefectKind.MISSING_CALL:
        options = _missing_callee(graph, spec)
        callee = options[int(rng.integers(len(options)))]
    return spec, Defect(kind, float(rng.uniform(0.3, 1.0)), delay, callee), start


def _healthy(
    telemetry: Telemetry,
    graph: ServiceGraph,
    taken: set[str],
    count: int,
    around: int,
    spread: tuple[int, int],
    rng: np.random.Generator,
) -> list[Rollout]:
    """``count`` healthy rollouts of other Deployments, starting around sample ``around``."""
    free = [s for s in graph.services if s.is_app and s.pods and s.name not in taken]
    picks = rng.choice(len(free), min(count, len(free)), replace=False) if free else []
    n = telemetry.timeline.length
    rollouts = []
    for index in sorted(int(i) for i in picks):
        start = int(np.clip(around + rng.integers(spread[0], spread[1] + 1), 1, n - 6))
        rollouts.append(roll(telemetry, free[index], start, rng))
    return rollouts


def _noticed(telemetry: Telemetry, symptoms: dict[str, Symptom], onset: int) -> int:
    """First sample from ``onset`` on where some service's errors or p99 visibly moved."""
    n = telemetry.timeline.length
    first = n - 1
    for name, symptom in symptoms.items():
        typical = float(np.nanmedian(telemetry.services[name].latency[2])) or 1e-3
        moved = (symptom.errors > 0.01) | (np.abs(symptom.latency[2]) / typical > 0.3)
        hits = np.flatnonzero(moved[onset:])
        if hits.size:
            first = min(first, onset + int(hits[0]))
    return first if first < n - 1 else onset


@dataclasses.dataclass
class _Incident:
    plan: FaultPlan
    symptoms: dict[str, Symptom]  # what every pod of a service sees
    alert_symptoms: dict[str, Symptom]
    effects: PodEffects
    keep: frozenset[str]
    harm: Harm | None


def _defective(
    telemetry: Telemetry,
    graph: ServiceGraph,
    rollout: Rollout,
    defect: Defect,
    splits: dict[str, Split],
    effects: PodEffects,
    rng: np.random.Generator,
) -> _Incident:
    ctx = Context(telemetry, graph, rollout, splits[rollout.service], effects, defect, rng)
    harm = ship(ctx)
    drop_traffic(telemetry, harm.dropped)
    n = telemetry.timeline.length
    plan = FaultPlan(FaultType.BAD_DEPLOY, rollout.service, rollout.new_pods, harm.onset, n,
                     defect.severity)  # fmt: skip
    symptoms = propagate(graph, telemetry, plan, harm.symptom, rng)
    alerting = {**symptoms, rollout.service: harm.own}
    del symptoms[rollout.service]  # its own pods carry it (effects)
    return _Incident(plan, symptoms, alerting, effects, frozenset(), harm)


def _innocent(
    telemetry: Telemetry,
    graph: ServiceGraph,
    plan: FaultPlan,
    effects: PodEffects,
    rng: np.random.Generator,
) -> _Incident:
    """The main simulator's fault; a pod-scoped one stays on its pods."""
    symptoms = propagate(graph, telemetry, plan, inject(telemetry, graph, plan, rng), rng)
    alerting = dict(symptoms)
    keep: frozenset[str] = frozenset()
    spec = graph.by_name[plan.service]
    if plan.fault is FaultType.DEPENDENCY_OUTAGE:
        keep = frozenset({plan.service})
    elif plan.pod is not None or 0 < len(plan.pods) < len(spec.pods):
        root = symptoms.pop(plan.service)
        fraction = len(plan.pods) / len(spec.pods)
        for pod in plan.pods:
            effects.add_latency(pod, root.latency[2] * np.array([[0.6], [0.85], [1.0]]))
            effects.add_errors(pod, np.clip(root.errors / fraction, 0, 1))
    return _Incident(plan, symptoms, alerting, effects, keep, None)


def _changes(rollouts: list[Rollout], timeline: Timeline) -> list[Change]:
    return sorted(
        (
            Change(
                service=r.service,
                kind=ChangeKind.DEPLOY,
                at=_moment(timeline.time(r.start)),
                from_version=r.from_version,
                to_version=r.to_version,
                author=r.author,
                link=r.link,
                source="api",
                id=r.link.rstrip("/").rsplit("/", 1)[-1].split("=")[-1],
            )
            for r in rollouts
        ),
        key=lambda c: (c.at, c.service),
    )


def _truth(incident: _Incident, plan: RolloutPlan, timeline: Timeline) -> GroundTruth:
    fault = incident.plan
    changed = ", ".join(r.change_id for r in plan.rollouts) or "none"
    if plan.defective is not None and plan.defect is not None:
        defect = plan.defect
        delayed = f", reached {defect.delay} samples after the rollout" if defect.delay else ""
        callee = f" (skips {defect.callee})" if defect.callee else ""
        note = (
            f"defect {defect.kind.value}{callee}{delayed}; severity {defect.severity:.2f}; "
            f"new ReplicaSet {plan.defective.template_hash}; rollouts: {changed}"
        )
        change = plan.defective.change_id
    else:
        pods = ", ".join(fault.pods) or "none"
        note = f"severity {fault.severity:.2f}; pods: {pods}; innocent rollouts: {changed}"
        change = None
    return GroundTruth(
        service=fault.service,
        fault_type=fault.fault,
        onset=_moment(timeline.time(fault.onset)),
        pod=fault.pod,
        note=note,
        change=change,
    )


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
    if seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {seed}")
    if fault is not None and fault not in SIMULATED_FAULTS:
        names = ", ".join(f.value for f in SIMULATED_FAULTS)
        raise UsageError(f"cannot simulate fault {fault!r}; choose one of {names}")
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
    n = timeline.length
    telemetry = build_baseline(graph, timeline, rng)
    uniform_replicas(telemetry, rng)
    healthy_count = int(rng.choice(6, p=[0.15, 0.25, 0.2, 0.15, 0.15, 0.1]))
    if kind is not None:
        spec, defect, start = _defect(graph, kind, n, rng)
        before = len(spec.pods)
        fewer = None
        if defect.kind is DefectKind.SCALE_DOWN:
            fewer = max(1, min(before - 1, round(before * rng.uniform(0.3, 0.6))))
        defective = roll(telemetry, spec, start, rng, fewer)
        others = _healthy(telemetry, graph, {spec.name}, healthy_count, start, (-4, 4), rng)
        rollouts = [defective, *others]
        fault_plan = None
    else:
        defect, defective = None, None
        if not eligible(graph, root_fault):
            root_fault = FaultType.CPU_SATURATION
        fault_plan = plan_fault(graph, timeline, root_fault, rng)
        count = max(1, healthy_count)
        taken = {fault_plan.service}
        rollouts = _healthy(telemetry, graph, taken, count, fault_plan.onset, (-8, 2), rng)
    by_service = {r.service: r for r in rollouts}
    splits = traffic_splits(telemetry, by_service, rng)
    effects = PodEffects()
    for rollout in rollouts:
        load_cpu(telemetry.services[rollout.service], splits[rollout.service], rollout.replicas[0])
        start_up(telemetry, rollout, effects, rng)
    if defective is not None and defect is not None:
        incident = _defective(telemetry, graph, defective, defect, splits, effects, rng)
    else:
        assert fault_plan is not None
        incident = _innocent(telemetry, graph, fault_plan, effects, rng)
    pods = split_requests(
        telemetry, graph, splits, incident.symptoms, incident.effects, incident.keep, rng
    )
    plan = RolloutPlan(tuple(rollouts), defective, defect)
    alert = _alert(graph, telemetry, incident, rng)
    shape = Shape(versions=rng.random() < 2 / 3, service_requests=rng.random() < 0.5)
    signals = render_rollout_signals(graph, telemetry, pods, by_service, shape, rng)
    changes = _changes(rollouts, timeline)
    reported = rng.random() < REPORTED_SHARE
    meta = SnapshotMeta(
        id=f"sim-rollout-{seed}",
        created_at=_moment(timeline.end) + timedelta(seconds=float(rng.uniform(60, 900))),
        source=f"rca-agent simulator, rollout suite, seed {seed}",
        description=(
            f"Simulated rollout incident on {len(graph.services)} services, "
            f"{len(rollouts)} rollouts, at {RESOLUTION} s resolution."
        ),
        window=WindowSpec(start=_moment(timeline.start), end=_moment(timeline.end)),
    )
    # Unreported changes are left for the reader to find in the telemetry.
    reports = {"changes": changes} if reported else {}
    snapshot = Snapshot(
        meta=meta,
        alert=alert,
        signals=signals,
        logs=[],
        topology=graph.topology(),
        ground_truth=_truth(incident, plan, timeline),
        **reports,
    )
    return Scenario(seed, snapshot, graph, telemetry, incident.plan, _NAMING, tuple(changes), plan)


def _alert(
    graph: ServiceGraph, telemetry: Telemetry, incident: _Incident, rng: np.random.Generator
) -> AlertmanagerWebhook:
    """A traffic alert where a call went missing, else the main simulator's symptom alert,
    fired after the first visible symptom rather than the (maybe silent) onset."""
    harm, plan = incident.harm, incident.plan
    if harm is not None and harm.dropped:
        callee = next(iter(harm.dropped))
        lost = np.flatnonzero(harm.dropped[callee] > 0.2)
        onset = int(lost[0]) if lost.size else plan.onset
        return build_drop_alert(graph, telemetry, callee, onset, rng)
    noticed = _noticed(telemetry, incident.alert_symptoms, plan.onset)
    timed = dataclasses.replace(plan, onset=noticed)
    return build_alert(graph, telemetry, timed, incident.alert_symptoms, rng)
