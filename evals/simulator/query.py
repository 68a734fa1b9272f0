"""What a live query returns: the default catalog's PromQL evaluated over the scraped series.

The live path (``connectors/prometheus.py``) never sees the simulator's exact rates and
percentiles; it sees what Prometheus computes from scraped counters and histogram buckets.
:func:`observe` computes the same, so that the snapshot the engine is tuned and scored on
holds what a live query over the same incident returns:

- rates are ``irate(x[w])`` at every step, with the step and the window ``w`` chosen by the
  connector's own :class:`~connectors.promplan.QueryPlan` (one step per scrape, ``w`` three
  scrapes): the increase between the last two samples in ``[t - w, t]`` (Prometheus 2.x
  ranges include both ends), nothing with fewer than two, a reset counted from zero;
- ``sum by`` adds the series present at a step, and is absent where none is;
- a ratio with a zero denominator is ``NaN``, which the connector reads as a gap;
- latency quantiles are ``histogram_quantile`` over the summed bucket rates: linear
  interpolation inside the bucket that holds the rank, the highest finite bound once the rank
  falls in ``+Inf``, ``NaN`` without observations;
- gauges are the scraped sample at the step or nothing: a scraping Prometheus marks a series
  stale when a scrape fails or its pod goes (``export.py`` writes those marks for a backfill).

Counters therefore outlive their pod by up to the window, as they do in Prometheus.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from connectors.promplan import QueryPlan, scope_filter
from connectors.settings import PrometheusSettings
from evals.simulator.scrape import BUCKETS, Counter, Exposition, Gauge, Histogram, expose
from evals.simulator.telemetry import FloatArray, PodSeries, ServiceSeries, Telemetry
from evals.simulator.topology import ServiceGraph

QUANTILES = (0.5, 0.9, 0.99)  # the rows of ServiceSeries.latency


def query_plan(graph: ServiceGraph, telemetry: Telemetry) -> QueryPlan:
    """The live path's query plan over the scenario's window, scoped to its namespace as the
    alert's labels scope it (default settings): one step per scrape."""
    settings, timeline = PrometheusSettings(), telemetry.timeline
    plan = QueryPlan.build(
        datetime.fromtimestamp(timeline.start, UTC),
        datetime.fromtimestamp(timeline.end, UTC),
        timeline.resolution,
        settings.max_points,
        settings.service_label,
        scope_filter(settings.selector, settings.scope_labels, {"namespace": graph.namespace}),
    )
    if plan.rate_function != "irate" or plan.step_s != timeline.resolution:
        raise ValueError(
            f"the live query plan steps every {plan.step_s} s over {timeline.length} samples "
            f"at {timeline.resolution} s; only one step per scrape (irate) is emulated"
        )
    return plan


def irate(total: FloatArray, scraped: np.ndarray, window: int, step: float) -> FloatArray:
    """``irate(x[window])`` at every sample time; ``NaN`` where it returns nothing."""
    index = np.arange(len(total))
    last = np.maximum.accumulate(np.where(scraped, index, -1))
    before = np.where(last >= 1, last[np.maximum(last - 1, 0)], -1)
    valid = (last >= 0) & (before >= 0) & (before >= index - window)
    first, second = total[np.maximum(before, 0)], total[np.maximum(last, 0)]
    increase = np.where(second < first, second, second - first)
    elapsed = np.maximum(last - before, 1) * step
    return np.where(valid, increase / elapsed, np.nan)


def sum_present(rows: Sequence[FloatArray]) -> FloatArray:
    """``sum by``: the series present at each step added in the order given (Prometheus adds
    them in label order; float addition is not associative), ``NaN`` where none is."""
    total = np.full(len(rows[0]), np.nan) if rows else np.array([], dtype=np.float64)
    for row in rows:
        total = np.where(np.isfinite(row), np.where(np.isfinite(total), total + row, row), total)
    return total


def ratio(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """``a / b``: ``NaN`` where either is missing or ``b`` is zero (0/0 in PromQL)."""
    safe = np.where(denominator != 0, denominator, 1.0)
    return np.where(denominator != 0, numerator / safe, np.nan)


def histogram_quantile(q: float, buckets: FloatArray) -> FloatArray:
    """Prometheus 2.x ``histogram_quantile`` over cumulative bucket rates (rows: :data:`BUCKETS`,
    then ``+Inf``) at every step; ``NaN`` where a bucket is missing or nothing was observed."""
    bounds = np.asarray(BUCKETS)
    present = np.isfinite(buckets).all(axis=0)
    counts = np.maximum.accumulate(np.where(present, buckets, 0.0), axis=0)  # ensureMonotonic
    observed = counts[-1]
    rank = q * observed
    reached = counts[:-1] >= rank  # sort.Search over the finite buckets
    b = np.where(reached.any(axis=0), reached.argmax(axis=0), len(BUCKETS))
    inside = np.minimum(b, len(BUCKETS) - 1)
    previous = np.maximum(inside - 1, 0)
    start = np.where(inside > 0, bounds[previous], 0.0)
    below = np.where(inside > 0, np.take_along_axis(counts, previous[None], 0)[0], 0.0)
    count = np.take_along_axis(counts, inside[None], 0)[0] - below
    share = (rank - below) / np.where(count > 0, count, 1.0)
    value = start + (bounds[inside] - start) * share
    value = np.where(b == len(BUCKETS), bounds[-1], value)
    return np.where(present & (observed > 0), value, np.nan)


def label_order(series: Counter | Gauge | Histogram) -> list[tuple[str, str]]:
    """The order Prometheus keeps series in: by label set, label names sorted."""
    return sorted(series.labels.items())


class Observer:
    """Evaluates the catalog's queries for each service and pod of one scenario."""

    def __init__(self, graph: ServiceGraph, telemetry: Telemetry, exposition: Exposition) -> None:
        self.graph, self.telemetry, self.exposition = graph, telemetry, exposition
        self.plan = query_plan(graph, telemetry)
        self.window = self.plan.rate_window_s // telemetry.timeline.resolution
        self.step = float(telemetry.timeline.resolution)
        self.requests = exposition.by_service("http_requests")
        self.latency = exposition.by_service("http_request_duration_seconds")
        self.retransmits = exposition.by_service("node_netstat_tcp_retrans_segs")
        self.pod_series = {
            (s.name, s.labels["service"], s.labels["pod"]): s
            for family, members in exposition.families
            for s in members
            if "pod" in s.labels and family.name != "http_requests"
        }

    def rate(self, series: Counter | Gauge | Histogram) -> FloatArray:
        if not isinstance(series, Counter):
            raise TypeError(f"{series.name} is not a counter")
        return irate(series.total, series.scraped, self.window, self.step)

    def traffic(self, service: str) -> tuple[FloatArray, FloatArray]:
        """``sum(irate(http_requests_total))`` and the 5xx share of it, as the catalog asks."""
        requests = sorted(self.requests.get(service, []), key=label_order)
        total = sum_present([self.rate(c) for c in requests])
        failed = sum_present([self.rate(c) for c in requests if c.labels["code"] == "500"])
        return total, ratio(failed, total)

    def quantile(self, service: str, q: float) -> FloatArray:
        histogram = self.latency[service][0]
        if not isinstance(histogram, Histogram):
            raise TypeError(f"{histogram.name} is not a histogram")
        rates = [irate(row, histogram.scraped, self.window, self.step) for row in histogram.buckets]
        return histogram_quantile(q, np.vstack(rates))

    def retransmit_rate(self, service: str) -> FloatArray:
        return self.rate(self.retransmits[service][0])

    def pod_rate(self, name: str, service: str, pod: str) -> FloatArray:
        return self.rate(self.pod_series[(name, service, pod)])

    def throttled(self, service: str, pod: str) -> FloatArray:
        return ratio(
            self.pod_rate("container_cpu_cfs_throttled_periods_total", service, pod),
            self.pod_rate("container_cpu_cfs_periods_total", service, pod),
        )

    def service(self, name: str) -> ServiceSeries:
        series = self.telemetry.services[name]
        rps, error_ratio = self.traffic(name)
        return dataclasses.replace(
            series,
            rps=rps,
            error_ratio=error_ratio,
            latency=np.vstack([self.quantile(name, q) for q in QUANTILES]),
            net_errors=self.retransmit_rate(name),
            pods=[self.pod(name, pod) for pod in series.pods],
        )

    def pod(self, service: str, pod: PodSeries) -> PodSeries:
        return dataclasses.replace(
            pod,
            cpu=self.pod_rate("container_cpu_usage_seconds_total", service, pod.name),
            throttled=self.throttled(service, pod.name),
            memory=np.where(pod.alive, pod.memory, np.nan),
            restarts=np.where(pod.alive, pod.restarts, np.nan),
        )


def observe(graph: ServiceGraph, telemetry: Telemetry) -> Telemetry:
    """The telemetry as a live query over the scraped series returns it (module docstring).

    Rates, ratios and latency quantiles are replaced; gauges keep their scraped samples.
    """
    observer = Observer(graph, telemetry, expose(graph, telemetry))
    services = {spec.name: observer.service(spec.name) for spec in graph.services}
    return dataclasses.replace(telemetry, services=services)
