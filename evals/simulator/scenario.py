"""One simulated incident from one seed: ``simulate(seed) -> Scenario``.

The order of the steps is the order of cause and effect: a healthy baseline, red herrings,
the fault at its service, symptoms travelling to callers, the logs all of that produces,
then what monitoring does to the data (spikes, missing scrapes, names, units), and finally
the alert that pages someone. Every random draw comes from one ``default_rng(seed)``, so a
seed always gives the same snapshot, down to ``created_at``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from agent.errors import UsageError
from agent.models import Change, FaultType, GroundTruth, LogRecord
from agent.snapshot import Snapshot, SnapshotMeta, WindowSpec, write_snapshot
from evals.simulator.alert import build_alert
from evals.simulator.baseline import build_baseline
from evals.simulator.defects import RolloutPlan
from evals.simulator.dialects import Naming, choose_naming
from evals.simulator.export import write_ecs_logs, write_openmetrics
from evals.simulator.faults import inject
from evals.simulator.herrings import add_red_herrings, add_spikes, punch_gaps
from evals.simulator.logs import write_logs
from evals.simulator.plan import SIMULATED_FAULTS, FaultPlan, Symptom, plan_fault
from evals.simulator.propagation import apply_symptoms, propagate
from evals.simulator.query import observe
from evals.simulator.realism import (
    Realism,
    add_previous_fault,
    client_signals,
    draw_realism,
    minute_plan,
    minute_timeline,
    onto_the_wire,
    realism_rng,
)
from evals.simulator.realistic_logs import cover, levels_in_text, share_traces
from evals.simulator.recorded import recorded_signals, recorded_topology
from evals.simulator.render import render_signals
from evals.simulator.shops import shop_graph
from evals.simulator.telemetry import FloatArray, Telemetry, Timeline
from evals.simulator.topology import ServiceGraph, random_graph

RESOLUTIONS = (1, 5, 10, 15, 30, 60)
MIN_SERVICES, MAX_SERVICES, MAX_BENCHMARK_SERVICES = 5, 60, 1000
SHOP_SHARE = 0.4
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Scenario:
    """A simulated incident: the snapshot the engine sees, and the truth behind it.

    ``graph``, ``telemetry`` (canonical units, before naming) and ``plan`` are what the raw
    exporters and the tests need; the engine only ever gets ``snapshot``. ``plan`` is the
    root cause: for a defective rollout a ``bad_deploy`` on its new pods.
    """

    seed: int
    snapshot: Snapshot
    graph: ServiceGraph
    telemetry: Telemetry
    plan: FaultPlan
    naming: Naming
    # Rollout incidents (``simulate_rollout``): every rollout as CI/CD reports it (the
    # snapshot's changes are what a live analysis sees), and which one, if any, was defective.
    changes: tuple[Change, ...] = ()
    rollouts: RolloutPlan | None = None
    # ``simulate(seed, realism=True)``: the realism features this case got, and the earlier
    # fault on the same pods when ``previous_fault`` found room for one.
    realism: Realism | None = None
    previous: FaultPlan | None = None


def fault_for_seed(seed: int) -> FaultType:
    """Seeds cycle through the fault types, so any 9 consecutive seeds cover each once."""
    return SIMULATED_FAULTS[seed % len(SIMULATED_FAULTS)]


def check_seed_and_fault(seed: int, fault: FaultType | None) -> None:
    """What both simulators refuse: a negative seed, a fault they cannot simulate."""
    if seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {seed}")
    if fault is not None and fault not in SIMULATED_FAULTS:
        names = ", ".join(f.value for f in SIMULATED_FAULTS)
        raise UsageError(f"cannot simulate fault {fault!r}; choose one of {names}")


def _check(seed: int, fault: FaultType | None, services: int | None) -> None:
    check_seed_and_fault(seed, fault)
    if services is not None and not MIN_SERVICES <= services <= MAX_BENCHMARK_SERVICES:
        raise UsageError(
            f"services must be between {MIN_SERVICES} and {MAX_SERVICES} "
            f"(up to {MAX_BENCHMARK_SERVICES} for benchmarks), got {services}"
        )


def build_graph(rng: np.random.Generator, services: int | None) -> ServiceGraph:
    if services is None:
        if rng.random() < SHOP_SHARE:
            return shop_graph(rng)
        services = int(rng.integers(MIN_SERVICES, MAX_SERVICES + 1))
    return random_graph(rng, services)


def choose_timeline(rng: np.random.Generator) -> Timeline:
    """A resolution, and a window of 120-600 points that is at most 6 hours long."""
    resolution = int(rng.choice(RESOLUTIONS))
    most = min(600, 6 * 3600 // resolution)
    least = 300 if resolution == 1 else 120
    length = int(rng.integers(least, most + 1))
    return Timeline(start=random_start(rng, resolution), resolution=resolution, length=length)


def random_start(rng: np.random.Generator, resolution: int) -> float:
    """A window start within two years of :data:`EPOCH`, on a multiple of ``resolution``."""
    offset = int(rng.integers(0, 730)) * 86400 + int(rng.integers(0, 86400))
    return EPOCH.timestamp() + offset - offset % resolution


def moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def snapshot_meta(
    rng: np.random.Generator, timeline: Timeline, *, id: str, source: str, description: str
) -> SnapshotMeta:
    """The snapshot's metadata: its window is the timeline, and it was taken one to fifteen
    minutes after the window ended (the last draw of a simulation)."""
    return SnapshotMeta(
        id=id,
        created_at=moment(timeline.end) + timedelta(seconds=float(rng.uniform(60, 900))),
        source=source,
        description=description,
        window=WindowSpec(start=moment(timeline.start), end=moment(timeline.end)),
    )


def _truth(plan: FaultPlan, timeline: Timeline, realism: Realism | None = None) -> GroundTruth:
    seconds = plan.duration * timeline.resolution
    pods = ", ".join(plan.pods) or "none"
    note = (
        f"lasts {plan.duration} samples ({seconds} s); severity {plan.severity:.2f}; pods: {pods}"
    )
    if realism is not None:
        note += f"; realism: {', '.join(realism.names()) or 'none'}"
    return GroundTruth(
        service=plan.service,
        fault_type=plan.fault,
        onset=moment(timeline.time(plan.onset)),
        pod=plan.pod,
        note=note,
    )


@dataclass(frozen=True)
class Incident:
    """The fault and everything it did, in canonical units, before anything was logged or
    scraped: what :func:`simulate` turns into logs, series and an alert."""

    graph: ServiceGraph
    plan: FaultPlan
    telemetry: Telemetry
    symptoms: dict[str, Symptom]
    # Realism profile only: the delay on the wire to each callee, and the earlier fault.
    wire: dict[str, FloatArray] | None = None
    previous: FaultPlan | None = None


def _fault(seed: int, fault: FaultType | None, services: int | None) -> FaultType:
    chosen = FaultType(fault) if fault is not None else None
    _check(seed, chosen, services)
    return chosen or fault_for_seed(seed)


def _unfold(rng: np.random.Generator, fault: FaultType, services: int | None) -> Incident:
    graph = build_graph(rng, services)
    timeline = choose_timeline(rng)
    plan = plan_fault(graph, timeline, fault, rng)
    telemetry = build_baseline(graph, timeline, rng)
    add_red_herrings(telemetry, graph, plan, rng)
    symptoms = propagate(graph, telemetry, plan, inject(telemetry, graph, plan, rng), rng)
    apply_symptoms(telemetry, plan, symptoms, rng)
    return Incident(graph, plan, telemetry, symptoms)


def _unfold_real(
    rng: np.random.Generator,
    fault: FaultType,
    services: int | None,
    realism: Realism,
    extra: np.random.Generator,
) -> Incident:
    """:func:`_unfold` under the realism profile: the main draws in the same order, the
    profile's own from ``extra``."""
    graph = build_graph(rng, services)
    if realism.minute_scrapes:
        timeline = minute_timeline(random_start(rng, 60))
        # The service, pods and severity as drawn on a long window; the timing is the profile's.
        drawn = plan_fault(graph, replace(timeline, length=120), fault, rng)
        plan = minute_plan(drawn, extra)
    else:
        timeline = choose_timeline(rng)
        plan = plan_fault(graph, timeline, fault, rng)
    telemetry = build_baseline(graph, timeline, rng)
    add_red_herrings(telemetry, graph, plan, rng)
    previous = add_previous_fault(graph, telemetry, plan, extra) if realism.previous_fault else None
    symptoms = propagate(graph, telemetry, plan, inject(telemetry, graph, plan, rng), rng)
    wire = onto_the_wire(plan, symptoms, extra) if realism.client_side else {}
    apply_symptoms(telemetry, plan, symptoms, rng)
    return Incident(graph, plan, telemetry, symptoms, wire, previous)


def unfold(seed: int, fault: FaultType | None = None, services: int | None = None) -> Incident:
    """The incident ``simulate(seed, fault, services)`` starts from, without logs or monitoring
    artefacts; cheap, for checks on the physics alone."""
    return _unfold(np.random.default_rng(seed), _fault(seed, fault, services), services)


def simulate(
    seed: int,
    fault: FaultType | None = None,
    services: int | None = None,
    realism: bool | Realism = False,
) -> Scenario:
    """Simulate one incident. ``fault`` defaults by seed; ``services`` forces a random graph;
    ``realism=True`` adds the realism profile's features drawn for this seed (``realism.py``),
    a :class:`Realism` forces those features."""
    chosen = _fault(seed, fault, services)
    rng = np.random.default_rng(seed)
    extra = realism_rng(seed)
    if isinstance(realism, Realism):
        features: Realism | None = realism
    else:
        features = draw_realism(extra) if realism else None
    if features is None:
        incident = _unfold(rng, chosen, services)
    else:
        incident = _unfold_real(rng, chosen, services, features, extra)
    graph, plan, telemetry = incident.graph, incident.plan, incident.telemetry
    logs = write_logs(graph, telemetry, plan, incident.symptoms, rng)
    if features is not None:
        logs = _realistic_logs(logs, incident, features, extra)
    add_spikes(telemetry, rng)
    punch_gaps(telemetry, rng)
    naming = choose_naming(rng)
    if naming.recorded:
        signals = recorded_signals(graph, telemetry)
        topology = recorded_topology(graph, signals)
    else:
        signals = render_signals(graph, observe(graph, telemetry), naming, rng)
        topology = graph.topology()
    if features is not None and features.client_side:
        signals += client_signals(graph, telemetry, incident.wire or {}, naming, extra)
    alert = build_alert(graph, telemetry, plan, incident.symptoms, rng)
    timeline = telemetry.timeline
    meta = snapshot_meta(
        rng,
        timeline,
        id=f"sim-{seed}",
        source=f"rca-agent simulator, seed {seed}",
        description=(
            f"Simulated incident on {len(graph.services)} services "
            f"at {timeline.resolution} s resolution."
        ),
    )
    snapshot = Snapshot(
        meta=meta,
        alert=alert,
        signals=signals,
        logs=logs,
        topology=topology,
        ground_truth=_truth(plan, timeline, features),
    )
    return Scenario(
        seed,
        snapshot,
        graph,
        telemetry,
        plan,
        naming,
        realism=features,
        previous=incident.previous,
    )


def _realistic_logs(
    logs: list[LogRecord], incident: Incident, features: Realism, rng: np.random.Generator
) -> list[LogRecord]:
    timeline = incident.telemetry.timeline
    if features.shared_traces:
        logs = share_traces(logs, incident.graph, timeline.resolution, rng)
    if features.text_levels:
        logs = levels_in_text(logs, incident.graph, rng)
    if features.partial_logs:
        onset = moment(timeline.time(incident.plan.onset))
        first = onset - timedelta(seconds=float(rng.uniform(30, 90)))
        last = onset + timedelta(seconds=float(rng.uniform(120, 240)))
        logs = cover(logs, first, last)
    return logs


def write_scenario(scenario: Scenario, out: Path, raw: bool = False) -> Path:
    """Write the snapshot directory; with ``raw``, also ``raw/metrics.om`` and ``raw/logs.ndjson``.

    The raw files are what Prometheus (``promtool tsdb create-blocks-from openmetrics``) and
    Elasticsearch (bulk NDJSON) ingest, for testing the live connectors against this incident.
    """
    root = write_snapshot(scenario.snapshot, Path(out))
    if raw:
        folder = root / "raw"
        folder.mkdir(exist_ok=True)
        write_openmetrics(scenario.graph, scenario.telemetry, folder / "metrics.om")
        write_ecs_logs(scenario.snapshot.logs, scenario.graph.namespace, folder / "logs.ndjson")
    return root
