"""A spiky series a little higher after a change, on small synthetic rollouts
(agent.engine.canary): before/after, a service's errors are worse only where their typical
minute since the change is worse than a quarter of the minutes before it.

An hour of 1-minute samples; the rollout lands at minute 40.
"""

from __future__ import annotations

import numpy as np
import pytest
from rollout_support import AT, END, ERRORS, MINUTES, STEP, T0, change

from agent.engine.canary import judge
from agent.models import Signal


def _spiky(pod: str, median: float, first: int, last: int, rng: np.random.Generator) -> Signal:
    """Errors of ``median`` on a usual minute, twice that one minute in four and three and a
    half times one in ten (a log-normal spread: a bad batch, a retry storm, a burst)."""
    minutes = range(first, last)
    values = [float(median * rng.lognormal(0.0, 1.0)) for _ in minutes]
    ts = [T0 + m * STEP for m in minutes]
    return Signal(service="report", name=ERRORS, pod=pod, timestamps=ts, values=values)


@pytest.mark.parametrize("seed", [1, 3, 4, 5])
def test_a_spiky_series_a_little_higher_after_the_change_is_not_worse(seed: int) -> None:
    """Eight old pods whose errors sit at 0.4% on a usual minute (0.8% one minute in four)
    until minute 44; eight new ones from minute 40 at 0.64% on a usual minute, with the same
    spread. Against the minutes before, the shift is significant (many samples) and 1.6
    times the median, but the new pods' typical minute is one the old pods had every
    fourth minute: what noise, the day's drift or a neighbour's trouble gives a healthy
    build, not a build that breaks requests. Before, the rollout was suspect "worse on
    errors"; now it is cleared."""
    rng = np.random.default_rng(seed)
    signals = []
    for n in range(8):
        signals.append(_spiky(f"report-6f7d9c-{n}", 0.004, 0, AT + 4, rng))
        signals.append(_spiky(f"report-8b4c1e-{n}", 0.0064, AT, MINUTES, rng))
    judged = judge(change("report"), signals, {}, END)
    assert judged.verdict == "cleared"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_spiky_series_whose_usual_minute_is_past_the_old_ones_bad_minutes_is_worse(
    seed: int,
) -> None:
    """As above, but the new pods fail 2% on a usual minute: past nine old minutes in ten,
    a build that breaks requests. Suspect."""
    rng = np.random.default_rng(seed)
    signals = []
    for n in range(8):
        signals.append(_spiky(f"report-6f7d9c-{n}", 0.004, 0, AT + 4, rng))
        signals.append(_spiky(f"report-8b4c1e-{n}", 0.02, AT, MINUTES, rng))
    assert judge(change("report"), signals, {}, END).verdict == "suspect"
