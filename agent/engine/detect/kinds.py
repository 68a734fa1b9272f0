"""Infer what a series measures from its name and unit, for metrics named any which way.

Real incidents arrive with names like ``container_cpu_usage_seconds_total``,
``http.server.request.duration``, ``cartservice_latency-90`` or plain ``mem``; the kind decides
whether an anomaly reads as a cause (resource, saturation, change) or a symptom (latency,
errors, traffic), so the rules below err towards the common conventions of cAdvisor,
kube-state-metrics, Prometheus client libraries and OpenTelemetry.
"""

from __future__ import annotations

import functools
import re

from agent.models import Signal, SignalKind

# Order matters: the first rule that matches wins ("error" before "latency" for
# ``grpc_client_errors_duration``-style oddities is the conservative choice).
_NAME_RULES: tuple[tuple[SignalKind, re.Pattern[str]], ...] = (
    (
        SignalKind.CHANGE,
        re.compile(
            r"restart|oom|kill|deploy|version|generation|revision|rollout|image|build_info|"
            r"config_(?:hash|reload)|last_(?:start|boot)|start_time|uptime",
        ),
    ),
    (
        SignalKind.ERRORS,
        re.compile(
            r"error|err\b|errs|fail|5xx|exception|fault|reject|refused|retrans|drop|loss|"
            r"reset|timeout|panic|status.?code.*5|code=\"?5",
        ),
    ),
    (
        SignalKind.SATURATION,
        re.compile(
            r"throttl|pool|pending|waiting|wait_|queue|backlog|saturat|disk|fs_|filesystem|"
            r"volume|storage|inode|conn(?:ection)?s?_?(?:in_?use|active|used)|socket|fd|"
            r"file_?descriptor|thread|limit",
        ),
    ),
    (
        SignalKind.LATENCY,
        re.compile(r"latency|duration|response_?time|rtt|delay|p50|p90|p95|p99|elapsed|lag"),
    ),
    (
        SignalKind.RESOURCE,
        re.compile(r"cpu|mem|heap|rss|working_?set|gc|swap|load\d|usage"),
    ),
    (
        # Counts of work done. System calls are one (an eBPF exporter's read and write calls
        # rise with the requests served or retried); as Prometheus counters they end in
        # ``_total`` and would read as traffic anyway.
        SignalKind.TRAFFIC,
        re.compile(
            r"request|rps|qps|tps|throughput|workload|traffic|calls|hits|ops|rate|count|"
            r"_total$|bytes|packets|receive|transmit|sent|recv|syscall"
        ),
    ),
)

_UNIT_RULES: dict[str, SignalKind] = {
    "s": SignalKind.LATENCY,
    "ms": SignalKind.LATENCY,
    "seconds": SignalKind.LATENCY,
    "milliseconds": SignalKind.LATENCY,
    "cores": SignalKind.RESOURCE,
    "bytes": SignalKind.RESOURCE,
    "req/s": SignalKind.TRAFFIC,
    "requests": SignalKind.TRAFFIC,
    "{request}/s": SignalKind.TRAFFIC,
}


def infer_kind(name: str, unit: str = "") -> SignalKind:
    """The kind of a series named ``name`` measured in ``unit``; ``OTHER`` when unsure."""
    text = name.lower().replace(".", "_").replace("-", "_")
    for kind, pattern in _NAME_RULES:
        if pattern.search(text):
            return kind
    return _UNIT_RULES.get(unit.strip().lower(), SignalKind.OTHER)


def kind_of(signal: Signal) -> SignalKind:
    """The declared kind when present, else the inferred one."""
    return signal.kind if signal.kind is not None else infer_kind(signal.name, signal.unit)


CAUSE_KINDS = frozenset({SignalKind.RESOURCE, SignalKind.SATURATION, SignalKind.CHANGE})


# Which side of a call a latency or error series measures. A client-side series is what a pod
# waits for from its dependencies (OpenTelemetry's ``http.client.*``, gRPC's
# ``grpc_client_*``, Istio's ``reporter="source"``); a server-side one is what it serves.
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_CLIENT_WORDS = frozenset({"client", "outbound", "egress"})
_SERVER_WORDS = frozenset({"server", "inbound", "ingress"})
_REPORTER_SIDE = {"source": "client", "destination": "server"}
# Labels that name the callee of a per-edge series (Istio, Linkerd, OpenTelemetry span
# metrics, service-graph connectors); the series then belongs to the caller.
CALLEE_LABELS = (
    "destination_service",
    "destination_service_name",
    "destination_workload",
    "destination_app",
    "destination",
    "dst_service",
    "dst",
    "callee",
    "peer_service",
)


@functools.lru_cache(maxsize=4096)
def _side_of_name(name: str) -> str | None:
    """The side a series name says it measures (ranking asks it of every finding, often)."""
    words = set(re.split(r"[^a-z0-9]+", _CAMEL.sub("_", name).lower()))
    if words & _CLIENT_WORDS:
        return "client"
    if words & _SERVER_WORDS:
        return "server"
    return None


def callee_of(signal: Signal) -> str | None:
    """The callee a per-edge series measures calls to, if a label names one other than the
    series' own service (Istio's ``destination_service`` is a DNS name: its first label)."""
    for label in CALLEE_LABELS:
        value = signal.labels.get(label)
        if value:
            callee = value.split(".", 1)[0]
            return callee if callee != signal.service else None
    return None


def side_of(signal: Signal) -> str | None:
    """``"client"`` for what the service waits on, ``"server"`` for what it serves, ``None``
    when the series does not say. A per-edge series is always the caller's wait."""
    if callee_of(signal) is not None:
        return "client"
    reporter = _REPORTER_SIDE.get(signal.labels.get("reporter", ""))
    if reporter is not None:
        return reporter
    return _side_of_name(signal.name)


# node_exporter's ``node_*``, kube-state-metrics' ``kube_node_*`` and CamelCase ``Node...``
# names: the host's own series, whatever pod they were collected for.
_HOST = re.compile(r"^(?:kube_)?node_|^Node[A-Z]")


def own_series(signal: Signal) -> bool:
    """Whether the series is the service's own: neither what it waits for from its
    dependencies (client side) nor a per-edge series about one callee."""
    return side_of(signal) != "client" and callee_of(signal) is None


def host_level(signal: Signal) -> bool:
    """Whether the series measures the node the pod runs on rather than the pod: it moves for
    whatever else runs there too, so it cannot single out one service."""
    return bool(_HOST.match(signal.name))
