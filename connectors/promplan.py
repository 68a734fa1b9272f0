"""From a catalog and a time range to PromQL queries, and from their results to Signals.

Pure functions, no I/O: :class:`QueryPlan` fixes the step (so no series exceeds
``max_points``), the ``rate()`` window and the label matchers once per fetch, renders each
catalog entry, and turns the API's ``matrix`` results into :class:`~agent.models.Signal`
objects named by the catalog, with a graph link per service.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from agent.models import Edge, Signal
from connectors.catalog import CatalogSignal, TopologyQuery
from connectors.promql import any_of, duration, equals, join_matchers, render


def aligned(moment: datetime, step_s: int) -> datetime:
    """``moment`` rounded down to a multiple of ``step_s`` (stable steps across queries)."""
    seconds = math.floor(moment.timestamp() / step_s) * step_s
    return datetime.fromtimestamp(seconds, tz=UTC)


@dataclass(frozen=True)
class QueryPlan:
    """Everything a fetch needs to render and read the catalog's queries."""

    start: datetime
    end: datetime
    step_s: int
    interval_s: int
    rate_window_s: int
    service_label: str
    filter: str  # matchers without the service matcher
    services: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        start: datetime,
        end: datetime,
        interval_s: float,
        max_points: int,
        service_label: str,
        filter: str,
        services: Sequence[str] = (),
    ) -> QueryPlan:
        """The step is the scrape interval unless that would exceed ``max_points``. The rate
        window spans a step plus a scrape, and at least three scrapes, so that one missed
        scrape still leaves two samples in it."""
        span = (end - start).total_seconds()
        interval = max(1, math.ceil(interval_s))
        # Aligning both ends down can widen the range by up to one step: keep two in reserve.
        step = max(interval, math.ceil(span / max(1, max_points - 2)))
        rate_window = max(step + interval, 3 * interval)
        return cls(
            start=aligned(start, step),
            end=aligned(end, step),
            step_s=step,
            interval_s=interval,
            rate_window_s=rate_window,
            service_label=service_label,
            filter=filter,
            services=tuple(sorted(set(services))),
        )

    @property
    def rate_function(self) -> str:
        """``irate`` while every scrape is a step: each point is then the rate between two
        samples, as a snapshot holds it (a missed scrape widens one point, it does not halve
        a sum over pods); ``rate`` once a step spans several scrapes, so none is skipped."""
        return "irate" if self.step_s <= self.interval_s else "rate"

    def labels_of(self, entry: CatalogSignal) -> list[str]:
        """The labels that may name a service for ``entry``, most preferred first."""
        labels = [*entry.service_labels]
        if self.service_label not in labels:
            labels.append(self.service_label)
        return labels

    def selector(self, entry: CatalogSignal, service: tuple[str, str] | None = None) -> str:
        """Matchers for ``entry``: the filter, plus the service (in PromQL only when a single
        label names services; with fallbacks the services are filtered after the query)."""
        if service is not None:
            return join_matchers(self.filter, equals(*service))
        if self.services and not entry.service_labels:
            return join_matchers(self.filter, any_of(self.service_label, self.services))
        return self.filter

    def query(self, entry: CatalogSignal, service: tuple[str, str] | None = None) -> str:
        by = [*self.labels_of(entry), *(["pod"] if entry.per_pod else [])]
        return render(
            entry.query,
            {
                "selector": self.selector(entry, service),
                "filter": self.filter,
                "by": ", ".join(by),
                "rate_window": duration(self.rate_window_s),
                "rate": self.rate_function,
            },
        )

    def topology_query(self, entry: TopologyQuery) -> str:
        span = (self.end - self.start).total_seconds() + self.step_s
        return render(
            entry.query,
            {"filter": self.filter, "window": duration(span), "rate_window": duration(span)},
        )


def scope_filter(
    selector: str, scope_labels: Sequence[str], alert_labels: Mapping[str, str]
) -> str:
    """The configured selector plus one escaped matcher per scope label the alert carries."""
    scoped = [
        equals(label, alert_labels[label]) for label in scope_labels if alert_labels.get(label)
    ]
    return join_matchers(selector, *scoped)


def graph_link(base_url: str, query: str, plan: QueryPlan) -> str:
    """The Prometheus expression browser showing ``query`` over the plan's range."""
    params = {
        "g0.expr": query,
        "g0.tab": "0",
        "g0.range_input": duration((plan.end - plan.start).total_seconds() + plan.step_s),
        "g0.end_input": plan.end.strftime("%Y-%m-%d %H:%M:%S"),
        "g0.step_input": str(plan.step_s),
    }
    return f"{base_url.rstrip('/')}/graph?{urlencode(params)}"


def _service_of(labels: Mapping[str, str], names: Sequence[str]) -> tuple[str, str] | None:
    """The (label, value) that names the series' service: the first non-empty label."""
    for name in names:
        if value := labels.get(name):
            return name, value
    return None


def on_grid(
    points: Sequence[Sequence[Any]], plan: QueryPlan, trim: bool = False
) -> tuple[list[float], list[float | None]]:
    """The series on every step of the plan, ``None`` where Prometheus had no sample.

    Prometheus leaves such steps out; the engine needs them as gaps to tell a service that
    went silent from one that is fine. Pods come and go (rollouts, autoscaling), so with
    ``trim`` a pod's series covers only its own lifetime, the way snapshots hold pods. A
    ``NaN`` (0/0, a histogram without observations, a backfilled staleness mark) is a gap
    too, so it neither starts nor ends a pod's series.
    """
    first, step = plan.start.timestamp(), plan.step_s
    count = int((plan.end.timestamp() - first) // step) + 1
    values: list[float | None] = [None] * count
    for stamp, value in points:
        index = round((float(stamp) - first) / step)
        number = float(value)
        if 0 <= index < count and math.isfinite(number):
            values[index] = number
    stamps = [first + i * step for i in range(count)]
    if trim:
        present = [i for i, v in enumerate(values) if v is not None]
        if not present:
            return [], []
        keep = slice(present[0], present[-1] + 1)
        return stamps[keep], values[keep]
    return stamps, values


def to_signals(
    entry: CatalogSignal, result: Sequence[Mapping[str, Any]], plan: QueryPlan, base_url: str
) -> list[Signal]:
    """One Signal per result series that names a service in scope."""
    names = plan.labels_of(entry)
    origin = f"prometheus: {plan.query(entry)}"
    signals: list[Signal] = []
    for series in result:
        labels: dict[str, str] = dict(series.get("metric", {}))
        owner = _service_of(labels, names)
        if owner is None or (plan.services and owner[1] not in plan.services):
            continue
        timestamps, values = on_grid(series.get("values", []), plan, trim=entry.per_pod)
        if not timestamps:
            continue
        pod = labels.get("pod") if entry.per_pod else None
        rest = {k: v for k, v in labels.items() if k not in names and k not in ("pod", "__name__")}
        signals.append(
            Signal(
                service=owner[1],
                name=entry.name,
                kind=entry.kind,
                unit=entry.unit,
                pod=pod or None,
                resolution_s=float(plan.step_s),
                timestamps=timestamps,
                values=values,
                labels=rest,
                origin=origin,
                link=graph_link(base_url, plan.query(entry, owner), plan),
            )
        )
    return signals


def until_data_ends(signals: list[Signal]) -> list[Signal]:
    """The signals without the steps after the last one where any series had data.

    Past that point the source has nothing yet (ingestion lag) or nothing any more (an old
    incident replayed past its data): silence from every service at once is the source's,
    not the services'.
    """
    last = max(
        (t for s in signals for t, v in zip(s.timestamps, s.values, strict=True) if v is not None),
        default=None,
    )
    if last is None:
        return signals
    trimmed = []
    for signal in signals:
        keep = sum(1 for t in signal.timestamps if t <= last)
        if keep == len(signal.timestamps):
            trimmed.append(signal)
        elif keep:
            update = {"timestamps": signal.timestamps[:keep], "values": signal.values[:keep]}
            trimmed.append(signal.model_copy(update=update))
    return trimmed


def to_edges(entry: TopologyQuery, result: Sequence[Mapping[str, Any]]) -> list[Edge]:
    """Call edges from an instant vector: series with a positive value and both labels."""
    edges: list[Edge] = []
    for series in result:
        labels = series.get("metric", {})
        caller, callee = labels.get(entry.caller_label), labels.get(entry.callee_label)
        value = float(series.get("value", [0, "0"])[1])
        if caller and callee and caller != callee and value > 0:
            edges.append(Edge(caller=caller, callee=callee))
    return edges
