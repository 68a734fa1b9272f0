"""Collect one incident's signals and logs from the configured sources into a Snapshot.

This is the ``collect`` stage of the pipeline: the CLI (``rca analyze --alert``, ``rca
record``) and the service's jobs call :func:`collect`, then hand the snapshot to
:func:`agent.pipeline.analyze` with the failures. Replaying a recorded snapshot therefore
runs exactly the same engine on exactly the same data.

Sources, in order of preference:
- live Prometheus and/or Elasticsearch, when their URLs are configured;
- otherwise a directory of recorded snapshots (``snapshot_dir``), for offline use.

A source that fails is recorded as a :class:`~agent.models.SourceFailure`; collection
continues with what the other sources returned. Only a scope that no source can serve at
all raises :class:`~agent.errors.SourceError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from agent.config import Settings
from agent.errors import SnapshotError, SourceError
from agent.models import SourceFailure
from agent.snapshot import Snapshot, load_snapshot
from connectors.alertmanager import AlertmanagerWebhook


@dataclass(frozen=True)
class Scope:
    """What to look at: services (empty: all that the sources know) over a time range.

    ``incident_start`` is when the incident is believed to begin (alert ``startsAt`` minus
    the engine's lookback, or the start of an ad-hoc request's range); history before it is
    the baseline.
    """

    services: tuple[str, ...]
    incident_start: datetime
    end: datetime
    alert: AlertmanagerWebhook | None = None
    question: str | None = None


@dataclass
class Collected:
    snapshot: Snapshot
    failures: list[SourceFailure] = field(default_factory=list)


def collect(scope: Scope, settings: Settings) -> Collected:
    """Fetch the scope from the configured sources; see the module docstring."""
    if settings.prometheus_url or settings.elasticsearch_url:
        raise SourceError(
            "collect", "live collection from Prometheus/Elasticsearch is not wired yet"
        )
    if settings.snapshot_dir is not None:
        return Collected(snapshot=recorded_snapshot(scope, settings.snapshot_dir))
    raise SourceError(
        "collect",
        "no source configured: set RCA_PROMETHEUS_URL and/or RCA_ELASTICSEARCH_URL, "
        "or RCA_SNAPSHOT_DIR for recorded incidents",
    )


def recorded_snapshot(scope: Scope, directory: Path) -> Snapshot:
    """The recorded incident in ``directory`` that best matches the scope.

    A snapshot matches when its alert has the scope's group key, or when it names one of the
    scope's services; among matches the one whose alert started closest to the scope's
    incident start wins. Unreadable snapshots are skipped.
    """
    if not directory.is_dir():
        raise SourceError("snapshot_dir", f"{directory} is not a directory")
    group_key = scope.alert.groupKey if scope.alert else None
    wanted = set(scope.services)
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
        services = ", ".join(scope.services) or "(none)"
        raise SourceError(
            "snapshot_dir", f"no recorded snapshot in {directory} matches services {services}"
        )
    return best[1]
