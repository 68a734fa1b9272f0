"""Turn observed telemetry into :class:`~agent.models.Signal` objects in one naming dialect.

The telemetry rendered is what a query returns (``query.py``): rates over a window, latency
quantiles interpolated in histogram buckets, gauges only where scraped. A pod's series runs
from its first to its last value, as a live query trimmed to the pod returns it; gaps become
``None``; values keep six significant digits, as exporters print them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from agent.models import Signal
from evals.simulator.dialects import Naming, Variant
from evals.simulator.telemetry import FloatArray, PodSeries, ServiceSeries, Telemetry
from evals.simulator.topology import ServiceGraph, ServiceSpec

_ORIGIN = {"prometheus": "promql", "opentelemetry": "otlp", "datadog": "datadog", "rcaeval": "csv"}
_POD_ROLES = ("cpu", "memory", "restarts", "throttling")


def _span(values: FloatArray) -> np.ndarray:
    """From the first to the last finite value: where a pod's series exists."""
    present = np.flatnonzero(np.isfinite(values))
    keep = np.zeros(len(values), dtype=bool)
    if len(present):
        keep[present[0] : present[-1] + 1] = True
    return keep


def significant(values: FloatArray, digits: int = 6) -> list[float | None]:
    finite = np.isfinite(values)
    magnitude = np.floor(np.log10(np.abs(np.where(finite & (values != 0), values, 1.0))))
    scale = 10.0 ** (digits - 1 - magnitude)
    rounded = np.round(np.where(finite, values, 0.0) * scale) / scale
    return [
        float(v) if ok else None for v, ok in zip(rounded.tolist(), finite.tolist(), strict=True)
    ]


def _service_source(series: ServiceSeries, source: str) -> FloatArray | None:
    if source == "error_rate":
        return series.rps * series.error_ratio
    if source == "disk_used_bytes" and series.disk_used is not None:
        return series.disk_used * series.disk_bytes
    if source == "disk_free_bytes" and series.disk_used is not None:
        return (1 - series.disk_used) * series.disk_bytes
    value = getattr(series, source, None)
    return value if isinstance(value, np.ndarray) else None


def _pod_source(pod: PodSeries, source: str) -> FloatArray:
    if source == "cpu_ratio":
        return pod.cpu / pod.cpu_limit
    if source == "throttled_s":
        return pod.throttled * pod.cpu_limit
    value: FloatArray = getattr(pod, source)
    return value


def _rolled_up(series: ServiceSeries, source: str) -> FloatArray:
    """Per-service value of a pod quantity: sums for amounts, means for ratios, over the pods
    with a value at each step."""
    stack = np.vstack([_pod_source(p, source) for p in series.pods])
    present = ~np.isnan(stack)
    total = np.where(present, stack, 0.0).sum(axis=0)
    count = present.sum(axis=0)
    mean_like = source in ("cpu_ratio", "throttled")
    values = total / np.maximum(count, 1) if mean_like else total
    return np.where(count > 0, values, np.nan)


class SignalWriter:
    """Renders the series of one scenario under one :class:`Naming`."""

    def __init__(
        self,
        graph: ServiceGraph,
        telemetry: Telemetry,
        naming: Naming,
        rng: np.random.Generator,
    ) -> None:
        self.graph, self.telemetry, self.naming, self.rng = graph, telemetry, naming, rng
        self.times = telemetry.timeline.times

    def signals(self) -> list[Signal]:
        result: list[Signal] = []
        for spec in self.graph.services:
            result += self._service(spec)
        return result

    def _make(
        self,
        spec: ServiceSpec,
        variant: Variant,
        values: FloatArray,
        pod: str | None = None,
        quantile: int | None = None,
        alive: np.ndarray | None = None,
    ) -> Signal:
        name, labels = variant.name, dict(variant.labels)
        if quantile is not None and variant.quantiles is not None:
            spelled = variant.quantiles[quantile]
            name = name.replace("{q}", spelled)
            labels = {k: v.replace("{q}", spelled) for k, v in labels.items()}
        if pod is not None and self.naming.dialect == "prometheus":
            labels["namespace"] = self.graph.namespace
        stamps, scaled = self.times, values * variant.scale
        if alive is not None:
            stamps, scaled = stamps[alive], scaled[alive]
        omit_kind = self.rng.random() < self.naming.kind_missing
        where = f"{spec.name}_{name}" if self.naming.dialect == "rcaeval" else name
        return Signal(
            service=spec.name,
            name=name,
            kind=None if omit_kind else variant.kind,
            unit=variant.unit if self.naming.units else "",
            pod=pod,
            resolution_s=float(self.telemetry.timeline.resolution),
            timestamps=stamps.tolist(),
            values=significant(scaled),
            labels=labels,
            origin=f"{_ORIGIN[self.naming.dialect]}:{where}",
        )

    def _roles(self, spec: ServiceSpec) -> Iterator[str]:
        yield from ("traffic", "errors")
        if spec.is_external:
            yield "up"
            return
        if self.rng.random() < 0.75:  # not every stack scrapes TCP counters
            yield "network"
        yield "deploy"
        if spec.is_datastore:
            yield "up"
        if spec.has_pool:
            yield from ("pool_used", "pool_wait")
        if spec.has_disk:
            yield "disk"

    def _service(self, spec: ServiceSpec) -> list[Signal]:
        series = self.telemetry.services[spec.name]
        variants = self.naming.variants
        result = []
        for role in self._roles(spec):
            values = _service_source(series, variants[role].source)
            if values is not None:
                result.append(self._make(spec, variants[role], values))
        latency = variants["latency"]
        for q in self.naming.percentiles:
            result.append(self._make(spec, latency, series.latency[q], quantile=q))
        if series.pods:
            result += self._pods(spec, series)
        return result

    def _pods(self, spec: ServiceSpec, series: ServiceSeries) -> list[Signal]:
        roles = [r for r in _POD_ROLES if r != "throttling" or self.rng.random() < 0.5]
        result = []
        for role in roles:
            variant = self.naming.variants[role]
            if not self.naming.pod_level:
                result.append(self._make(spec, variant, _rolled_up(series, variant.source)))
                continue
            for pod in series.pods:
                values = _pod_source(pod, variant.source)
                span = _span(values)
                if span.any():
                    result.append(self._make(spec, variant, values, pod=pod.name, alive=span))
        return result


def render_signals(
    graph: ServiceGraph, telemetry: Telemetry, naming: Naming, rng: np.random.Generator
) -> list[Signal]:
    return SignalWriter(graph, telemetry, naming, rng).signals()
