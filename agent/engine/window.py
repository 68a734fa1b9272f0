"""Where the incident part of the window begins.

An incident start given with the snapshot is used as it is. Where only an alert dates the
incident, the split is a lookback before the alert fired (moved later where the data begin
after it, so there is a baseline), or, with ``engine.onset: data``, where the series rose
together (:mod:`agent.engine.onset`). Logs that begin after a lookback's split are compared
where the series rose together (:func:`logs_onset`): nothing before the split is logged.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.engine.detect.series import MIN_BASELINE_POINTS
from agent.engine.onset import Onset, onset_from_data
from agent.models import Signal, Window
from agent.snapshot import Snapshot


def incident_window(
    snapshot: Snapshot, lookback: float, resolution: float, from_data: bool
) -> tuple[Window, str | None]:
    """The analysed window, and a note that says how its split was chosen when only an alert
    dates the incident: ``lookback`` before it, or (``from_data``) where the series rose
    together (:mod:`agent.engine.onset`)."""
    window = snapshot.window(timedelta(seconds=lookback))
    fired_at = alert_fired(snapshot)
    if fired_at is None:
        return window, None
    if not from_data:
        kept = _keep_a_baseline(window, snapshot.signals, resolution, fired_at)
        note = _lookback_note(kept, fired_at, lookback, moved=kept is not window)
        return kept, note
    onset = _data_onset(snapshot, window, fired_at, lookback, resolution)
    if onset is None or not window.start.timestamp() < onset.at < window.end.timestamp():
        return window, (
            f"incident start taken as {lookback / 60:.0f} min before the alert fired "
            f"({window.incident_start:%H:%M:%S}): no clear common rise in the data"
        )
    start = datetime.fromtimestamp(onset.at, tz=UTC)
    note = (
        f"incident start {start:%H:%M:%S} estimated from the data ({onset.series} series rose "
        f"then); the alert fired at {fired_at:%H:%M:%S}"
    )
    return window.model_copy(update={"incident_start": start}), note


def _data_onset(
    snapshot: Snapshot, window: Window, fired_at: datetime, lookback: float, resolution: float
) -> Onset | None:
    """Where the series rose together in the ``lookback`` before the alert fired."""
    fired = fired_at.timestamp()
    earliest = max(window.start.timestamp(), fired - lookback)
    return onset_from_data(snapshot.signals, earliest, fired, resolution)


def alert_fired(snapshot: Snapshot) -> datetime | None:
    """When the alert fired, where only it dates the incident (no incident start given)."""
    alert = snapshot.alert if snapshot.meta.window.incident_start is None else None
    return alert.starts_at if alert is not None else None


def _keep_a_baseline(
    window: Window, signals: list[Signal], resolution: float, fired: datetime
) -> Window:
    """``window`` with its split moved later where it would leave the data no baseline to
    compare with: where the data begin after the lookback's split (a recording that starts
    minutes before the alert), the first :data:`MIN_BASELINE_POINTS` samples are the
    baseline, if that still splits before the alert fired."""
    begins = [s.timestamps[0] for s in signals if s.timestamps]
    if not begins:
        return window
    needed = datetime.fromtimestamp(min(begins) + MIN_BASELINE_POINTS * resolution, tz=UTC)
    if window.incident_start < needed < fired:
        return window.model_copy(update={"incident_start": needed})
    return window


def _lookback_note(window: Window, fired: datetime, lookback: float, moved: bool = False) -> str:
    """How the split was placed before the alert: the lookback, or less where the lookback
    would have left under a quarter of the window as baseline (:meth:`Snapshot.window`), or
    (``moved``) where the data begin too late to hold a baseline before it."""
    before = (fired - window.incident_start).total_seconds()
    note = (
        f"incident start taken as {window.incident_start:%H:%M:%S}, {_minutes(before)} before "
        f"the alert fired at {fired:%H:%M:%S}"
    )
    if moved:
        note += (
            f" (the {_minutes(lookback)} lookback, moved so that the data's first "
            f"{MIN_BASELINE_POINTS} samples are the baseline: they begin later)"
        )
    elif before < lookback - 30:
        note += (
            f" (the {_minutes(lookback)} lookback, cut to keep a quarter of the window as baseline)"
        )
    return note


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def logs_onset(
    snapshot: Snapshot, window: Window, lookback: float, resolution: float
) -> float | None:
    """Where logs that begin after a lookback's split compare requests: where the series
    rose together before the alert fired (``None`` with an incident start given, logs that
    begin before the split, or no common rise)."""
    fired_at = alert_fired(snapshot)
    if fired_at is None:
        return None
    start, split, end = (t.timestamp() for t in (window.start, window.incident_start, window.end))
    logged = (r.timestamp.timestamp() for r in snapshot.logs)
    first_line = min((t for t in logged if start <= t <= end), default=None)
    if first_line is None or first_line < split:
        return None
    onset = _data_onset(snapshot, window, fired_at, lookback, resolution)
    return onset.at if onset is not None else None
