"""What one analysis job does: frame the window, collect the scope, run the pipeline, render
the chart.

Pure of the queue: :class:`agent.service.jobs.WorkerPool` decides when to call it and what
to do with errors. A job holds its trigger's own times (an alert's start, or a request's
start and end); :func:`agent.window.frame` turns them into the analysed window when the job
runs, and the scope is the alert's (every service) or the request's (the named services'
call-graph neighbourhood, :mod:`agent.scope`). A scope that no source can serve
(:class:`SourceError`) or that yields no data (:class:`SnapshotError`) is not an error of the
job: it becomes an Analysis marked insufficient evidence whose ``source_failures`` say why,
so the on-call engineer is told rather than left waiting.

The changes CI/CD reported (``POST /v1/changes``) in and shortly before the window join the
ones collection found (:func:`with_reported_changes`), so the engine weighs every rollout of
the window, reported or observed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from agent import __version__, tracing
from agent.changes import merge_changes
from agent.config import Settings
from agent.errors import SnapshotError, SourceError
from agent.memory.embed import Embedder, Embedding, embed_analysis, embedding_text
from agent.memory.enrich import enricher
from agent.memory.fingerprint import Fingerprint, fingerprint_of
from agent.memory.recall import Recall
from agent.memory.runbooks import RunbookLibrary, runbook_url_of
from agent.models import Analysis, Change, LogRecord, Signal, SourceFailure, Trigger, Window
from agent.snapshot import Snapshot
from agent.store.queue import ClaimedJob
from agent.summarize import Summarizer
from agent.summarize.redact import Redactor
from agent.window import Framed, WindowRule, frame, with_window
from connectors.alertmanager import AlertmanagerWebhook

if TYPE_CHECKING:
    from connectors.collect import Scope

# Reported changes this long before the window count: a rollout that finished just before the
# baseline began can still be what broke.
CHANGES_LEAD = timedelta(minutes=30)
# (since, until) -> the changes reported in that range: the store, for the service's workers.
ReportedChanges = Callable[[datetime, datetime], list[Change]]

_SUMMARIZERS: dict[int, tuple[Settings, Summarizer]] = {}
_SUMMARIZERS_LOCK = threading.Lock()


def _summarizer(settings: Settings) -> Summarizer:
    """The configured summarizer backend, built once per settings object, so that a local
    model loads once per process and not once per analysis."""
    from agent.summarize.factory import build_summarizer

    with _SUMMARIZERS_LOCK:
        cached = _SUMMARIZERS.get(id(settings))
        if cached is None or cached[0] is not settings:
            cached = _SUMMARIZERS[id(settings)] = (settings, build_summarizer(settings))
        return cached[1]


@dataclass
class JobResult:
    analysis: Analysis
    snapshot: Snapshot | None
    collect_s: float
    total_s: float
    source_s: dict[str, float] = field(default_factory=dict)  # collection time per source
    fingerprint: Fingerprint | None = None  # what incident memory stores with the analysis
    embedding: Embedding | None = None  # and its text embedding (memory.embeddings)


def sources_of(settings: Settings) -> str:
    """Which sources a collection asks, as a metric label."""
    names = [
        name
        for name, configured in (
            ("prometheus", settings.prometheus_url),
            ("elasticsearch", settings.elasticsearch_url),
        )
        if configured
    ]
    if not names and settings.snapshot_dir is not None:
        names = ["snapshot_dir"]
    return ",".join(names) or "none"


def no_data_analysis(
    job: ClaimedJob, failures: list[SourceFailure], reason: str, now: datetime, framed: Framed
) -> Analysis:
    """The answer when nothing could be collected: says so, names the failing sources."""
    window = Window(
        start=framed.start,
        incident_start=framed.incident_start,
        end=framed.end,
        step_s=framed.step_s,
    )
    return Analysis(
        id=job.id,
        version=__version__,
        created_at=now,
        trigger=job.trigger,
        window=window,
        candidates=[],
        root_cause=None,
        confidence=0.0,
        insufficient_evidence=True,
        evidence=[],
        timeline=[],
        next_steps=[
            "Check that the configured sources are reachable (GET /readyz) and hold data "
            "for these services and this time range."
        ],
        summary=f"No analysis: no telemetry could be collected ({reason}).",
        backend="none",
        source_failures=failures,
        notes=list(framed.notes),
    )


def job_window(job: ClaimedJob, alert: AlertmanagerWebhook | None, settings: Settings) -> Framed:
    """The analysed window of a job, framed now: an alert's runs until now, a request's until
    the end it asked for."""
    rule = WindowRule.from_settings(settings)
    now = datetime.now(UTC)
    return frame(job.incident_start, now, rule, end=None if alert is not None else job.window_end)


def job_scope(job: ClaimedJob, alert: AlertmanagerWebhook | None, framed: Framed) -> Scope:
    """An alert names where it hurts, not where it started: every service is collected so that
    the engine can follow the call graph. A request names where it hurts the same way."""
    from connectors.collect import alert_scope, request_scope  # the clients: on first use

    if alert is not None:
        return alert_scope(alert, framed)
    trigger = job.trigger
    return request_scope(trigger.services, framed, trigger.question, trigger.since)


def with_reported_changes(
    snapshot: Snapshot, reported: Sequence[Change], focus: Sequence[str] = ()
) -> Snapshot:
    """The snapshot with the reported changes merged into the ones collection found; a
    request's snapshot keeps only those in its focus's neighbourhood, as its signals."""
    from agent.scope import in_neighbourhood

    if not reported:
        return snapshot
    merged = snapshot.model_copy(update={"changes": merge_changes(reported, snapshot.changes)})
    return in_neighbourhood(merged, focus) if focus else merged


def preload() -> None:
    """Import the engine and the collectors now (about 0.4 s of CPU): the service calls this
    before it serves, so that the first analysis does not import them in the middle of a
    burst of webhooks, holding the GIL while the answers wait."""
    import agent.engine.pipeline  # noqa: F401
    import connectors.collect  # noqa: F401


def _labels(alert: AlertmanagerWebhook | None) -> dict[str, str]:
    if alert is None:
        return {}
    return {**alert.groupLabels, **alert.commonLabels}


def run_job(
    job: ClaimedJob,
    settings: Settings,
    reported: ReportedChanges | None = None,
    recall: Recall | None = None,
    runbooks: RunbookLibrary | None = None,
    embedder: Embedder | None = None,
) -> JobResult:
    """Collect and analyze one job's scope, with the changes ``reported`` for its window,
    the prior of similar past analyses (``recall``) and the matching ``runbooks``; the
    ``embedder`` embeds the result's text for memory (a failure is a note, not an error).
    Raises only on bugs and unexpected errors (a database error reading the changes is one
    the worker retries)."""
    from agent.engine.pipeline import analyze  # numpy and the engine: imported on first use
    from connectors.collect import collect

    began = time.perf_counter()
    if settings.service.job_delay_s:
        time.sleep(settings.service.job_delay_s)
    alert = (
        AlertmanagerWebhook.model_validate_json(job.alert_payload) if job.alert_payload else None
    )
    framed = job_window(job, alert, settings)
    try:
        with tracing.span("collect", {"rca.sources": sources_of(settings)}):
            collected = collect(job_scope(job, alert, framed), settings)
    except SourceError as err:
        failure = SourceFailure(source=err.source, error=err.message)
        analysis = no_data_analysis(job, [failure], str(err), datetime.now(UTC), framed)
        elapsed = time.perf_counter() - began
        return JobResult(analysis, None, elapsed, elapsed)
    if reported is not None:
        changes = reported(framed.start - CHANGES_LEAD, framed.end)
        focus = tuple(job.trigger.services) if alert is None else ()
        collected.snapshot = with_reported_changes(collected.snapshot, changes, focus)
    collect_s = time.perf_counter() - began
    redact = Redactor(settings.summarizer.redact_patterns)
    topology = collected.snapshot.topology
    enrich = enricher(
        recall=recall,
        runbooks=runbooks,
        topology=topology,
        labels=_labels(alert),
        runbook_url=runbook_url_of(
            [alert.commonAnnotations, *(a.annotations for a in alert.alerts)]
        )
        if alert is not None
        else None,
        redact=redact,
    )
    try:
        analysis = analyze(
            collected.snapshot,
            settings.engine,
            _trigger(job.trigger, collected.snapshot),
            _summarizer(settings),
            collected.failures,
            enrich,
        )
    except SnapshotError as err:
        failures = [*collected.failures, SourceFailure(source="collect", error=err.message)]
        analysis = no_data_analysis(job, failures, str(err), datetime.now(UTC), framed)
        return JobResult(analysis, None, collect_s, time.perf_counter() - began)
    analysis = with_window(analysis, collected.snapshot.signals, collected.notes, framed.step_s)
    analysis = analysis.model_copy(update={"id": job.id})
    per_source = collected.durations or {sources_of(settings): collect_s}
    fingerprint = fingerprint_of(analysis, topology, _labels(alert), redact)
    embedding = None
    if embedder is not None:
        text = embedding_text(analysis.summary, fingerprint.templates, redact)
        embedding, problem = embed_analysis(embedder, text)
        if problem is not None:
            note = f"incident memory: no text embedding ({problem}); similar past analyses "
            note += "are found by fingerprint only"
            analysis = analysis.model_copy(update={"notes": [*analysis.notes, note]})
    return JobResult(
        analysis,
        collected.snapshot,
        collect_s,
        time.perf_counter() - began,
        per_source,
        fingerprint,
        embedding,
    )


def _trigger(trigger: Trigger, snapshot: Snapshot) -> Trigger:
    """The job's trigger; an alert's services fall back to the snapshot's alert."""
    if trigger.services or snapshot.alert is None:
        return trigger
    return trigger.model_copy(update={"services": snapshot.alert.services()})


def chart_material(analysis: Analysis, snapshot: Snapshot) -> Snapshot | None:
    """The part of the snapshot the evidence chart draws: every series and log line that
    matches cited evidence. The chart drawn from it equals the chart drawn from the whole
    snapshot, at a fraction of the size; None when there is nothing to draw."""
    from agent.chart import matching_logs, matching_signals
    from agent.report import cited_evidence

    signals: dict[str, Signal] = {}  # by series: a failing share is derived anew each time
    logs: dict[int, LogRecord] = {}
    for evidence in cited_evidence(analysis, limit=len(analysis.evidence)):
        signals.update((s.series_id, s) for s in matching_signals(snapshot, evidence))
        logs.update((id(r), r) for r in matching_logs(snapshot, evidence))
    if not signals and not logs:
        return None
    return Snapshot(
        meta=snapshot.meta, signals=list(signals.values()), logs=list(logs.values()), changes=[]
    )


def render_chart(analysis: Analysis, material: Snapshot) -> bytes:
    """The evidence chart as PNG bytes (matplotlib is imported here, on first use)."""
    import io

    from agent.chart import render_evidence_chart

    buffer = io.BytesIO()
    render_evidence_chart(analysis, material).savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
