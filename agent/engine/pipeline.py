"""The analysis pipeline over a snapshot: detect -> rank -> evidence -> summarize.

Pure over its inputs (no I/O): the same snapshot and settings give the same analysis, apart
from ``created_at`` and ``timings``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from agent import __version__
from agent.changes import pod_versions
from agent.config import EngineSettings
from agent.engine.calibrate import load_calibration, margin_features
from agent.engine.canary import Judgement, judge_changes
from agent.engine.detect.kinds import callee_of, kind_of, side_of
from agent.engine.detect.logs import mine_logs
from agent.engine.detect.series import score_signals
from agent.engine.detect.shares import failing_shares
from agent.engine.echoes import echo_note, echoes
from agent.engine.evidence import build_evidence
from agent.engine.headroom import mark_headroom
from agent.engine.hood import neighbourhood
from agent.engine.hosts import colocated
from agent.engine.hypothesis import strength
from agent.engine.outages import gone_silent
from agent.engine.rank import rank_services
from agent.engine.service_score import ServiceScore
from agent.engine.trouble import reconsider
from agent.engine.window import alert_fired, incident_window, logs_onset
from agent.models import (
    Analysis,
    Candidate,
    ChangeVerdict,
    Evidence,
    Signal,
    SignalKind,
    SourceFailure,
    Trigger,
    Window,
)
from agent.snapshot import Snapshot
from agent.summarize import Summarizer
from agent.summarize.extractive import ExtractiveSummarizer
from agent.tracing import Stages

LOOKBACK_SAMPLES = 120


def resolution_of(signals: list[Signal]) -> float:
    """The typical sampling interval in seconds (60 when there are no series)."""
    steps = [
        float(np.median(np.diff(s.timestamps))) for s in signals[:500] if len(s.timestamps) > 1
    ]
    return float(np.median(steps)) if steps else 60.0


def _coverage(signals: list[Signal]) -> dict[str, frozenset[SignalKind]]:
    """The kinds of series each service has, anomalous or not."""
    kinds: dict[str, set[SignalKind]] = {}
    for signal in signals:
        kinds.setdefault(signal.service, set()).add(kind_of(signal))
    return {service: frozenset(k) for service, k in kinds.items()}


def _call_sides(signals: list[Signal]) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """Services with client-side series (they can say whether they wait), and the caller ->
    callee pairs that per-edge series measure."""
    waiters: set[str] = set()
    edges: set[tuple[str, str]] = set()
    for signal in signals:
        if side_of(signal) == "client":
            waiters.add(signal.service)
        if (callee := callee_of(signal)) is not None:
            edges.add((signal.service, callee))
    return frozenset(waiters), frozenset(edges)


def _idle(signals: list[Signal]) -> frozenset[str]:
    """Services that served nothing measurable: every serving-side latency series they have
    held one value through the whole window (an empty histogram reads as a constant)."""
    moved: dict[str, bool] = {}
    for signal in signals:
        if kind_of(signal) is not SignalKind.LATENCY or side_of(signal) == "client":
            continue
        if moved.get(signal.service):
            continue
        present = [v for v in signal.values if v is not None]
        moved[signal.service] = any(v != present[0] for v in present)
    return frozenset(service for service, m in moved.items() if not m)


def _focus(snapshot: Snapshot, trigger: Trigger | None) -> tuple[str, ...]:
    """The services where the incident is felt: the alert's, else the request's."""
    if snapshot.alert is not None:
        return tuple(snapshot.alert.services())
    return tuple(trigger.services) if trigger is not None else ()


def _trigger(snapshot: Snapshot) -> Trigger:
    alert = snapshot.alert
    if alert is None:
        return Trigger(kind="snapshot")
    return Trigger(
        kind="alert",
        alert_name=alert.alert_name,
        services=alert.services(),
        group_key=alert.groupKey,
    )


def _verdicts(judged: list[Judgement], evidence: list[Evidence]) -> list[ChangeVerdict]:
    """Each judged change for the report, citing its canary comparison where one is shown."""
    out = []
    for j in judged:
        ids = [
            e.id
            for e in evidence
            if e.pattern == "canary" and e.service == j.change.service and j.verdict == "suspect"
        ]
        out.append(
            ChangeVerdict(change=j.change, verdict=j.verdict, reasons=j.reasons, evidence_ids=ids)
        )
    return out


def _analysis_id(snapshot: Snapshot, window: Window) -> str:
    key = f"{snapshot.meta.id}|{window.start.isoformat()}|{window.incident_start.isoformat()}"
    return "an-" + hashlib.sha256(key.encode()).hexdigest()[:16]


UNDECIDED_MARGIN = 0.15  # leaders closer than this share of the top score are a toss-up
UNDECIDED_CONFIDENCE = 0.35
UNDECIDED_NAMED = 4  # leaders a toss-up names; more are counted


def _undecided(ranked: list[ServiceScore]) -> str | None:
    """A note naming the leading candidates when the data cannot separate them (all within
    :data:`UNDECIDED_MARGIN` of the leader), and what would: the evidence that each one's own
    findings lack."""
    if len(ranked) < 2 or ranked[0].score <= 0:
        return None
    first = ranked[0]
    close = [s for s in ranked if (first.score - s.score) / first.score < UNDECIDED_MARGIN]
    if len(close) < 2:
        return None
    if any(s.waited_by for s in close):
        settle = (
            "per-edge latency (a series with source/destination labels, as a service mesh "
            "exports) or traces would show which callee the callers wait on"
        )
    else:
        settle = (
            "traces through them, or their own error logs and serving latency, would tell "
            "which one failed first"
        )
    named = close[:UNDECIDED_NAMED]
    if len({round(s.score, 2) for s in close}) == 1:
        names = [s.service for s in named]
        scores = f" (score {first.score:.2f} each)"
    else:
        names = [f"{s.service} (score {s.score:.2f})" for s in named]
        scores = ""
    if len(close) > len(named):
        names.append(f"{len(close) - len(named)} more")
    listed = ", ".join(names[:-1]) + " and " + names[-1]
    return f"the data cannot decide between {listed}{scores}: {settle}"


def analyze(
    snapshot: Snapshot,
    settings: EngineSettings | None = None,
    trigger: Trigger | None = None,
    summarizer: Summarizer | None = None,
    source_failures: list[SourceFailure] | None = None,
    enrich: Callable[[Analysis], Analysis] | None = None,
) -> Analysis:
    """Analyse one incident snapshot and return the ranked, evidenced, summarized result.
    ``enrich`` sees the ranked draft before it is summarized (incident memory's prior and
    runbooks, :mod:`agent.memory`)."""
    with Stages() as stages:  # detect, rank, summarize as trace spans (agent.tracing)
        return _analyze(snapshot, settings, trigger, summarizer, source_failures, stages, enrich)


def _analyze(
    snapshot: Snapshot,
    settings: EngineSettings | None,
    trigger: Trigger | None,
    summarizer: Summarizer | None,
    source_failures: list[SourceFailure] | None,
    stages: Stages,
    enrich: Callable[[Analysis], Analysis] | None = None,
) -> Analysis:
    cfg = settings or EngineSettings()
    # A success share that falls is errors that rise (detect.shares).
    snapshot = snapshot.model_copy(update={"signals": failing_shares(snapshot.signals)})
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    following = {"detect_logs": "rank", "rank": "summarize"}  # the span each lap begins
    stages.begin("detect", {"rca.signals": len(snapshot.signals), "rca.logs": len(snapshot.logs)})

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = round(now - clock, 6)
        clock = now
        if stage in following:
            stages.begin(following[stage])
        elif stage == "summarize":
            stages.end()

    resolution = resolution_of(snapshot.signals)
    # Alerts fire a few evaluation intervals after a fault; at 1 s sampling ten minutes of
    # lookback would pull unrelated history into the incident.
    lookback = min(cfg.lookback_minutes * 60, LOOKBACK_SAMPLES * resolution)
    from_data = cfg.onset == "data"
    window, onset_note = incident_window(snapshot, lookback, resolution, from_data)
    start, split, end = (t.timestamp() for t in (window.start, window.incident_start, window.end))
    fired_at = alert_fired(snapshot)
    metric_findings = mark_headroom(
        score_signals(snapshot.signals, split, cfg.z_threshold),
        snapshot.signals,
        split,
        cfg.z_threshold,
        fired_at.timestamp() if fired_at else None,
    )
    lap("detect_metrics")
    log_findings = mine_logs(
        snapshot.logs,
        start,
        split,
        end,
        cfg.log_burst_ratio,
        cfg.z_threshold,
        frozenset(snapshot.services()),
        None if from_data else logs_onset(snapshot, window, lookback, resolution),
    )
    lap("detect_logs")
    waiters, edges = _call_sides(snapshot.signals)
    versions = {pod: v for (_, pod), v in pod_versions(snapshot.signals, snapshot.changes).items()}
    judged = judge_changes(snapshot.changes, snapshot.signals, versions, start, split, end)
    down = gone_silent(metric_findings, snapshot.signals)
    hood = neighbourhood(snapshot.topology, edges, metric_findings, judged, down)
    judged = reconsider(judged, snapshot.signals, hood, end)
    ranked = rank_services(
        metric_findings,
        log_findings,
        snapshot.topology,
        cfg.z_threshold,
        resolution,
        _focus(snapshot, trigger),
        _coverage(snapshot.signals),
        snapshot.alert.starts_at.timestamp() if snapshot.alert is not None else None,
        waiters,
        edges,
        _idle(snapshot.signals),
        judged,
        colocated(snapshot.signals),
    )[: cfg.max_candidates]
    evidence, ids = build_evidence(ranked, cfg.max_evidence)
    candidates = [
        Candidate(
            service=s.service,
            fault_type=s.fault_type,
            score=round(s.score, 4),
            onset=datetime.fromtimestamp(s.onset, tz=UTC) if s.onset is not None else None,
            evidence_ids=ids.get(s.service, []),
            reasons=s.reasons,
        )
        for s in ranked
    ]
    lap("rank")
    weak = not ranked or ranked[0].strength < strength(cfg.z_threshold * 1.5, cfg.z_threshold)
    undecided = _undecided(ranked)
    # Nothing stood out: say whether the baseline already held the incident's rise.
    echoed = echo_note(echoes(snapshot.signals, start, split, end)) if weak else None
    cap = 0.2 if weak else UNDECIDED_CONFIDENCE if undecided else 1.0
    basis = margin_features(ranked, (end - split) / resolution)
    draft = Analysis(
        id=_analysis_id(snapshot, window),
        version=__version__,
        created_at=datetime.now(UTC),
        trigger=trigger or _trigger(snapshot),
        window=window,
        candidates=candidates,
        root_cause=None,
        confidence=round(min(load_calibration(cfg.calibration).probability(basis), cap), 3),
        confidence_basis=basis,
        insufficient_evidence=weak,
        evidence=evidence,
        timeline=[],
        next_steps=[],
        summary="",
        source_failures=source_failures or [],
        notes=[note for note in (onset_note, undecided, echoed) if note],
        changes=_verdicts(judged, evidence),
    )
    draft = enrich(draft) if enrich is not None else draft
    backend = summarizer or ExtractiveSummarizer()
    summary = backend.summarize(draft)
    lap("summarize")
    return draft.model_copy(
        update={
            "root_cause": summary.root_cause,
            "confidence": summary.confidence,
            "timeline": summary.timeline,
            "next_steps": summary.next_steps,
            "summary": summary.text,
            "alternatives": summary.alternatives,
            "backend": summary.backend or backend.name,
            "summarizer_fallback": summary.fallback,
            "tokens": summary.tokens,
            "cost_usd": summary.cost_usd,
            "timings": timings,
        }
    )
