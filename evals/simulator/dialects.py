"""Metric naming dialects: the same physics under the names and units real stacks use.

Four dialects: Prometheus/cAdvisor/kube-state-metrics, OpenTelemetry semantic conventions,
Datadog, and the bare column names of RCAEval-style CSVs (``cpu``, ``mem``, ``latency-90``).
Each role has several variants (bytes or MiB, seconds or milliseconds, error rate or error
ratio, disk used or disk free); a scenario draws one variant per role. Half the Prometheus
scenarios instead hold exactly what ``rca record`` collects with the default catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.models import SignalKind as K


@dataclass(frozen=True)
class Variant:
    """One way to name a role: ``source`` is the canonical quantity (see ``render.py``),
    ``scale`` converts canonical units to this variant's, ``{q}`` in the name or a label
    value becomes the quantile as spelled by ``quantiles``."""

    name: str
    unit: str
    kind: K
    source: str
    scale: float = 1.0
    labels: tuple[tuple[str, str], ...] = ()
    quantiles: tuple[str, str, str] | None = None  # how p50/p90/p99 are spelled


_DOT = ("0.5", "0.9", "0.99")
_PCT = ("50", "90", "99")
_P = ("p50", "p90", "p99")

Dialect = dict[str, tuple[Variant, ...]]
# Prometheus scenarios written as ``rca record`` writes a live collection with the default
# catalog (``recorded.py``) rather than under the names drawn here.
RECORDED_SHARE = 0.5

PROMETHEUS: Dialect = {
    "traffic": (
        Variant("http_requests:rate1m", "req/s", K.TRAFFIC, "rps"),
        Variant("istio_requests_total", "req/s", K.TRAFFIC, "rps"),
        Variant("http_server_requests_seconds_count", "1/s", K.TRAFFIC, "rps"),
    ),
    "errors": (
        Variant("http_requests_5xx:rate1m", "req/s", K.ERRORS, "error_rate"),
        Variant("http_requests:error_ratio_rate1m", "ratio", K.ERRORS, "error_ratio"),
        Variant("istio_requests_5xx_total", "req/s", K.ERRORS, "error_rate"),
    ),
    "latency": (
        Variant(
            "http_request_duration_seconds",
            "s",
            K.LATENCY,
            "latency",
            labels=(("quantile", "{q}"),),
            quantiles=_DOT,
        ),
        Variant("http_request_duration_seconds:{q}", "s", K.LATENCY, "latency", quantiles=_P),
        Variant(
            "istio_request_duration_milliseconds:{q}",
            "ms",
            K.LATENCY,
            "latency",
            1000,
            quantiles=_P,
        ),
    ),
    "cpu": (
        Variant("container_cpu_usage_seconds_total", "cores", K.RESOURCE, "cpu"),
        Variant("pod:container_cpu_usage:ratio_limit", "ratio", K.RESOURCE, "cpu_ratio"),
    ),
    "memory": (
        Variant("container_memory_working_set_bytes", "bytes", K.RESOURCE, "memory"),
        Variant("container_memory_rss", "bytes", K.RESOURCE, "memory"),
    ),
    "restarts": (Variant("kube_pod_container_status_restarts_total", "", K.CHANGE, "restarts"),),
    "throttling": (
        Variant("container_cpu_cfs_throttled_periods:ratio", "ratio", K.SATURATION, "throttled"),
        Variant("container_cpu_cfs_throttled_seconds_total", "s/s", K.SATURATION, "throttled_s"),
    ),
    "pool_used": (
        Variant("hikaricp_connections_active", "", K.SATURATION, "pool_in_use"),
        Variant("db_client_connections_usage", "", K.SATURATION, "pool_in_use"),
        Variant("go_sql_in_use_connections", "", K.SATURATION, "pool_in_use"),
    ),
    "pool_wait": (
        Variant("hikaricp_connections_pending", "", K.SATURATION, "pool_pending"),
        Variant("db_client_connections_pending_requests", "", K.SATURATION, "pool_pending"),
    ),
    "disk": (
        Variant("kubelet_volume_stats_used_bytes", "bytes", K.SATURATION, "disk_used_bytes"),
        Variant("node_filesystem_avail_bytes", "bytes", K.SATURATION, "disk_free_bytes"),
        Variant("disk_used_percent", "%", K.SATURATION, "disk_used", 100),
    ),
    "network": (
        Variant("node_netstat_Tcp_RetransSegs", "1/s", K.OTHER, "net_errors"),
        Variant("container_network_transmit_packets_dropped_total", "1/s", K.OTHER, "net_errors"),
    ),
    "deploy": (
        Variant("kube_deployment_status_observed_generation", "", K.CHANGE, "generation"),
        Variant("kube_deployment_metadata_generation", "", K.CHANGE, "generation"),
    ),
    "up": (Variant("up", "", K.OTHER, "up"), Variant("probe_success", "", K.OTHER, "up")),
}

OPENTELEMETRY: Dialect = {
    "traffic": (Variant("http.server.request.rate", "{request}/s", K.TRAFFIC, "rps"),),
    "errors": (
        Variant("http.server.request.errors", "{request}/s", K.ERRORS, "error_rate"),
        Variant("http.server.error_ratio", "1", K.ERRORS, "error_ratio"),
    ),
    "latency": (
        Variant(
            "http.server.request.duration",
            "s",
            K.LATENCY,
            "latency",
            labels=(("quantile", "{q}"),),
            quantiles=_P,
        ),
        Variant("http.server.duration.{q}", "ms", K.LATENCY, "latency", 1000, quantiles=_P),
    ),
    "cpu": (
        Variant("k8s.pod.cpu.usage", "{cpu}", K.RESOURCE, "cpu"),
        Variant("container.cpu.utilization", "1", K.RESOURCE, "cpu_ratio"),
    ),
    "memory": (Variant("k8s.pod.memory.working_set", "By", K.RESOURCE, "memory"),),
    "restarts": (Variant("k8s.container.restarts", "{restart}", K.CHANGE, "restarts"),),
    "throttling": (
        Variant("container.cpu.throttling_data.throttled_time", "s", K.SATURATION, "throttled_s"),
    ),
    "pool_used": (
        Variant(
            "db.client.connections.usage",
            "{connection}",
            K.SATURATION,
            "pool_in_use",
            labels=(("state", "used"),),
        ),
    ),
    "pool_wait": (
        Variant(
            "db.client.connections.pending_requests", "{request}", K.SATURATION, "pool_pending"
        ),
    ),
    "disk": (
        Variant("k8s.volume.available", "By", K.SATURATION, "disk_free_bytes"),
        Variant("system.filesystem.utilization", "1", K.SATURATION, "disk_used"),
    ),
    "network": (Variant("k8s.pod.network.errors", "{packet}/s", K.OTHER, "net_errors"),),
    "deploy": (Variant("k8s.deployment.generation", "", K.CHANGE, "generation"),),
    "up": (Variant("k8s.container.ready", "", K.OTHER, "up"),),
}

DATADOG: Dialect = {
    "traffic": (Variant("trace.http.request.hits", "hit/s", K.TRAFFIC, "rps"),),
    "errors": (Variant("trace.http.request.errors", "error/s", K.ERRORS, "error_rate"),),
    "latency": (
        Variant(
            "trace.http.request.duration.by.service.{q}",
            "s",
            K.LATENCY,
            "latency",
            quantiles=("50p", "90p", "99p"),
        ),
    ),
    "cpu": (Variant("kubernetes.cpu.usage.total", "nanocore", K.RESOURCE, "cpu", 1e9),),
    "memory": (Variant("kubernetes.memory.working_set", "byte", K.RESOURCE, "memory"),),
    "restarts": (Variant("kubernetes.containers.restarts", "", K.CHANGE, "restarts"),),
    "throttling": (Variant("kubernetes.cpu.cfs.throttled.periods", "", K.SATURATION, "throttled"),),
    "pool_used": (Variant("jdbc.connections.active", "connection", K.SATURATION, "pool_in_use"),),
    "pool_wait": (Variant("jdbc.connections.pending", "", K.SATURATION, "pool_pending"),),
    "disk": (
        Variant("kubernetes.filesystem.usage_pct", "percent", K.SATURATION, "disk_used", 100),
    ),
    "network": (Variant("kubernetes.network.tx_dropped", "packet", K.OTHER, "net_errors"),),
    "deploy": (
        Variant("kubernetes_state.deployment.metadata_generation", "", K.CHANGE, "generation"),
    ),
    "up": (Variant("network.http.can_connect", "", K.OTHER, "up"),),
}

RCAEVAL: Dialect = {
    "traffic": (Variant("workload", "", K.TRAFFIC, "rps"),),
    "errors": (Variant("error", "", K.ERRORS, "error_rate"),),
    "latency": (
        Variant("latency-{q}", "", K.LATENCY, "latency", 1000, quantiles=_PCT),
        Variant("latency-{q}", "", K.LATENCY, "latency", 1, quantiles=_PCT),
    ),
    "cpu": (Variant("cpu", "", K.RESOURCE, "cpu", 100), Variant("cpu", "", K.RESOURCE, "cpu")),
    "memory": (
        Variant("mem", "", K.RESOURCE, "memory", 1 / 2**20),
        Variant("mem", "", K.RESOURCE, "memory"),
    ),
    "restarts": (Variant("restarts", "", K.CHANGE, "restarts"),),
    "throttling": (Variant("cpu-throttle", "", K.SATURATION, "throttled"),),
    "pool_used": (Variant("db-pool-active", "", K.SATURATION, "pool_in_use"),),
    "pool_wait": (Variant("db-pool-wait", "", K.SATURATION, "pool_pending"),),
    "disk": (Variant("disk", "", K.SATURATION, "disk_used", 100),),
    "network": (Variant("tcp-retrans", "", K.OTHER, "net_errors"),),
    "deploy": (Variant("version", "", K.CHANGE, "generation"),),
    "up": (Variant("up", "", K.OTHER, "up"),),
}

DIALECTS: dict[str, Dialect] = {
    "prometheus": PROMETHEUS,
    "opentelemetry": OPENTELEMETRY,
    "datadog": DATADOG,
    "rcaeval": RCAEVAL,
}


@dataclass(frozen=True)
class Naming:
    """One scenario's choices: dialect, one variant per role, and how much metadata is lost."""

    dialect: str
    variants: dict[str, Variant]
    percentiles: tuple[int, ...]  # which of p50/p90/p99 are exported
    pod_level: bool  # per-pod container series, or rolled up per service
    units: bool  # whether units survived the export
    kind_missing: float  # share of series whose kind is left for the engine to infer
    recorded: bool = False  # Prometheus only: the default catalog's signals, as rca record


def choose_naming(rng: np.random.Generator) -> Naming:
    name = ("prometheus", "opentelemetry", "datadog", "rcaeval")[
        int(rng.choice(4, p=[0.4, 0.25, 0.1, 0.25]))
    ]
    table = DIALECTS[name]
    variants = {role: options[int(rng.integers(len(options)))] for role, options in table.items()}
    rcaeval = name == "rcaeval"
    percentile_sets = ((0, 1), (0, 1, 2)) if rcaeval else ((0, 1, 2), (0, 2), (1, 2), (2,))
    return Naming(
        dialect=name,
        variants=variants,
        percentiles=percentile_sets[int(rng.integers(len(percentile_sets)))],
        pod_level=not rcaeval or rng.random() < 0.5,
        units=not rcaeval and rng.random() < 0.75,
        kind_missing=float(rng.uniform(0.55, 0.9) if rcaeval else rng.uniform(0.1, 0.5)),
        recorded=name == "prometheus" and rng.random() < RECORDED_SHARE,
    )
