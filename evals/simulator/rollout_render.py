"""The signals of a rollout incident: per-pod series under Prometheus names, with units.

What a 1-minute Prometheus collection of a Kubernetes namespace holds: for every pod of a
Deployment its request rate, 5xx ratio, p50 and p99 latency (recording rules over the
client library's counters and histogram), and its container CPU, working set, throttling and
restarts; per service, the Deployment's observed generation and desired replicas, pool and
volume gauges where they apply, ``up`` for datastores and external APIs, and (in half the
incidents) the service-level request series as well.

A pod's series run from its first scrape to its last: a new pod has no history before it
started, and a rate needs two scrapes, so its rate-derived series start one sample later
than its gauges. In about two thirds of the incidents every pod series carries the
``version`` its pod runs (``v1.4.2`` on the old pods, ``v1.4.3`` on the new); otherwise only
the ReplicaSet hash in the pod's name tells the versions apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from agent.models import Signal, SignalKind
from evals.simulator.podtraffic import PodRequests
from evals.simulator.render import significant
from evals.simulator.rollouts import Rollout
from evals.simulator.telemetry import (
    BoolArray,
    FloatArray,
    PodSeries,
    ServiceSeries,
    Telemetry,
    version_text,
)
from evals.simulator.topology import ServiceGraph, ServiceSpec

K = SignalKind
# (name, unit, kind, what): request series, per pod and (sometimes) per service.
REQUESTS = (
    ("http_requests:rate", "req/s", K.TRAFFIC, "rps"),
    ("http_requests_5xx:ratio", "ratio", K.ERRORS, "error_ratio"),
    ("http_request_duration_seconds:p50", "s", K.LATENCY, "p50"),
    ("http_request_duration_seconds:p99", "s", K.LATENCY, "p99"),
)
# (name, unit, kind, what, from a counter): container series, per pod.
CONTAINERS = (
    ("container_cpu_usage_seconds:rate", "cores", K.RESOURCE, "cpu", True),
    ("container_memory_working_set_bytes", "bytes", K.RESOURCE, "memory", False),
    ("container_cpu_cfs_throttled:ratio", "ratio", K.SATURATION, "throttled", True),
    ("kube_pod_container_status_restarts_total", "", K.CHANGE, "restarts", False),
)
GENERATION = "kube_deployment_status_observed_generation"
REPLICAS = "kube_deployment_spec_replicas"
VERSION_LABEL = "version"
_ORIGIN = "promql:"


@dataclass(frozen=True)
class Shape:
    """What this incident's collection holds: ``version`` labels on pod series, and the
    service-level request series beside the per-pod ones."""

    versions: bool
    service_requests: bool


def _requests(values: PodRequests | ServiceSeries, what: str) -> FloatArray:
    if what == "p50":
        return np.asarray(values.latency[0])
    if what == "p99":
        return np.asarray(values.latency[2])
    return np.asarray(getattr(values, what))


def _container(pod: PodSeries, what: str) -> FloatArray:
    return np.asarray(getattr(pod, what))


class RolloutWriter:
    """Renders one rollout incident's telemetry as signals (see the module docstring)."""

    def __init__(
        self,
        graph: ServiceGraph,
        telemetry: Telemetry,
        pods: dict[str, PodRequests],
        rollouts: dict[str, Rollout],
        shape: Shape,
        rng: np.random.Generator,
    ) -> None:
        self.graph, self.telemetry, self.pods = graph, telemetry, pods
        self.rollouts, self.shape, self.rng = rollouts, shape, rng
        self.times = telemetry.timeline.times
        self.n = telemetry.timeline.length
        self.gap_rate = float(rng.uniform(0.005, 0.02))
        self.spike_rate = float(rng.uniform(0.001, 0.004))

    def signals(self) -> list[Signal]:
        out: list[Signal] = []
        outage = self._outage()
        for spec in self.graph.services:
            found = list(self._service(spec))
            if outage is not None and outage[0] == spec.name:
                found = [_blank(s, self.times[outage[1]]) for s in found]
            out += found
        return out

    def _outage(self) -> tuple[str, slice] | None:
        """Sometimes one service's target misses a few scrapes in a row."""
        if self.rng.random() >= 0.3:
            return None
        name = self.graph.services[int(self.rng.integers(len(self.graph.services)))].name
        start = int(self.rng.integers(0, self.n - 4))
        return name, slice(start, start + int(self.rng.integers(1, 5)))

    def _version(self, spec: ServiceSpec, series: ServiceSeries, pod: str) -> str:
        rollout = self.rollouts.get(spec.name)
        if rollout is None:
            return version_text(series.version)
        return rollout.to_version if pod in rollout.new_pods else rollout.from_version

    def _service(self, spec: ServiceSpec) -> Iterator[Signal]:
        series = self.telemetry.services[spec.name]
        deployment = spec.is_app and bool(series.pods)
        if not deployment or self.shape.service_requests:
            for name, unit, kind, what in REQUESTS:
                yield self._make(spec.name, name, unit, kind, _requests(series, what), spiky=True)
        if deployment:
            yield self._make(spec.name, GENERATION, "", K.CHANGE, series.generation)
            yield self._make(spec.name, REPLICAS, "", K.CHANGE, self._replicas(spec, series))
        if not spec.is_app:
            yield self._make(spec.name, "up", "", K.OTHER, series.up)
        yield from self._gauges(spec, series)
        for pod in series.pods:
            labels = {"namespace": self.graph.namespace}
            if self.shape.versions and deployment:
                labels[VERSION_LABEL] = self._version(spec, series, pod.name)
            yield from self._pod(spec, pod, labels, deployment)

    def _replicas(self, spec: ServiceSpec, series: ServiceSeries) -> FloatArray:
        rollout = self.rollouts.get(spec.name)
        replicas = np.full(self.n, float(len(spec.pods)))
        if rollout is not None:
            replicas[rollout.start :] = rollout.replicas[1]
        return replicas

    def _gauges(self, spec: ServiceSpec, series: ServiceSeries) -> Iterator[Signal]:
        if series.pool_in_use is not None and series.pool_pending is not None:
            pool = "db_client_connections"
            yield self._make(spec.name, f"{pool}_in_use", "", K.SATURATION, series.pool_in_use)
            yield self._make(spec.name, f"{pool}_pending", "", K.SATURATION, series.pool_pending)
        if series.disk_used is not None:
            used = series.disk_used * series.disk_bytes
            volume = "kubelet_volume_stats_used_bytes"
            yield self._make(spec.name, volume, "bytes", K.SATURATION, used)
        if series.pods:
            yield self._make(spec.name, "tcp_retransmits:rate", "1/s", K.OTHER, series.net_errors)

    def _pod(
        self, spec: ServiceSpec, pod: PodSeries, labels: dict[str, str], deployment: bool
    ) -> Iterator[Signal]:
        late = not bool(pod.alive[0])
        if deployment and pod.name in self.pods:
            requests = self.pods[pod.name]
            for name, unit, kind, what in REQUESTS:
                values = _requests(requests, what)
                life = _life(pod.alive, late)
                yield self._make(spec.name, name, unit, kind, values, pod.name, labels, life, True)
        for name, unit, kind, what, counted in CONTAINERS:
            life = _life(pod.alive, late and counted)
            values = _container(pod, what)
            spiky = what == "cpu"
            yield self._make(spec.name, name, unit, kind, values, pod.name, labels, life, spiky)

    def _make(
        self,
        service: str,
        name: str,
        unit: str,
        kind: SignalKind,
        values: FloatArray,
        pod: str | None = None,
        labels: dict[str, str] | None = None,
        life: BoolArray | None = None,
        spiky: bool = False,
    ) -> Signal:
        values = np.array(values, dtype=np.float64)
        if spiky:
            hits = self.rng.random(self.n) < self.spike_rate
            values[hits] *= self.rng.uniform(1.8, 5.0, int(hits.sum()))
        values[self.rng.random(self.n) < self.gap_rate] = np.nan
        stamps = self.times
        if life is not None:
            stamps, values = stamps[life], values[life]
        return Signal(
            service=service,
            name=name,
            kind=kind,
            unit=unit,
            pod=pod,
            resolution_s=float(self.telemetry.timeline.resolution),
            timestamps=stamps.tolist(),
            values=significant(values),
            labels=dict(labels or {}),
            origin=f"{_ORIGIN}{name}",
        )


def _life(alive: BoolArray, late: bool) -> BoolArray:
    """Where a pod's series has samples: while it lives, less its first scrape for a rate of
    a pod that started inside the window (a rate needs two scrapes)."""
    life = alive.copy()
    if late and life.any():
        life[int(np.argmax(life))] = False
    return life


def _blank(signal: Signal, times: FloatArray) -> Signal:
    """``signal`` with the samples at ``times`` missing (missed scrapes)."""
    lost = set(times.tolist())
    values = [
        None if t in lost else v for t, v in zip(signal.timestamps, signal.values, strict=True)
    ]
    return signal.model_copy(update={"values": values})


def render_rollout_signals(
    graph: ServiceGraph,
    telemetry: Telemetry,
    pods: dict[str, PodRequests],
    rollouts: dict[str, Rollout],
    shape: Shape,
    rng: np.random.Generator,
) -> list[Signal]:
    return RolloutWriter(graph, telemetry, pods, rollouts, shape, rng).signals()
