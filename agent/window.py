"""The window rule: which time range an analysis looks at, and at which step.

Every trigger names a moment where it began to hurt: an alert's ``startsAt``, or the start of
an ad-hoc request (the API's ``start``/``last``, Slack's ``/rca ... since 14:05``, the CLI's
``--since``). :func:`frame` turns that moment into the analysed window, the same way for the
webhook, the API, Slack and the CLI:

- the incident part starts ``lookback`` before the moment (alerts fire minutes after the
  fault; people notice later still) and ends now, or at the request's end;
- the baseline (``baseline``, and at least a third of the incident part, which the engine
  needs to keep its split where the lookback put it) comes before it;
- the incident part is at most ``max_length`` long: an alert firing for two years is analysed
  around its start, not over two years at a step of sixteen hours;
- a moment older than the data still kept (``oldest``: the store's retention, or a configured
  maximum age) cannot be analysed around; the window is then the most recent one, and a note
  says so;
- a moment in the future (clock skew) is taken as now;
- the step is the source's resolution where known, coarser only when the window would
  otherwise hold more than ``max_points`` points, and the window is widened (a longer baseline)
  when it would hold fewer than ``min_points``.

Pure: no clock, no I/O; callers pass ``now``. Example::

    rule = WindowRule.from_settings(settings)
    framed = frame(alert.starts_at, datetime.now(UTC), rule)
    framed.start, framed.incident_start, framed.end, framed.step_s, framed.notes
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from agent.config import Settings
    from agent.models import Analysis, Signal

# The engine's own cap (agent.engine.pipeline.LOOKBACK_SAMPLES): at 1 s sampling, ten minutes
# of lookback would pull unrelated history into the incident.
LOOKBACK_SAMPLES = 120


class WindowSettings(BaseModel):
    """How long an analysed window may be, and how old its start."""

    model_config = ConfigDict(extra="forbid")

    max_minutes: float = Field(
        360.0,
        gt=0,
        description="longest incident part analysed (from the lookback before the alert or "
        "request start to its end); the baseline comes on top",
    )
    max_age_days: float | None = Field(
        None,
        gt=0,
        description="data older than this is gone (the metrics store's retention): an alert "
        "that started earlier is analysed over the most recent window, with a note; none: "
        "no limit",
    )
    min_points: int = Field(
        30, ge=2, le=1000, description="fewest points per series: a shorter window is widened"
    )


@dataclass(frozen=True)
class WindowRule:
    """The settings :func:`frame` needs, gathered from their sections."""

    lookback: timedelta = timedelta(minutes=10)
    baseline: timedelta = timedelta(minutes=60)
    max_length: timedelta = timedelta(hours=6)
    max_age: timedelta | None = None
    min_points: int = 30
    max_points: int = 1100
    resolution_s: float | None = None  # the source's scrape interval, where configured

    def __post_init__(self) -> None:
        for name in ("lookback", "baseline", "max_length"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 2 <= self.min_points <= self.max_points:
            raise ValueError(
                f"need 2 <= min_points <= max_points, got {self.min_points} and {self.max_points}"
            )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        lookback_minutes: float | None = None,
        baseline_minutes: float | None = None,
    ) -> WindowRule:
        """The rule of ``settings``: engine lookback, collect baseline, window limits, and
        Prometheus' step limits; the command line may override the first two."""
        window = settings.window
        return cls(
            lookback=timedelta(minutes=lookback_minutes or settings.engine.lookback_minutes),
            baseline=timedelta(minutes=baseline_minutes or settings.collect.baseline_minutes),
            max_length=timedelta(minutes=window.max_minutes),
            max_age=timedelta(days=window.max_age_days) if window.max_age_days else None,
            min_points=window.min_points,
            max_points=max(window.min_points, settings.prometheus.max_points),
            resolution_s=settings.prometheus.scrape_interval_s,
        )


@dataclass(frozen=True)
class Framed:
    """An analysed window: baseline from ``start``, incident from ``incident_start`` to ``end``,
    sampled every ``step_s`` seconds; ``notes`` say where the rule changed what was asked."""

    start: datetime
    incident_start: datetime
    end: datetime
    step_s: float
    anchor: datetime
    notes: tuple[str, ...] = field(default=())

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    @property
    def points(self) -> int:
        return int(self.length.total_seconds() // self.step_s) + 1


def frame(
    moment: datetime,
    now: datetime,
    rule: WindowRule,
    end: datetime | None = None,
    oldest: datetime | None = None,
) -> Framed:
    """The window around ``moment`` (alert start or request start); see the module docstring.

    ``end``: the request's end (default and at most: ``now``). ``oldest``: the earliest data
    the store keeps, when it says; ``rule.max_age`` gives one too, the later one counts.
    """
    notes: list[str] = []
    if rule.max_age is not None:
        kept = now - rule.max_age
        oldest = kept if oldest is None else max(oldest, kept)
    anchor = moment
    if anchor > now:
        notes.append(
            f"the start {_stamp(moment)} lies after the time of analysis {_stamp(now)} "
            "(clock skew?): analysed up to now"
        )
        anchor = now
    lookback = _lookback(rule.lookback, rule.resolution_s)
    if oldest is not None and anchor - lookback < oldest:
        notes.append(
            f"started {_stamp(moment)} ({_age(now - moment)} ago), before the oldest data kept "
            f"({_stamp(oldest)}, {_source_limit(rule)}): its onset cannot be analysed; this "
            "analysis covers the most recent window instead"
        )
        anchor = now
    incident_start = anchor - lookback
    until = min(end, now) if end is not None else now
    until = max(until, anchor)
    if until - incident_start > rule.max_length:
        cut = incident_start + rule.max_length
        notes.append(
            f"window cut to {_age(rule.max_length)} from {_stamp(incident_start)} "
            f"(window.max_minutes): what came after {_stamp(cut)} is not analysed"
            + (f"; the alert or request began {_age(now - moment)} ago" if moment < cut else "")
        )
        until = cut
    # The engine keeps at least a quarter of a window as baseline: a baseline shorter than a
    # third of the incident part would move the split later than the lookback put it.
    start = incident_start - max(rule.baseline, (until - incident_start) / 3)
    step = _step(until - start, rule)
    widest = until - (rule.min_points - 1) * timedelta(seconds=step)
    if widest < start:  # too few points at this resolution: a longer baseline
        start = widest
    if oldest is not None and start < oldest:
        start = min(oldest, incident_start - (incident_start - start) / 4)
        notes.append(f"baseline shortened to start at {_stamp(start)}: older data is not kept")
    return Framed(start, incident_start, until, step, moment, tuple(notes))


def _lookback(lookback: timedelta, resolution_s: float | None) -> timedelta:
    if resolution_s is None:
        return lookback
    return min(lookback, timedelta(seconds=LOOKBACK_SAMPLES * resolution_s))


def _step(length: timedelta, rule: WindowRule) -> float:
    """The source's resolution, or coarser so that the window holds at most max_points."""
    finest = math.ceil(length.total_seconds() / max(1, rule.max_points - 1))
    return float(max(rule.resolution_s or 1.0, finest, 1))


def incident_start_at(
    anchor: datetime, lookback: timedelta, signals: Sequence[Signal], end: datetime
) -> datetime:
    """The incident start of an ad-hoc request once its data is in, as the engine settles an
    alert's: ``lookback`` before the request's start but at most :data:`LOOKBACK_SAMPLES`
    samples, and late enough that a quarter of the data before ``end`` stays as baseline."""
    start = anchor - _lookback(lookback, resolution_of(signals))
    first = min((s.timestamps[0] for s in signals if s.timestamps), default=None)
    if first is None:
        return start
    data_start = datetime.fromtimestamp(first, tz=UTC)
    return max(start, data_start + (end - data_start) / 4)


def resolution_of(signals: Sequence[Signal]) -> float | None:
    """The typical sampling interval of the series in seconds (None without series)."""
    steps = sorted(
        (s.timestamps[-1] - s.timestamps[0]) / (len(s.timestamps) - 1)
        for s in signals[:500]
        if len(s.timestamps) > 1
    )
    return steps[len(steps) // 2] if steps else None


def with_window(
    analysis: Analysis,
    signals: Sequence[Signal],
    notes: Sequence[str] = (),
    step_s: float | None = None,
) -> Analysis:
    """The analysis with the step its series were sampled at (``step_s`` when there are
    none) and ``notes`` (the window rule's, the collection's) added."""
    step = resolution_of(signals) or step_s
    window = analysis.window.model_copy(update={"step_s": step})
    return analysis.model_copy(
        update={"window": window, "notes": [*analysis.notes, *(n for n in notes if n)]}
    )


def window_line(start: datetime, end: datetime, step_s: float | None, tz: tzinfo = UTC) -> str:
    """``2024-05-14 09:13:00 → 10:33:00 UTC (80 min, step 30 s)``: what a report shows."""
    start, end = start.astimezone(tz), end.astimezone(tz)
    until = f"{end:%H:%M:%S}" if start.date() == end.date() else f"{end:%Y-%m-%d %H:%M:%S}"
    step = f", step {_duration(step_s)}" if step_s else ""
    zone = end.tzname() or "UTC"
    return f"{start:%Y-%m-%d %H:%M:%S} → {until} {zone} ({_age(end - start)}{step})"


def _stamp(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M}"


def _duration(seconds: float) -> str:
    if seconds < 60 or seconds % 60:
        return f"{seconds:g} s"
    return _age(timedelta(seconds=seconds))


def _age(span: timedelta) -> str:
    """A length as a person says it: 45 s, 80 min, 6 h, 2 h 30 min, 758 d."""
    seconds = span.total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 3 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        hours, minutes = divmod(round(seconds / 60), 60)
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    return f"{seconds / 86400:.0f} d"


def _source_limit(rule: WindowRule) -> str:
    if rule.max_age is None:
        return "the store's retention"
    return f"window.max_age_days {rule.max_age.total_seconds() / 86400:g}"
