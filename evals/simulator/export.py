"""Raw exports of a scenario for real backends: OpenMetrics text and ECS NDJSON logs.

``metrics.om`` is what ``promtool tsdb create-blocks-from openmetrics`` backfills into
Prometheus: counters are cumulative ``_total`` series (so ``rate()`` works), latency is a real
``http_request_duration_seconds`` histogram, every family's samples are contiguous, each
series' timestamps (seconds) increase, and the file ends with ``# EOF``. ``logs.ndjson`` holds
one ECS document per line for an Elasticsearch bulk load. Names here are always Prometheus
names, whatever dialect the snapshot was rendered in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.models import LogRecord
from evals.simulator.telemetry import FloatArray, PodSeries, ServiceSeries, Telemetry
from evals.simulator.topology import ServiceGraph

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_CFS_PERIODS_PER_SECOND = 10.0  # the kernel's default 100 ms CFS period
_erf = np.frompyfunc(math.erf, 1, 1)


@dataclass(frozen=True)
class Family:
    """One metric family: its ``# TYPE``/``# UNIT``/``# HELP`` and its series."""

    name: str
    type: str
    help: str
    unit: str = ""

    def header(self) -> list[str]:
        lines = [f"# TYPE {self.name} {self.type}"]
        if self.unit:
            lines.append(f"# UNIT {self.name} {self.unit}")
        return [*lines, f"# HELP {self.name} {self.help}"]


def _labels(pairs: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in pairs.items())
    return f"{{{inner}}}"


def _stamp(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:.3f}"


def _gauge_lines(
    name: str, labels: dict[str, str], times: FloatArray, values: FloatArray
) -> Iterator[str]:
    tag = _labels(labels)
    for t, v in zip(times.tolist(), values.tolist(), strict=True):
        if math.isfinite(v):
            yield f"{name}{tag} {v:.6g} {_stamp(t)}"


def _counter_lines(
    name: str,
    labels: dict[str, str],
    times: FloatArray,
    rates: FloatArray,
    step: float,
    integer: bool = False,
) -> Iterator[str]:
    """Cumulative counter from a per-second rate; missing points add nothing and are skipped."""
    present = np.isfinite(rates)
    total = np.cumsum(np.where(present, np.maximum(rates, 0.0), 0.0) * step)
    tag = _labels(labels)
    for t, v, ok in zip(times.tolist(), total.tolist(), present.tolist(), strict=True):
        if ok:
            value = str(int(v)) if integer else f"{v:.3f}"
            yield f"{name}_total{tag} {value} {_stamp(t)}"


def _lognormal_share(p50: FloatArray, p99: FloatArray, bound: float) -> FloatArray:
    """Share of requests faster than ``bound`` for a log-normal fitted to p50 and p99."""
    sigma = np.maximum(np.log(np.maximum(p99, p50 * 1.001) / p50) / 2.326, 1e-3)
    z = (np.log(bound) - np.log(p50)) / (sigma * math.sqrt(2.0))
    return np.clip(0.5 * (1.0 + _erf(z).astype(np.float64)), 0.0, 1.0)


def _histogram_lines(
    service: str, namespace: str, series: ServiceSeries, times: FloatArray, step: float
) -> Iterator[str]:
    present = np.isfinite(series.rps) & np.isfinite(series.latency).all(axis=0)
    count = np.where(present, np.maximum(series.rps, 0.0), 0.0) * step
    p50 = np.where(present, np.maximum(series.latency[0], 1e-5), 0.01)
    p99 = np.where(present, series.latency[2], 0.05)
    sigma = np.maximum(np.log(np.maximum(p99, p50 * 1.001) / p50) / 2.326, 1e-3)
    mean = p50 * np.exp(sigma**2 / 2)
    buckets = [np.floor(np.cumsum(count * _lognormal_share(p50, p99, b))) for b in BUCKETS]
    totals, sums = np.floor(np.cumsum(count)), np.cumsum(count * mean)
    base = {"namespace": namespace, "service": service}
    name = "http_request_duration_seconds"
    for i in np.flatnonzero(present).tolist():
        stamp = _stamp(float(times[i]))
        for bound, cumulative in zip(BUCKETS, buckets, strict=True):
            yield f"{name}_bucket{_labels({**base, 'le': str(bound)})} {int(cumulative[i])} {stamp}"
        yield f"{name}_bucket{_labels({**base, 'le': '+Inf'})} {int(totals[i])} {stamp}"
        yield f"{name}_count{_labels(base)} {int(totals[i])} {stamp}"
        yield f"{name}_sum{_labels(base)} {sums[i]:.3f} {stamp}"


def _http_requests(graph: ServiceGraph, telemetry: Telemetry) -> Iterator[str]:
    """Requests per pod and status code; pods share their service's traffic equally."""
    times, step = telemetry.timeline.times, float(telemetry.timeline.resolution)
    for spec in graph.services:
        series = telemetry.services[spec.name]
        ok_rate = series.rps * (1 - series.error_ratio)
        failed_rate = series.rps * series.error_ratio
        owners: list[PodSeries | None] = [*series.pods] or [None]
        live = np.vstack([p.alive for p in series.pods]).sum(axis=0) if series.pods else 1
        for pod in owners:
            share = np.where(pod.alive, 1.0, np.nan) / np.maximum(live, 1) if pod else 1.0
            base = {"namespace": graph.namespace, "service": spec.name}
            if pod is not None:
                base["pod"] = pod.name
            for code, rate in (("200", ok_rate), ("500", failed_rate)):
                labels = {**base, "code": code}
                yield from _counter_lines("http_requests", labels, times, rate * share, step, True)


def _pod_families(graph: ServiceGraph, telemetry: Telemetry) -> Iterator[tuple[Family, list[str]]]:
    times, step = telemetry.timeline.times, float(telemetry.timeline.resolution)
    families = {
        "container_cpu_usage_seconds": Family(
            "container_cpu_usage_seconds", "counter", "CPU time consumed.", "seconds"
        ),
        "container_memory_working_set_bytes": Family(
            "container_memory_working_set_bytes", "gauge", "Working set of the container.", "bytes"
        ),
        "kube_pod_container_status_restarts": Family(
            "kube_pod_container_status_restarts", "counter", "Container restarts."
        ),
        "container_cpu_cfs_throttled_periods": Family(
            "container_cpu_cfs_throttled_periods", "counter", "Throttled CFS periods."
        ),
        "container_cpu_cfs_periods": Family(
            "container_cpu_cfs_periods", "counter", "Elapsed CFS enforcement periods."
        ),
    }
    lines: dict[str, list[str]] = {name: [] for name in families}
    for spec in graph.services:
        for pod in telemetry.services[spec.name].pods:
            labels = {"namespace": graph.namespace, "service": spec.name, "pod": pod.name}
            gone = np.where(pod.alive, 1.0, np.nan)
            periods = gone * _CFS_PERIODS_PER_SECOND
            lines["container_cpu_usage_seconds"] += _counter_lines(
                "container_cpu_usage_seconds", labels, times, pod.cpu * gone, step
            )
            lines["container_memory_working_set_bytes"] += _gauge_lines(
                "container_memory_working_set_bytes", labels, times, pod.memory * gone
            )
            lines["kube_pod_container_status_restarts"] += _gauge_lines(
                "kube_pod_container_status_restarts_total", labels, times, pod.restarts * gone
            )
            lines["container_cpu_cfs_throttled_periods"] += _counter_lines(
                "container_cpu_cfs_throttled_periods",
                labels,
                times,
                pod.throttled * periods,
                step,
                True,
            )
            lines["container_cpu_cfs_periods"] += _counter_lines(
                "container_cpu_cfs_periods", labels, times, periods, step, True
            )
    for name, family in families.items():
        yield family, lines[name]


def _service_gauges(
    graph: ServiceGraph, telemetry: Telemetry
) -> Iterator[tuple[Family, list[str]]]:
    times, step = telemetry.timeline.times, float(telemetry.timeline.resolution)
    specs = [
        (Family("up", "gauge", "Whether the target answered its last scrape."), "up"),
        (
            Family(
                "kube_deployment_status_observed_generation",
                "gauge",
                "Generation observed by the controller.",
            ),
            "generation",
        ),
        (
            Family("db_client_connections_in_use", "gauge", "Pool connections in use."),
            "pool_in_use",
        ),
        (
            Family("db_client_connections_pending", "gauge", "Requests waiting for a connection."),
            "pool_pending",
        ),
        (
            Family(
                "kubelet_volume_stats_used_bytes", "gauge", "Bytes used on the volume.", "bytes"
            ),
            "disk_used",
        ),
    ]
    for family, attribute in specs:
        lines: list[str] = []
        for spec in graph.services:
            series = telemetry.services[spec.name]
            values = getattr(series, attribute)
            if values is None:
                continue
            if attribute == "disk_used":
                values = values * series.disk_bytes
            labels = {"namespace": graph.namespace, "service": spec.name}
            lines += _gauge_lines(family.name, labels, times, values)
        yield family, lines
    retrans = Family("node_netstat_tcp_retrans_segs", "counter", "TCP segments retransmitted.")
    lines = []
    for spec in graph.services:
        labels = {"namespace": graph.namespace, "service": spec.name}
        values = telemetry.services[spec.name].net_errors
        lines += _counter_lines(retrans.name, labels, times, values, step, True)
    yield retrans, lines


def openmetrics_lines(graph: ServiceGraph, telemetry: Telemetry) -> Iterator[str]:
    """Every line of the OpenMetrics exposition, family by family, ending with ``# EOF``."""
    times, step = telemetry.timeline.times, float(telemetry.timeline.resolution)
    requests = Family("http_requests", "counter", "HTTP requests by status code.")
    yield from requests.header()
    yield from _http_requests(graph, telemetry)
    latency = Family("http_request_duration_seconds", "histogram", "Request latency.", "seconds")
    yield from latency.header()
    for spec in graph.services:
        series = telemetry.services[spec.name]
        yield from _histogram_lines(spec.name, graph.namespace, series, times, step)
    for family, lines in [*_pod_families(graph, telemetry), *_service_gauges(graph, telemetry)]:
        if lines:
            yield from family.header()
            yield from lines
    yield "# EOF"


def write_openmetrics(graph: ServiceGraph, telemetry: Telemetry, path: Path) -> Path:
    _write(path, openmetrics_lines(graph, telemetry))
    return path


def ecs_document(record: LogRecord, namespace: str) -> dict[str, object]:
    """One log record as Elastic Common Schema, nested the way ECS loggers write it."""
    kubernetes: dict[str, object] = {"namespace": namespace}
    if record.pod:
        kubernetes["pod"] = {"name": record.pod}
    document: dict[str, object] = {
        "@timestamp": record.timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "log": {"level": record.level.lower()},
        "message": record.message,
        "service": {"name": record.service},
        "kubernetes": kubernetes,
        "ecs": {"version": "8.11.0"},
    }
    if record.trace_id:
        document["trace"] = {"id": record.trace_id}
    return document


def write_ecs_logs(logs: Iterable[LogRecord], namespace: str, path: Path) -> Path:
    _write(path, (json.dumps(ecs_document(r, namespace)) for r in logs))
    return path


def _write(path: Path, lines: Iterable[str]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line)
            fh.write("\n")
