"""What ``rca analyze --service`` and ``rca record --service`` look at: the named services as
where it hurts, like an alert's, and the window rule around the time it began.

The same scope (:func:`connectors.collect.request_scope`) and window rule
(:func:`agent.window.frame`) as ``POST /v1/analyses`` and Slack's ``/rca``, so the three give
the same answer on the same data. Examples::

    export RCA_PROMETHEUS_URL=http://localhost:9090
    rca analyze --service storefront --since 2024-05-14T14:05:00Z
    rca analyze incidents/2024-05-14-checkout --service storefront
    rca record --service storefront --since 2024-05-14T10:20:00Z --out incidents/storefront
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from agent.cli_sources import collect_or_explain, report_failures
from agent.config import EngineSettings, Settings
from agent.errors import ConfigError, UsageError
from agent.models import Analysis, Trigger
from agent.scope import as_request
from agent.snapshot import Snapshot, load_snapshot
from agent.summarize import Summarizer
from agent.window import WindowRule, frame, with_window
from connectors.collect import Collected, request_scope
from connectors.settings import CollectSettings

DEFAULT_SINCE = timedelta(minutes=30)  # as Slack's /rca and the API's default "last 30m"


def service_names(values: Sequence[str]) -> tuple[str, ...]:
    """``--service a --service b,c`` as ``(a, b, c)``, each once."""
    names = [n.strip() for value in values for n in value.split(",") if n.strip()]
    return tuple(dict.fromkeys(names))


def collect_request(
    settings: Settings,
    services: Sequence[str],
    since: datetime | None,
    end: datetime | None,
    engine: EngineSettings,
    options: CollectSettings,
    now: datetime | None = None,
) -> Collected:
    """Collect the named services' neighbourhood live, from ``since`` (default: 30 minutes
    before the end) to ``end`` (default: now), framed by the window rule."""
    if not settings.prometheus_url and not settings.elasticsearch_url:
        raise ConfigError(
            "--service without SNAPSHOT_DIR needs a live source: set RCA_PROMETHEUS_URL "
            "and/or RCA_ELASTICSEARCH_URL, or give a recorded snapshot directory"
        )
    moment = now or datetime.now(UTC)
    until = end or moment
    start = since or until - DEFAULT_SINCE
    if until <= start:
        raise UsageError(f"--end {until.isoformat()} is not after --since {start.isoformat()}")
    rule = WindowRule.from_settings(settings, engine.lookback_minutes, options.baseline_minutes)
    framed = frame(start, moment, rule, end=until)
    return collect_or_explain(request_scope(services, framed, since=since), settings, options)


def analyze_request(
    snapshot: Snapshot,
    services: Sequence[str],
    engine: EngineSettings,
    summarizer: Summarizer | None = None,
    collected: Collected | None = None,
) -> Analysis:
    """The engine on a request's snapshot, with the named services as its focus."""
    from agent.engine.pipeline import analyze

    since = snapshot.alert.starts_at if snapshot.alert is not None else None
    trigger = Trigger(kind="cli", services=list(services), since=since)
    failures = collected.failures if collected is not None else None
    analysis = analyze(snapshot, engine, trigger, summarizer, failures)
    notes = collected.notes if collected is not None else []
    return with_window(analysis, snapshot.signals, notes)


def replay_request(snapshot: Snapshot, services: Sequence[str], engine: EngineSettings) -> Snapshot:
    """A recorded incident seen as a request on ``services``: they are where it hurts (in
    place of the recorded alert's services), their neighbourhood is what may be the cause."""
    unknown = [s for s in services if s not in snapshot.services()]
    if unknown:
        known = ", ".join(snapshot.services()[:20])
        raise UsageError(
            f"--service {', '.join(unknown)}: not in this snapshot; it has {known or 'none'}"
        )
    return as_request(snapshot, services, timedelta(minutes=engine.lookback_minutes))


def one_scope(
    snapshot_dir: Path | None,
    alert_file: Path | None,
    services: tuple[str, ...],
    since: datetime | None,
) -> None:
    """SNAPSHOT_DIR, --alert FILE or --service NAME; --service may replay SNAPSHOT_DIR."""
    if alert_file is not None and services:
        raise UsageError("--alert and --service both say where it hurts: give one of them")
    if not services and (snapshot_dir is None) == (alert_file is None):
        raise UsageError(
            "give either SNAPSHOT_DIR or --alert FILE (exactly one), or --service NAME"
        )
    if since is not None and (not services or snapshot_dir is not None):
        raise UsageError("--since goes with --service on live sources (a snapshot has its window)")


def analyze_services(
    settings: Settings,
    snapshot_dir: Path | None,
    services: tuple[str, ...],
    span: tuple[datetime | None, datetime | None],
    engine: EngineSettings,
    summarizer: Summarizer,
    options: CollectSettings,
    say_failures: bool,
) -> tuple[Snapshot, Analysis]:
    """``--service``: the named services' incident, replayed from SNAPSHOT_DIR or live from
    ``span`` (``--since``, ``--end``)."""
    if snapshot_dir is not None:
        snapshot = replay_request(load_snapshot(snapshot_dir), services, engine)
        return snapshot, analyze_request(snapshot, services, engine, summarizer)
    collected = collect_request(settings, services, *span, engine, options)
    if say_failures:  # the printed report lists them itself: each failure is said once
        report_failures(collected)
    return collected.snapshot, analyze_request(
        collected.snapshot, services, engine, summarizer, collected
    )


def record_request(
    settings: Settings,
    services: tuple[str, ...],
    span: tuple[datetime | None, datetime | None],
    engine: EngineSettings,
    options: CollectSettings,
    out: Path,
) -> Path:
    """``rca record --service``: collect the request live and write it as a snapshot."""
    from agent.snapshot import write_snapshot

    collected = collect_request(settings, services, *span, engine, options)
    path = write_snapshot(collected.snapshot, out)
    snapshot = collected.snapshot
    click.echo(
        f"wrote {len(snapshot.signals)} series and {len(snapshot.logs)} log lines to {path}; "
        f"replay with: rca analyze {path} --service {','.join(services)}"
    )
    return path
