"""Sources that serve data already in hand as a live backend would, so that an evaluation can
run the live collection (:func:`connectors.collect.collect_live`) over a simulated incident
without a server: ``SnapshotMetrics`` (series and call graph, the shape of the Prometheus
fetch) and ``SnapshotLogs`` (log lines, the shape of the Elasticsearch fetch)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from agent.models import LogRecord, Signal
from agent.snapshot import Snapshot
from connectors.prometheus import MetricFetch


@dataclass
class SnapshotMetrics:
    """A metrics source serving a snapshot's series and call graph, as Prometheus would: the
    series inside the asked range (of the asked services, when some are), every edge."""

    snapshot: Snapshot
    name: str = "snapshot"

    def fetch(
        self,
        start: datetime,
        end: datetime,
        services: Sequence[str] = (),
        alert_labels: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> MetricFetch:
        low, high = start.timestamp(), end.timestamp()
        signals = [
            cropped
            for s in self.snapshot.signals
            if not services or s.service in services
            if (cropped := _crop(s, low, high)) is not None
        ]
        edges = list(self.snapshot.topology.edges) if self.snapshot.topology else []
        return MetricFetch(signals=signals, edges=edges)


def _crop(signal: Signal, low: float, high: float) -> Signal | None:
    keep = [i for i, t in enumerate(signal.timestamps) if low <= t <= high]
    if not keep:
        return None
    update = {
        "timestamps": signal.timestamps[keep[0] : keep[-1] + 1],
        "values": signal.values[keep[0] : keep[-1] + 1],
    }
    return signal.model_copy(update=update)


@dataclass
class SnapshotLogs:
    """A log source serving given lines (a snapshot's) in the shape of the Elasticsearch
    fetch: those inside the asked window, and of the asked services when ``by_service`` and
    some are asked. Without ``by_service`` every service's lines come back, so that a live
    analysis sees the same logs as the snapshot's and only the metrics path differs."""

    lines: Sequence[LogRecord]
    by_service: bool = True
    records: list[LogRecord] = field(default_factory=list)
    count_signals: list[Signal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fetch(
        self,
        services: Sequence[str],
        start: datetime,
        end: datetime,
        deadline: float | None = None,
    ) -> SnapshotLogs:
        wanted = services if self.by_service else ()
        inside = [
            r
            for r in self.lines
            if start <= r.timestamp <= end and (not wanted or r.service in wanted)
        ]
        return SnapshotLogs(self.lines, self.by_service, records=inside)
