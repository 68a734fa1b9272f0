"""What the exporters expose and what Prometheus stores of it: the scenario as scraped series.

Exporters count; Prometheus samples the counts. So counters (requests by status code, CPU
seconds, CFS periods, retransmits) and the latency histogram accumulate the incident's
quantities *before* any scrape is missed (:attr:`Telemetry.counted`), and a missed scrape
loses a sample, not the requests it would have counted. Requests and histogram observations
are whole numbers, as client libraries count them; CPU seconds keep three decimals, as the
text export prints them. Gauges are their level at each scrape.

One :class:`Exposition` feeds both the OpenMetrics export (``export.py``), which a real
Prometheus ingests, and the PromQL emulation (``query.py``), which turns it into the values a
live query returns: the snapshot and the live path then start from the same samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from evals.simulator.telemetry import (
    BoolArray,
    FloatArray,
    PodSeries,
    ServiceSeries,
    Telemetry,
)
from evals.simulator.topology import ServiceGraph

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CFS_PERIODS_PER_SECOND = 10.0  # the kernel's default 100 ms CFS period
_erf = np.frompyfunc(math.erf, 1, 1)


@dataclass(frozen=True)
class Family:
    """One metric family: its ``# TYPE``/``# UNIT``/``# HELP``."""

    name: str
    type: str
    help: str
    unit: str = ""

    def header(self) -> list[str]:
        lines = [f"# TYPE {self.name} {self.type}"]
        if self.unit:
            lines.append(f"# UNIT {self.name} {self.unit}")
        return [*lines, f"# HELP {self.name} {self.help}"]


@dataclass(frozen=True)
class Counter:
    """A cumulative count, sampled where ``scraped``."""

    name: str
    labels: dict[str, str]
    total: FloatArray
    scraped: BoolArray


@dataclass(frozen=True)
class Gauge:
    """A level, sampled where ``scraped``; ``life`` is when the series exists at all (a pod's
    lifetime), so that a scrape missed inside it can be told from a pod that is gone."""

    name: str
    labels: dict[str, str]
    values: FloatArray
    scraped: BoolArray
    life: BoolArray


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts per ``le`` (rows follow :data:`BUCKETS`, then ``+Inf``, which
    is also ``_count``) and the ``_sum``, sampled together where ``scraped``."""

    name: str
    labels: dict[str, str]
    buckets: FloatArray
    sum: FloatArray
    scraped: BoolArray


Series = Counter | Gauge | Histogram

_POD_FAMILIES = (
    Family("container_cpu_usage_seconds", "counter", "CPU time consumed.", "seconds"),
    Family("container_memory_working_set_bytes", "gauge", "Working set of the container.", "bytes"),
    Family("kube_pod_container_status_restarts", "counter", "Container restarts."),
    Family("container_cpu_cfs_throttled_periods", "counter", "Throttled CFS periods."),
    Family("container_cpu_cfs_periods", "counter", "Elapsed CFS enforcement periods."),
    Family("kube_pod_container_resource_limits", "gauge", "Resource limits of the container."),
)
_SERVICE_GAUGES = (
    (Family("up", "gauge", "Whether the target answered its last scrape."), "up"),
    (
        Family(
            "kube_deployment_status_observed_generation",
            "gauge",
            "Generation observed by the controller.",
        ),
        "generation",
    ),
    (Family("db_client_connections_in_use", "gauge", "Pool connections in use."), "pool_in_use"),
    (
        Family("db_client_connections_pending", "gauge", "Requests waiting for a connection."),
        "pool_pending",
    ),
    (
        Family("kubelet_volume_stats_used_bytes", "gauge", "Bytes used on the volume.", "bytes"),
        "disk_used",
    ),
)
_RETRANSMITS = Family("node_netstat_tcp_retrans_segs", "counter", "TCP segments retransmitted.")


@dataclass
class Exposition:
    """Every series of a scenario, family by family, in the order they are exported."""

    families: list[tuple[Family, list[Series]]] = field(default_factory=list)

    def add(self, family: Family, series: list[Series]) -> None:
        self.families.append((family, series))

    def series(self, family: str) -> list[Series]:
        return next((s for f, s in self.families if f.name == family), [])

    def by_service(self, family: str) -> dict[str, list[Series]]:
        grouped: dict[str, list[Series]] = {}
        for series in self.series(family):
            grouped.setdefault(series.labels["service"], []).append(series)
        return grouped


def _missed(counted: FloatArray, scraped: FloatArray) -> BoolArray:
    """Samples that existed but whose scrape was missed (a gap punched after counting)."""
    return np.asarray(np.isfinite(counted) & ~np.isfinite(scraped))


def printed(values: FloatArray, spec: str) -> FloatArray:
    """``values`` as Prometheus stores them after reading them printed with ``spec`` (``.3f``
    or ``.Ng``): the nearest double to the printed decimal, computed without printing where
    scaling by a power of ten is exact (below 1e7 for ``.3f``)."""
    finite = np.isfinite(values)
    if spec == ".3f":
        if np.abs(values[finite]).max(initial=0.0) < 1e7:
            return np.round(values, 3)
        return np.array([float(format(v, spec)) for v in values.tolist()], dtype=np.float64)
    digits = int(spec[1:-1])
    nonzero = finite & (values != 0)
    magnitude = np.floor(np.log10(np.abs(np.where(nonzero, values, 1.0)))).astype(int)
    exponent = magnitude - (digits - 1)
    up, down = 10.0 ** np.maximum(exponent, 0), 10.0 ** np.maximum(-exponent, 0)
    scaled = np.where(exponent >= 0, np.round(values / up) * up, np.round(values * down) / down)
    return np.where(nonzero, scaled, values)


def _total(rates: FloatArray, step: float, whole: bool) -> FloatArray:
    """Cumulative count of a per-second rate; no rate (a dead process) counts nothing."""
    total = np.cumsum(np.where(np.isfinite(rates), np.maximum(rates, 0.0), 0.0) * step)
    return np.floor(total) if whole else printed(total, ".3f")


def _lognormal_share(p50: FloatArray, p99: FloatArray, bound: float) -> FloatArray:
    """Share of requests faster than ``bound`` for a log-normal fitted to p50 and p99."""
    sigma = np.maximum(np.log(np.maximum(p99, p50 * 1.001) / p50) / 2.326, 1e-3)
    z = (np.log(bound) - np.log(p50)) / (sigma * math.sqrt(2.0))
    return np.clip(0.5 * (1.0 + _erf(z).astype(np.float64)), 0.0, 1.0)


class Scraper:
    """Builds the :class:`Exposition` of one scenario; see the module docstring."""

    def __init__(self, graph: ServiceGraph, telemetry: Telemetry) -> None:
        self.graph, self.telemetry = graph, telemetry
        self.counted = telemetry.counted or telemetry.services
        self.step = float(telemetry.timeline.resolution)
        self.always = np.ones(telemetry.timeline.length, dtype=bool)

    def exposition(self) -> Exposition:
        out = Exposition()
        requests: list[Series] = [
            c for spec in self.graph.services for c in self._requests(spec.name)
        ]
        out.add(Family("http_requests", "counter", "HTTP requests by status code."), requests)
        out.add(
            Family("http_request_duration_seconds", "histogram", "Request latency.", "seconds"),
            [self._histogram(spec.name) for spec in self.graph.services],
        )
        for family, series in self._pod_families():
            out.add(family, series)
        for family, series in self._service_families():
            out.add(family, series)
        return out

    def _base(self, service: str, pod: str | None = None) -> dict[str, str]:
        labels = {"namespace": self.graph.namespace, "service": service}
        return {**labels, "pod": pod} if pod is not None else labels

    def _requests(self, service: str) -> Iterator[Counter]:
        """Requests per pod and status code; live pods share their service's traffic."""
        now, then = self.telemetry.services[service], self.counted[service]
        # A service that serves but reports no error ratio (a crash loop reading zero) has
        # failed nothing; a punched gap in either quantity is one missed scrape of both.
        failed_share = np.nan_to_num(then.error_ratio)
        missed = _missed(then.rps, now.rps) | _missed(then.error_ratio, now.error_ratio)
        exists = np.isfinite(then.rps)
        pods: list[tuple[PodSeries, PodSeries] | None] = [
            *zip(now.pods, then.pods, strict=True)
        ] or [None]
        alive = np.vstack([p.alive for p in now.pods]).sum(axis=0) if now.pods else 1
        for pair in pods:
            life = pair[0].alive if pair else self.always
            share = np.where(life, 1.0, 0.0) / np.maximum(alive, 1)
            labels = self._base(service, pair[0].name if pair else None)
            for code, part in (("200", 1 - failed_share), ("500", failed_share)):
                yield Counter(
                    "http_requests_total",
                    {**labels, "code": code},
                    _total(then.rps * part * share, self.step, whole=True),
                    exists & life & ~missed,
                )

    def _histogram(self, service: str) -> Histogram:
        now, then = self.telemetry.services[service], self.counted[service]
        exists = np.isfinite(then.rps) & np.isfinite(then.latency).all(axis=0)
        missed = _missed(then.rps, now.rps) | _missed(then.latency, now.latency).any(axis=0)
        count = np.where(exists, np.maximum(then.rps, 0.0), 0.0) * self.step
        p50 = np.where(exists, np.maximum(then.latency[0], 1e-5), 0.01)
        p99 = np.where(exists, then.latency[2], 0.05)
        sigma = np.maximum(np.log(np.maximum(p99, p50 * 1.001) / p50) / 2.326, 1e-3)
        mean = p50 * np.exp(sigma**2 / 2)
        buckets = [np.floor(np.cumsum(count * _lognormal_share(p50, p99, b))) for b in BUCKETS]
        buckets.append(np.floor(np.cumsum(count)))
        return Histogram(
            "http_request_duration_seconds",
            self._base(service),
            np.vstack(buckets),
            printed(np.cumsum(count * mean), ".3f"),
            exists & ~missed,
        )

    def _pod_series(self, service: str, pod: PodSeries, before: PodSeries) -> list[Series]:
        """One pod's series, in the order of :data:`_POD_FAMILIES`."""
        labels = self._base(service, pod.name)
        throttled = before.throttled * CFS_PERIODS_PER_SECOND
        periods = np.where(np.isfinite(before.throttled), CFS_PERIODS_PER_SECOND, np.nan)
        counter = self._pod_counter
        return [
            counter("container_cpu_usage_seconds_total", labels, pod, pod.cpu, before.cpu),
            self._gauge("container_memory_working_set_bytes", labels, pod.memory, pod.alive),
            self._gauge(
                "kube_pod_container_status_restarts_total", labels, pod.restarts, pod.alive
            ),
            counter(
                "container_cpu_cfs_throttled_periods_total", labels, pod, pod.throttled, throttled
            ),
            counter("container_cpu_cfs_periods_total", labels, pod, pod.throttled, periods),
            self._gauge(
                "kube_pod_container_resource_limits",
                {**labels, "resource": "cpu", "unit": "core"},
                np.full(len(pod.cpu), pod.cpu_limit),
                pod.alive,
            ),
        ]

    def _pod_families(self) -> Iterator[tuple[Family, list[Series]]]:
        rows = [
            self._pod_series(spec.name, pod, before)
            for spec in self.graph.services
            for pod, before in zip(
                self.telemetry.services[spec.name].pods, self.counted[spec.name].pods, strict=True
            )
        ]
        for i, family in enumerate(_POD_FAMILIES):
            yield family, [row[i] for row in rows]

    def _pod_counter(
        self, name: str, labels: dict[str, str], pod: PodSeries, now: FloatArray, rates: FloatArray
    ) -> Counter:
        """A container counter: it counts while its pod lives; ``now`` has the missed scrapes.
        CPU seconds keep three decimals; CFS periods are whole."""
        live_rates = np.where(pod.alive, rates, np.nan)
        scraped = pod.alive & np.isfinite(live_rates) & np.isfinite(now)
        whole = "cfs" in name
        return Counter(name, labels, _total(live_rates, self.step, whole), scraped)

    def _gauge(
        self, name: str, labels: dict[str, str], values: FloatArray, life: BoolArray | None = None
    ) -> Gauge:
        life = self.always if life is None else life
        scraped = life & np.isfinite(values)
        level = printed(np.where(scraped, values, np.nan), ".6g")
        return Gauge(name, labels, level, scraped, life)

    def _service_families(self) -> Iterator[tuple[Family, list[Series]]]:
        for family, attribute in _SERVICE_GAUGES:
            gauges: list[Series] = []
            for spec in self.graph.services:
                values = _level(self.telemetry.services[spec.name], attribute)
                if values is not None:
                    gauges.append(self._gauge(family.name, self._base(spec.name), values))
            yield family, gauges
        counters: list[Series] = []
        for spec in self.graph.services:
            now, then = self.telemetry.services[spec.name], self.counted[spec.name]
            counters.append(
                Counter(
                    f"{_RETRANSMITS.name}_total",
                    self._base(spec.name),
                    _total(then.net_errors, self.step, whole=True),
                    np.isfinite(then.net_errors) & np.isfinite(now.net_errors),
                )
            )
        yield _RETRANSMITS, counters


def _level(series: ServiceSeries, attribute: str) -> FloatArray | None:
    values: FloatArray | None = getattr(series, attribute)
    if values is not None and attribute == "disk_used":
        return values * series.disk_bytes
    return values


def expose(graph: ServiceGraph, telemetry: Telemetry) -> Exposition:
    """The scenario's series as exporters expose them and Prometheus stores them."""
    return Scraper(graph, telemetry).exposition()
