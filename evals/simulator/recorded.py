"""The signals ``rca record`` writes for a scenario served by Prometheus, without a server.

Each default catalog entry (``connectors/catalog.yaml``) that the raw export can answer gets
the result a range query over the backfilled export returns (values from ``query.py``, series
in Prometheus' label order), and the connector's own :func:`~connectors.promplan.to_signals`
and :func:`~connectors.promplan.until_data_ends` turn that into signals. A scenario rendered
this way holds the names, kinds, units and values of a live collection of the same incident,
so the engine is tuned on what users feed it, and ``evals.live_agreement`` checks the
emulation against a real Prometheus. Graph links need a server URL and are left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from agent.models import Edge, Signal, Topology
from connectors.catalog import load_catalog
from connectors.promplan import to_signals, until_data_ends
from evals.simulator.query import Observer
from evals.simulator.scrape import Gauge, expose
from evals.simulator.telemetry import FloatArray, Telemetry
from evals.simulator.topology import ServiceGraph

_GAUGES = (
    "container_memory_working_set_bytes",
    "kube_pod_container_status_restarts_total",
    "kube_deployment_status_observed_generation",
    "db_client_connections_in_use",
    "db_client_connections_pending",
    "kubelet_volume_stats_used_bytes",
    "up",
)


def _series(labels: dict[str, str], times: list[float], values: FloatArray) -> dict[str, Any]:
    """One series of a ``matrix`` result: steps where the query returned a number."""
    points = [[t, v] for t, v in zip(times, values.tolist(), strict=True) if np.isfinite(v)]
    return {"metric": labels, "values": points}


class Recorder:
    """The ``matrix`` result of each catalog entry over one scenario's export."""

    def __init__(self, graph: ServiceGraph, telemetry: Telemetry) -> None:
        self.graph = graph
        self.exposition = expose(graph, telemetry)
        self.observer = Observer(graph, telemetry, self.exposition)
        self.times = telemetry.timeline.times.tolist()

    def results(self) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for name, labels, values in [*self._services(), *self._pods(), *self._gauges()]:
            found.setdefault(name, []).append(_series(labels, self.times, values))
        return {
            name: sorted(series, key=lambda s: sorted(s["metric"].items()))
            for name, series in found.items()
        }

    def _services(self) -> Iterator[tuple[str, dict[str, str], FloatArray]]:
        for spec in self.graph.services:
            labels = {"service": spec.name}
            rps, error_ratio = self.observer.traffic(spec.name)
            yield "http_requests:rate", labels, rps
            yield "http_requests_5xx:ratio", labels, error_ratio
            yield (
                "http_request_duration_seconds:p99",
                labels,
                self.observer.quantile(spec.name, 0.99),
            )
            yield "tcp_retransmits:rate", labels, self.observer.retransmit_rate(spec.name)

    def _pods(self) -> Iterator[tuple[str, dict[str, str], FloatArray]]:
        limits = {
            limit.labels["pod"]: limit.values
            for limit in self.exposition.series("kube_pod_container_resource_limits")
            if isinstance(limit, Gauge) and limit.labels.get("resource") == "cpu"
        }
        for cpu in self.exposition.series("container_cpu_usage_seconds"):
            service, pod = cpu.labels["service"], cpu.labels["pod"]
            labels = {"pod": pod, "service": service}
            cores = self.observer.rate(cpu)
            yield "container_cpu_usage_seconds:rate", labels, cores
            if pod in limits:
                yield "container_cpu_usage:limit_ratio", labels, cores / limits[pod]
            yield "container_cpu_cfs_throttled:ratio", labels, self.observer.throttled(service, pod)

    def _gauges(self) -> Iterator[tuple[str, dict[str, str], FloatArray]]:
        for _, members in self.exposition.families:
            for gauge in members:
                if isinstance(gauge, Gauge) and gauge.name in _GAUGES:
                    kept = ("service", "pod")
                    labels = {k: v for k, v in gauge.labels.items() if k in kept}
                    yield gauge.name, labels, gauge.values


def recorded_signals(graph: ServiceGraph, telemetry: Telemetry) -> list[Signal]:
    """The catalog's signals as a live collection of the scenario returns them."""
    recorder = Recorder(graph, telemetry)
    results = recorder.results()
    plan = recorder.observer.plan
    signals: list[Signal] = []
    for entry in load_catalog(None).signals:
        for signal in to_signals(entry, results.get(entry.name, []), plan, ""):
            signals.append(signal.model_copy(update={"link": None}))
    return until_data_ends(signals)


def recorded_topology(graph: ServiceGraph, signals: list[Signal]) -> Topology:
    """The call graph as a live collection assembles it: services and edges sorted by name."""
    edges = sorted({(a, b) for a, b in graph.edges if a != b})
    names = {s.service for s in signals} | {name for pair in edges for name in pair}
    return Topology(services=sorted(names), edges=[Edge(caller=a, callee=b) for a, b in edges])
