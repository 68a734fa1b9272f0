"""The rank test the canary judges with, and what "worse" means on top of it.

Kayenta's canary judge classifies each metric with a Mann-Whitney U test between control and
experiment; so does :mod:`agent.engine.canary`, one-sided ("new is higher"), and so do the
neighbours' before/after comparisons (:mod:`agent.engine.neighbours`). A significant shift is
not enough on its own: the median must also move by a ratio, or beyond the reference's usual
spread where a series sits near zero.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from agent.models import Stats

ALPHA = 1e-3  # one-sided p-value below which new pods are worse
MIN_RATIO = 1.25  # ... and their median at least this much higher (or up from ~0)


def mann_whitney_greater(new: NDArray[np.float64], old: NDArray[np.float64]) -> float:
    """One-sided p-value that ``new`` tends to be larger than ``old`` (normal approximation
    with tie correction; exact enough from a few samples a side)."""
    n1, n2 = new.size, old.size
    both = np.concatenate([new, old])
    _, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    average = np.cumsum(counts) - (counts - 1) / 2  # the mean rank of each tied group
    u = float(average[inverse[:n1]].sum()) - n1 * (n1 + 1) / 2
    n = n1 + n2
    tie = float((counts**3 - counts).sum()) / (n * (n - 1)) if n > 1 else 0.0
    variance = n1 * n2 / 12 * ((n + 1) - tie)
    if variance <= 0:
        return 1.0
    z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2))


def stats_of(values: NDArray[np.float64]) -> Stats:
    if values.size == 0:
        return Stats(count=0)
    return Stats(
        median=float(np.median(values)),
        p95=float(np.quantile(values, 0.95)),
        max=float(values.max()),
        mean=float(values.mean()),
        count=int(values.size),
    )


def is_worse(
    new: NDArray[np.float64],
    ref: NDArray[np.float64],
    p: float,
    ratio: float = MIN_RATIO,
    beyond_noise: bool = True,
) -> bool:
    """Significantly higher, by ``ratio`` or (``beyond_noise``) by three times the
    reference's usual spread, which is what a series near zero can only show."""
    new_median, ref_median = float(np.median(new)), float(np.median(ref))
    if p >= ALPHA or new_median <= ref_median:
        return False
    spread = float(np.quantile(ref, 0.9) - np.quantile(ref, 0.1))
    above = beyond_noise and new_median - ref_median > 3 * spread > 0
    return new_median >= ratio * ref_median or above
