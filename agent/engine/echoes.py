"""A baseline that held the incident's own level: why nothing stood out, and what would settle it.

Faults follow each other. When the minutes before an incident hold an earlier one (a stretch
where the same series stood as high as it does now, then came back), the baseline's median
and spread take that stretch in, and the new rise no longer departs from it: the engine
finds nothing. Saying "no series departs from its baseline" is then true but misleading at
3 am; this module finds those stretches, so the report can name them and say that a baseline
from before them would settle it.

Only rises are read (a latency, an error share, a resource going up, as faults show), and
only series that came back down before the incident began: a level that was still raised
at the split is a fault that began early, not an earlier incident.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from agent.engine.detect.kinds import kind_of
from agent.models import Signal, SignalKind
from agent.units import baseline_text, format_value, unit_of

MIN_BASELINE = 4  # samples before the split, to tell a quiet level from a raised stretch
MIN_RISE = 2.0  # the incident's held level over the baseline's quiet level (its lower quartile)
AS_HIGH = 0.7  # a baseline stretch at this share of the incident's level stood as high
SHOWN = 3  # echoes named in the note, one per service


@dataclass(frozen=True)
class Echo:
    """A series whose baseline held a stretch as high as the incident's rise."""

    signal: Signal
    quiet: float  # the baseline's quiet level (its lower quartile)
    level: float  # what the incident held (its second highest sample)
    earlier: tuple[float, float]  # first and last time of the baseline's raised stretch
    earlier_peak: float
    since: float  # the incident's first sample at or above halfway from quiet to level

    @property
    def rise(self) -> float:
        return self.level / self.quiet


def echoes(signals: list[Signal], start: float, split: float, end: float) -> list[Echo]:
    """Series that rose in the incident as high as they already stood in the baseline, the
    strongest rise of each service first."""
    found: dict[str, Echo] = {}
    for signal in signals:
        if kind_of(signal) in (SignalKind.CHANGE, SignalKind.TRAFFIC):
            continue
        echo = _echo(signal, start, split, end)
        if echo is not None and (
            signal.service not in found or echo.rise > found[signal.service].rise
        ):
            found[signal.service] = echo
    return sorted(found.values(), key=lambda e: (-e.rise, e.signal.service))


def _echo(signal: Signal, start: float, split: float, end: float) -> Echo | None:
    before = [(t, v) for t, v in signal.points(start, split) if t < split]
    after = signal.points(split, end)
    if len(before) < MIN_BASELINE or len(after) < 2:
        return None
    quiet = sorted(v for _, v in before)[len(before) // 4]
    level = sorted(v for _, v in after)[-2]  # held: two samples at least this high
    if quiet <= 0 or level < MIN_RISE * quiet:
        return None
    halfway = (quiet + level) / 2
    raised = [v >= AS_HIGH * level for _, v in before]
    stretch = _longest_run(raised)
    if stretch is None:
        return None
    first, last = stretch
    # It came back before the incident: a sample after the stretch fell below halfway.
    if all(v >= halfway for _, v in before[last + 1 :]):
        return None
    since = next(t for t, v in after if v >= halfway)
    return Echo(
        signal,
        quiet,
        level,
        (before[first][0], before[last][0]),
        max(v for _, v in before[first : last + 1]),
        since,
    )


def _longest_run(flags: list[bool]) -> tuple[int, int] | None:
    """The first and last index of the longest run of two or more ``True`` in a row."""
    best: tuple[int, int] | None = None
    begin = None
    for i, flag in enumerate([*flags, False]):
        if flag and begin is None:
            begin = i
        elif not flag and begin is not None:
            if i - begin >= 2 and (best is None or i - begin > best[1] - best[0] + 1):
                best = (begin, i - 1)
            begin = None
    return best


def echo_note(found: list[Echo]) -> str | None:
    """What the report says when nothing departs from the baseline because the baseline held
    the same rise: the series, both stretches with their numbers, and what would settle it."""
    if not found:
        return None
    shown = found[:SHOWN]
    parts = [_clause(e) for e in shown]
    more = f" (and {len(found) - SHOWN} more services)" if len(found) > SHOWN else ""
    earliest = min(e.earlier[0] for e in shown)
    return (
        "the baseline already held the incident's rise (an earlier incident's tail?), which "
        f"can hide this one: {'; '.join(parts)}{more}. A baseline from before "
        f"{_clock(earliest)} would settle whether these rises are this incident's (live: "
        "rca analyze --baseline MINUTES, or the setting collect.baseline_minutes)"
    )


def _clause(e: Echo) -> str:
    unit = unit_of(e.signal.name, e.signal.unit)
    where = e.signal.service if e.signal.pod is None else f"{e.signal.service}/{e.signal.pod}"
    return (
        f"{where} {e.signal.name} rose from {baseline_text(e.quiet, e.level, unit)} to "
        f"{format_value(e.level, unit)} from {_clock(e.since)}, and had stood as high (up to "
        f"{format_value(e.earlier_peak, unit)}) from {_clock(e.earlier[0])} to "
        f"{_clock(e.earlier[1])}"
    )


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%H:%M")
