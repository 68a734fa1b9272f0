"""Collect one incident's signals and logs from the configured sources into a Snapshot.

This is the ``collect`` stage of the pipeline: the CLI (``rca analyze --alert``, ``rca
record``) and the service's jobs call :func:`collect`, then hand the snapshot to
:func:`agent.engine.pipeline.analyze` with the failures. Replaying a recorded snapshot therefore
runs exactly the same engine on exactly the same data.

Sources, in order of preference:
- live Prometheus and/or Elasticsearch, when their URLs are configured;
- otherwise a directory of recorded snapshots (``snapshot_dir``), for offline use.

Live sources run side by side under one time budget; history before ``incident_start``
(``baseline_minutes``) is fetched as the baseline. With Prometheus, the rollouts of the window
and each pod's version come from kube-state-metrics (:mod:`connectors.k8s_changes`) and
become ``snapshot.changes``; a recording keeps them in ``changes.jsonl`` (none included), so
its replay sees exactly what the live analysis saw. A source that fails, or is still running
when the budget is spent, is recorded as a :class:`~agent.models.SourceFailure`; collection
continues with what the other sources returned. Only a scope that no source can serve at all
raises :class:`~agent.errors.SourceError`.
"""

from __future__ import annotations

import contextvars
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from agent.changes import merge_changes
from agent.config import Settings
from agent.errors import SnapshotError, SourceError
from agent.models import Edge, LogRecord, Signal, SourceFailure, Topology
from agent.scope import as_request, in_neighbourhood, request_alert
from agent.snapshot import Snapshot, SnapshotMeta, WindowSpec, load_snapshot
from agent.window import Framed, incident_start_at
from connectors.alertmanager import AlertmanagerWebhook
from connectors.k8s_changes import ChangeFetch, KubeChanges, aligned
from connectors.prometheus import MetricFetch, PrometheusSource
from connectors.settings import CollectSettings


@dataclass(frozen=True)
class Scope:
    """What to look at: services (empty: all that the sources know) over a time range.

    ``incident_start`` is when the incident is believed to begin (alert ``startsAt`` minus
    the lookback, or an ad-hoc request's start minus the lookback: :mod:`agent.window`);
    history before it, from ``start`` (default: ``baseline_minutes`` earlier), is the baseline.

    ``focus`` names where an ad-hoc request hurts, as an alert's labels do: the sources are
    asked for every service, and the snapshot keeps the focus's call-graph neighbourhood
    (:func:`neighbourhood`), so that a cause downstream of the named service can be found.
    ``anchor`` is the request's start; once the data's resolution is known the incident
    start is settled from it as the engine settles an alert's.
    """

    services: tuple[str, ...]
    incident_start: datetime
    end: datetime
    alert: AlertmanagerWebhook | None = None
    question: str | None = None
    focus: tuple[str, ...] = ()
    anchor: datetime | None = None
    start: datetime | None = None
    notes: tuple[str, ...] = ()  # how the window rule framed it, for the report
    since: datetime | None = None  # when a request says it began to hurt (agent.scope)


def alert_scope(alert: AlertmanagerWebhook, framed: Framed) -> Scope:
    """An alert's scope: every service (the alert names where it hurts, not where it began),
    over the framed window."""
    return Scope(
        services=(),
        incident_start=framed.incident_start,
        end=framed.end,
        alert=alert,
        anchor=framed.anchor,
        start=framed.start,
        notes=framed.notes,
    )


def request_scope(
    services: Sequence[str],
    framed: Framed,
    question: str | None = None,
    since: datetime | None = None,
) -> Scope:
    """An ad-hoc request's scope (API, Slack ``/rca``, ``rca analyze --service``): the named
    services are where it hurts; everything in their neighbourhood may be the cause."""
    return Scope(
        services=(),
        incident_start=framed.incident_start,
        end=framed.end,
        question=question,
        focus=tuple(dict.fromkeys(services)),
        anchor=framed.anchor,
        start=framed.start,
        notes=framed.notes,
        since=since,
    )


@dataclass
class Collected:
    snapshot: Snapshot
    failures: list[SourceFailure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)  # seconds per source asked


class MetricsSource(Protocol):
    """A metrics backend: every catalog signal of the services over one window."""

    name: str

    def fetch(
        self,
        start: datetime,
        end: datetime,
        services: Sequence[str] = (),
        alert_labels: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> MetricFetch: ...


class LogFetchResult(Protocol):
    """What a log source returns (``connectors.elasticsearch.LogFetch``)."""

    records: list[LogRecord]
    count_signals: list[Signal]
    notes: list[str]


class LogSource(Protocol):
    """A log backend: sampled lines plus per service x level counts over one window."""

    def fetch(
        self,
        services: Sequence[str],
        start: datetime,
        end: datetime,
        deadline: float | None = None,
    ) -> LogFetchResult: ...


class ChangeSource(Protocol):
    """Where rollouts are read from: changes and per-pod version series over one window."""

    name: str

    def fetch(
        self,
        start: datetime,
        end: datetime,
        alert_labels: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> ChangeFetch: ...


def collect(scope: Scope, settings: Settings, options: CollectSettings | None = None) -> Collected:
    """Fetch the scope from the configured sources; see the module docstring."""
    if settings.prometheus_url or settings.elasticsearch_url:
        metrics, logs = live_sources(settings)
        options = options or settings.collect
        return collect_live(scope, metrics, logs, options, change_source(metrics, options))
    if settings.snapshot_dir is not None:
        snapshot = recorded_snapshot(scope, settings.snapshot_dir)
        if scope.focus and scope.alert is None:
            lookback = timedelta(minutes=settings.engine.lookback_minutes)
            snapshot = as_request(snapshot, scope.focus, lookback)
        return Collected(snapshot=snapshot)  # a recording keeps its own window: no notes
    raise SourceError(
        "collect",
        "no source configured: set RCA_PROMETHEUS_URL and/or RCA_ELASTICSEARCH_URL, "
        "or RCA_SNAPSHOT_DIR for recorded incidents",
    )


def live_sources(settings: Settings) -> tuple[MetricsSource | None, LogSource | None]:
    """The configured live sources; client libraries are imported only when configured."""
    metrics: MetricsSource | None = None
    logs: LogSource | None = None
    if settings.prometheus_url:
        from connectors.prometheus import PrometheusSource

        metrics = PrometheusSource(settings.prometheus_url, settings.prometheus)
    if settings.elasticsearch_url:
        from connectors.elasticsearch import ElasticsearchSource

        logs = ElasticsearchSource(settings.elasticsearch_url, settings.elasticsearch)
    return metrics, logs


def change_source(metrics: MetricsSource | None, options: CollectSettings) -> ChangeSource | None:
    """Rollouts from kube-state-metrics, on the same Prometheus as the metrics."""
    if options.changes and isinstance(metrics, PrometheusSource):
        return KubeChanges(metrics)
    return None


def collect_live(
    scope: Scope,
    metrics: MetricsSource | None,
    logs: LogSource | None,
    options: CollectSettings,
    changes: ChangeSource | None = None,
) -> Collected:
    """Run the sources side by side until ``options.budget_s``; see the module docstring."""
    start = scope.start or scope.incident_start - timedelta(minutes=options.baseline_minutes)
    deadline = time.monotonic() + options.budget_s
    labels = _alert_labels(scope.alert)
    pool = ThreadPoolExecutor(3, thread_name_prefix="collect")
    jobs: dict[str, Future[Any]] = {}
    began = time.monotonic()
    finished: dict[str, float] = {}

    def timed(name: str, fetch: Callable[..., Any], *args: Any) -> Any:
        try:
            return fetch(*args)
        finally:
            finished[name] = time.monotonic()

    if metrics is not None:
        jobs[metrics.name] = pool.submit(
            contextvars.copy_context().run,  # the trace span and the log ids go along
            timed,
            metrics.name,
            metrics.fetch,
            start,
            scope.end,
            scope.services,
            labels,
            deadline,
        )
    if logs is not None:
        jobs["elasticsearch"] = pool.submit(
            contextvars.copy_context().run,
            timed,
            "elasticsearch",
            logs.fetch,
            scope.services,
            start,
            scope.end,
            deadline,
        )
    if changes is not None:
        jobs[changes.name] = pool.submit(
            contextvars.copy_context().run,
            timed,
            changes.name,
            changes.fetch,
            start,
            scope.end,
            labels,
            deadline,
        )
    wait(jobs.values(), timeout=max(0.0, deadline - time.monotonic()))
    pool.shutdown(wait=False, cancel_futures=True)

    collected = Collected(snapshot=_empty_snapshot(scope, start), notes=list(scope.notes))
    # A source still running at the deadline took (at least) the whole budget.
    stop = time.monotonic()
    collected.durations = {name: finished.get(name, stop) - began for name in jobs}
    signals: list[Signal] = []
    records: list[LogRecord] = []
    edges: list[Edge] = []
    rollouts = ChangeFetch()
    for name, future in jobs.items():
        if not future.done():
            error = f"no answer within the collection budget of {options.budget_s:g} s"
            collected.failures.append(SourceFailure(source=name, error=error))
            continue
        try:
            result = future.result()
        except SourceError as exc:
            failure = SourceFailure(source=exc.source, error=exc.message)
            if failure not in collected.failures:  # metrics and rollouts share a server
                collected.failures.append(failure)
            continue
        if isinstance(result, MetricFetch):
            signals += result.signals
            edges += result.edges
            if result.failures:
                collected.failures.append(_partial(name, result.failures))
        elif isinstance(result, ChangeFetch):
            rollouts = result
            if result.failures:
                collected.failures.append(_partial(name, result.failures))
        else:
            signals += result.count_signals
            records += result.records
        collected.notes += result.notes
    if not signals and not records:
        said = "; ".join(f"{f.source}: {f.error}" for f in collected.failures) or "no data"
        raise SourceError("collect", f"no source returned data for the window ({said})")
    rollouts = aligned(rollouts, signals, scope.services)
    topology = _topology(signals, edges)
    signals += rollouts.signals
    found = merge_changes(rollouts.changes)
    collected.snapshot = _settled(
        collected.snapshot.model_copy(
            update={"signals": signals, "logs": records, "topology": topology, "changes": found}
        ),
        scope,
    )
    return collected


def _settled(snapshot: Snapshot, scope: Scope) -> Snapshot:
    """An ad-hoc request's snapshot: its focus's neighbourhood, the incident start settled
    from the request's start at the data's resolution, and, when the request says since when
    it hurts, the alert it amounts to (:func:`agent.scope.request_alert`)."""
    if scope.alert is not None or not scope.focus:
        return snapshot
    snapshot = in_neighbourhood(snapshot, scope.focus)
    if scope.anchor is None:
        return snapshot
    lookback = scope.anchor - scope.incident_start
    settled = incident_start_at(scope.anchor, lookback, snapshot.signals, scope.end)
    window = snapshot.meta.window
    if window.start is not None and not window.start < settled < scope.end:
        return snapshot
    meta = snapshot.meta.model_copy(
        update={"window": window.model_copy(update={"incident_start": settled})}
    )
    alert = request_alert(scope.focus, scope.since, scope.question) if scope.since else None
    return snapshot.model_copy(update={"meta": meta, "alert": alert})


def _alert_labels(alert: AlertmanagerWebhook | None) -> dict[str, str]:
    """Labels shared by the whole alert group: they may scope the queries (``namespace``)."""
    if alert is None:
        return {}
    common = dict(alert.commonLabels)
    return common or dict(alert.alerts[0].labels)


def _partial(source: str, failures: list[str]) -> SourceFailure:
    shown = "; ".join(failures[:3]) + (
        f"; and {len(failures) - 3} more" if len(failures) > 3 else ""
    )
    return SourceFailure(source=source, error=f"{len(failures)} queries failed: {shown}")


def _topology(signals: list[Signal], edges: list[Edge]) -> Topology | None:
    if not edges:
        return None
    unique = sorted({(e.caller, e.callee) for e in edges})
    services = sorted({s.service for s in signals} | {name for pair in unique for name in pair})
    return Topology(services=services, edges=[Edge(caller=a, callee=b) for a, b in unique])


def _empty_snapshot(scope: Scope, start: datetime) -> Snapshot:
    """The snapshot's frame. With an alert that starts inside the window, ``incident_start``
    stays unset so that the engine derives it from the alert exactly as it does when the
    recording is replayed; an alert re-anchored by the window rule (it started before the data
    kept, or after now) pins it."""
    key = scope.alert.groupKey if scope.alert else ",".join(scope.focus or scope.services)
    derived = scope.alert is not None and start <= scope.alert.starts_at <= scope.end
    digest = hashlib.sha256(f"{key}|{scope.incident_start.isoformat()}".encode()).hexdigest()
    meta = SnapshotMeta(
        id=f"live-{digest[:12]}",
        created_at=datetime.now(UTC),
        source="rca-agent live collection",
        description=scope.question or "",
        window=WindowSpec(
            start=start,
            end=scope.end,
            incident_start=None if derived else scope.incident_start,
        ),
    )
    return Snapshot(meta=meta, alert=scope.alert)


def recorded_snapshot(scope: Scope, directory: Path) -> Snapshot:
    """The recorded incident in ``directory`` that best matches the scope.

    A snapshot matches when its alert has the scope's group key, or when it names one of the
    scope's services; among matches the one whose alert started closest to the scope's
    incident start wins. Unreadable snapshots are skipped.
    """
    if not directory.is_dir():
        raise SourceError("snapshot_dir", f"{directory} is not a directory")
    group_key = scope.alert.groupKey if scope.alert else None
    wanted = set(scope.services) | set(scope.focus) or set(
        scope.alert.services() if scope.alert else ()
    )
    best: tuple[tuple[int, float], Snapshot] | None = None
    for path in sorted(p.parent for p in directory.glob("*/snapshot.json")):
        try:
            snapshot = load_snapshot(path)
        except SnapshotError:
            continue
        alert = snapshot.alert
        same_group = alert is not None and group_key is not None and alert.groupKey == group_key
        named = set(alert.services()) if alert else set(snapshot.services())
        if not same_group and not (wanted & named):
            continue
        distance = abs((alert.starts_at - scope.incident_start).total_seconds()) if alert else 1e18
        rank = (0 if same_group else 1, distance)
        if best is None or rank < best[0]:
            best = (rank, snapshot)
    if best is None:
        services = ", ".join(sorted(wanted)) or "(none)"
        raise SourceError(
            "snapshot_dir", f"no recorded snapshot in {directory} matches services {services}"
        )
    return best[1]
