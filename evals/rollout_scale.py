"""A large rollout snapshot for timing ``analyze()``: many pods, many changes in the window.

``pods`` running pods over ``pods // 5`` services (5 replicas each, a random call tree),
3 hours at 1-minute scrapes; ``changes`` of the services roll out pod by pod in the same
20 minutes (new ReplicaSet, new pod names, a ``version`` label), one of them defective (its
new pods throw 20 % 5xx, its callers fail too). Each pod has six series (request rate, 5xx
ratio, p50 and p99 latency, CPU, working set); each service a generation series. Built in
memory; see :func:`evals.bench_changes.main` (``--pods``) for the timing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from agent.models import Change, ChangeKind, Edge, Signal, SignalKind, Topology
from agent.snapshot import Snapshot, SnapshotMeta, WindowSpec

START = datetime(2024, 6, 3, 8, 0, tzinfo=UTC)
MINUTES = 180
REPLICAS = 5
ROLLOUT_AT = 150  # minute of the first rollout; the others start within 20 minutes
SERIES = (
    ("http_requests:rate", SignalKind.TRAFFIC, "req/s", 50.0, 0.05),
    ("http_requests_5xx:ratio", SignalKind.ERRORS, "ratio", 0.002, 0.3),
    ("http_request_duration_seconds:p50", SignalKind.LATENCY, "s", 0.03, 0.05),
    ("http_request_duration_seconds:p99", SignalKind.LATENCY, "s", 0.2, 0.08),
    ("container_cpu_usage_seconds:rate", SignalKind.RESOURCE, "cores", 0.3, 0.08),
    ("container_memory_working_set_bytes", SignalKind.RESOURCE, "bytes", 4e8, 0.01),
)


@dataclass(frozen=True)
class Plan:
    services: list[str]
    edges: list[tuple[str, str]]
    rollouts: dict[str, int]  # service -> minute its rollout starts
    defective: str


def _plan(pods: int, changes: int, rng: np.random.Generator) -> Plan:
    services = [f"svc-{i:04d}" for i in range(max(pods // REPLICAS, 2))]
    edges = [(services[(i - 1) // 2], services[i]) for i in range(1, len(services))]
    chosen = rng.choice(len(services) - 1, size=min(changes, len(services) - 1), replace=False)
    rolled = [services[int(i) + 1] for i in chosen]  # the root (the entry service) stays
    starts = {s: ROLLOUT_AT + int(rng.integers(0, 20)) for s in rolled}
    return Plan(services, edges, starts, rolled[0])


def _values(level: float, noise: float, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.abs(level * (1 + rng.normal(0, noise, n)))


def _pod_signals(
    service: str, pod: str, version: str, minutes: range, bad: bool, rng: np.random.Generator
) -> list[Signal]:
    stamps = [(START + timedelta(minutes=m)).timestamp() for m in minutes]
    out = []
    for name, kind, unit, level, noise in SERIES:
        values = _values(level, noise, len(stamps), rng)
        if bad and kind is SignalKind.ERRORS:
            values = values + 0.2
        out.append(
            Signal(
                service=service,
                pod=pod,
                name=name,
                kind=kind,
                unit=unit,
                timestamps=stamps,
                values=[float(v) for v in values],
                labels={"namespace": "bench", "version": version},
            )
        )
    return out


def _service_signals(service: str, plan: Plan, rng: np.random.Generator) -> list[Signal]:
    start = plan.rollouts.get(service)
    out = []
    for r in range(REPLICAS):
        old = f"{service}-6f7d9c8b5-{r:05d}"
        gone = start + r + 1 if start is not None else MINUTES
        out += _pod_signals(service, old, "v1", range(0, gone), False, rng)
        if start is not None:
            new = f"{service}-84d5c9f7b-{r:05d}"
            bad = service == plan.defective
            out += _pod_signals(service, new, "v2", range(start + r, MINUTES), bad, rng)
    generation = [1.0 if start is None or m < start else 2.0 for m in range(MINUTES)]
    stamps = [(START + timedelta(minutes=m)).timestamp() for m in range(MINUTES)]
    name = "kube_deployment_status_observed_generation"
    out.append(
        Signal(
            service=service, name=name, kind=SignalKind.CHANGE, timestamps=stamps, values=generation
        )
    )
    return out


def rollout_snapshot(pods: int, changes: int, seed: int = 0) -> tuple[Snapshot, str]:
    """The snapshot, and the defective service."""
    rng = np.random.default_rng(seed)
    plan = _plan(pods, changes, rng)
    signals = [s for service in plan.services for s in _service_signals(service, plan, rng)]
    reported = [
        Change(
            service=service,
            kind=ChangeKind.DEPLOY,
            at=START + timedelta(minutes=at),
            from_version="v1",
            to_version="v2",
            source="api",
        )
        for service, at in sorted(plan.rollouts.items())
    ]
    meta = SnapshotMeta(
        id=f"rollout-scale-{pods}-{changes}",
        window=WindowSpec(
            start=START,
            incident_start=START + timedelta(minutes=ROLLOUT_AT - 2),
            end=START + timedelta(minutes=MINUTES - 1),
        ),
    )
    topology = Topology(
        services=plan.services, edges=[Edge(caller=a, callee=b) for a, b in plan.edges]
    )
    return Snapshot(meta=meta, signals=signals, topology=topology, changes=reported), plan.defective
