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
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from agent.models import LogRecord
from evals.simulator.scrape import BUCKETS, Counter, Gauge, Histogram, Series, expose
from evals.simulator.telemetry import Telemetry
from evals.simulator.topology import ServiceGraph

# A scraping Prometheus writes a staleness marker when a scrape fails or a series goes; the
# text format cannot carry one, but a NaN sample reads back the same way through an instant
# selector (the connector takes a NaN value for a gap), so gauges get NaN there. Counters do
# not: every query reads them through rate(), where a NaN would poison the window.
_STALE = "NaN"


def _labels(pairs: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in pairs.items())
    return f"{{{inner}}}"


def _stamp(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:.3f}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def _counter_lines(series: Counter, times: list[float]) -> Iterator[str]:
    tag = _labels(series.labels)
    for i in np.flatnonzero(series.scraped).tolist():
        yield f"{series.name}{tag} {_number(series.total[i])} {_stamp(times[i])}"


def _gauge_lines(series: Gauge, times: list[float]) -> Iterator[str]:
    """Scraped samples, a stale mark for each missed scrape and once after the series ends."""
    tag = _labels(series.labels)
    life = series.life.tolist()
    for i, (alive, ok, value) in enumerate(
        zip(life, series.scraped.tolist(), series.values.tolist(), strict=True)
    ):
        if ok:
            yield f"{series.name}{tag} {value:.6g} {_stamp(times[i])}"
        elif alive or (i > 0 and life[i - 1]):
            yield f"{series.name}{tag} {_STALE} {_stamp(times[i])}"


def _histogram_lines(series: Histogram, times: list[float]) -> Iterator[str]:
    name, base = series.name, series.labels
    les = [*(str(b) for b in BUCKETS), "+Inf"]
    for i in np.flatnonzero(series.scraped).tolist():
        stamp = _stamp(times[i])
        for le, row in zip(les, series.buckets, strict=True):
            yield f"{name}_bucket{_labels({**base, 'le': le})} {int(row[i])} {stamp}"
        yield f"{name}_count{_labels(base)} {int(series.buckets[-1][i])} {stamp}"
        yield f"{name}_sum{_labels(base)} {series.sum[i]:.3f} {stamp}"


def _series_lines(series: Series, times: list[float]) -> Iterator[str]:
    if isinstance(series, Counter):
        return _counter_lines(series, times)
    if isinstance(series, Gauge):
        return _gauge_lines(series, times)
    return _histogram_lines(series, times)


def openmetrics_lines(graph: ServiceGraph, telemetry: Telemetry) -> Iterator[str]:
    """Every line of the OpenMetrics exposition, family by family, ending with ``# EOF``."""
    times = telemetry.timeline.times.tolist()
    for family, members in expose(graph, telemetry).families:
        if members:
            yield from family.header()
            for series in members:
                yield from _series_lines(series, times)
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
