"""When the incident began, from the data, when only an alert says that it did.

An alert fires minutes after its fault (``for:`` clauses, evaluation intervals, slow burns),
and how long before is not written anywhere. A fixed lookback puts the split in the wrong
place: too early, and the baseline is short and the incident diluted with normal minutes; too
late, and the fault's first minutes sit in the baseline. So each series votes for the sample
where it rose most clearly before the alert (a two-sample t statistic whose noise comes from
first differences), by the size of its rise, and the incident starts at the time with the most
weight. A rise must hold for :data:`MIN_AFTER` samples, so the alert's own last-minute spike
does not win; an earlier incident that has ended by the alert rises and falls, and its rise
weighs little against the level that holds to the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from agent.models import Signal

MIN_BEFORE = 3  # samples of normal before a rise, or it cannot be told from the window edge
MIN_AFTER = 2  # samples a rise must hold: one raised sample is a spike, not an onset
RISE_T = 8.0  # how clear a rise must be to vote


@dataclass(frozen=True)
class Onset:
    """The estimated start of an incident and how many series rose then."""

    at: float  # Unix seconds
    series: int


def _rise(values: NDArray[np.float64]) -> tuple[int, float, float]:
    """The index where the clearest rise begins, its t statistic and its size in noise units
    (zeros when there is none)."""
    n = values.size
    if n < MIN_BEFORE + MIN_AFTER:
        return 0, 0.0, 0.0
    steps = np.abs(np.diff(values))
    noise = max(float(np.median(steps)) / 0.954, 1e-9 * max(float(np.max(np.abs(values))), 1.0))
    k = np.arange(MIN_BEFORE, n - MIN_AFTER + 1)
    sums = np.cumsum(values)
    before = sums[k - 1] / k
    after = (sums[-1] - sums[k - 1]) / (n - k)
    t = (after - before) / (noise * np.sqrt(1.0 / k + 1.0 / (n - k)))
    best = int(np.argmax(t))
    return int(k[best]), float(t[best]), float((after[best] - before[best]) / noise)


def onset_from_data(
    signals: list[Signal], earliest: float, fired_at: float, resolution_s: float
) -> Onset | None:
    """The incident's start between ``earliest`` and the alert, or ``None`` when no time
    gathers enough clear rises."""
    votes: dict[int, float] = {}
    voters: dict[int, int] = {}
    first: dict[int, float] = {}
    last = fired_at + resolution_s
    for signal in signals:
        ts = np.asarray(signal.timestamps, dtype=np.float64)
        keep = (ts >= earliest) & (ts <= last)
        values = np.asarray([np.nan if v is None else v for v in signal.values], dtype=np.float64)[
            keep
        ]
        present = ~np.isnan(values)
        if present.sum() < MIN_BEFORE + MIN_AFTER:
            continue
        index, t, size = _rise(values[present])
        if t >= RISE_T:
            at = float(ts[keep][present][index])
            # Series are scraped at different offsets: one bin per sampling interval.
            slot = int((at - earliest) // resolution_s)
            # By size, not t: a rise a minute before the alert has few samples after it, and
            # must not lose to an older incident's rise that has many.
            votes[slot] = votes.get(slot, 0.0) + min(size, 50.0)
            voters[slot] = voters.get(slot, 0) + 1
            first[slot] = min(first.get(slot, at), at)
    if not votes:
        return None
    start = max(votes, key=lambda slot: (votes[slot], slot))
    return Onset(first[start], voters[start])
