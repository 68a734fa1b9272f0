"""What a dependency's trouble can pass up to a build that got worse after its rollout, on
small synthetic rollouts (agent.engine.neighbours.carried, read by agent.engine.trouble): a
callee's latency explains a caller's latency and its timeouts, not errors that rose while
the caller's usual request took no longer; and a callee's CPU or disk trouble that began
minutes after the build's own rise did not cause it.

An hour of 1-minute samples; the rollout lands at minute 40, ``web``'s new pods fail 10% of
their requests from minute 50 (0.2% before), and ``db`` is its one dependency.
"""

from __future__ import annotations

import numpy as np
import pytest
from rollout_support import (
    AT,
    END,
    ERRORS,
    LATENCY,
    STEP,
    T0,
    change,
    failing_late,
    flat,
    signal,
    step,
)

from agent.engine.canary import judge
from agent.engine.hood import Neighbourhood
from agent.engine.trouble import reconsider
from agent.models import Signal, SignalKind

MEDIAN = "http_request_duration_seconds:p50"
GRAPH = {"callers": {"db": ["web"]}, "callees": {"web": ["db"]}}


def _web(seed: int, median_after: float) -> list[Signal]:
    """web's errors (:func:`failing_late`) and latency: its p99 up from 0.4 s to 0.7 s from
    minute 50 on its new pods (the failing requests are the slow end), its median from
    0.08 s to ``median_after``."""
    rng = np.random.default_rng(seed)
    signals = failing_late("web", rng)
    for n in (1, 2):
        old, new = f"web-6f7d9c-{n}", f"web-8b4c1e-{n}"
        signals.append(signal("web", LATENCY, flat(0.4), rng, pod=old, last=AT + 4))
        signals.append(signal("web", LATENCY, step(0.4, 0.7, 50), rng, pod=new, first=AT))
        signals.append(signal("web", MEDIAN, flat(0.08), rng, pod=old, last=AT + 4))
        median = step(0.08, median_after, 50)
        signals.append(signal("web", MEDIAN, median, rng, pod=new, first=AT))
    return signals


def _verdict(signals: list[Signal], db: list[Signal], hood: Neighbourhood) -> str:
    judged = judge(change("web"), signals, {}, END)
    assert {c.kind for c in judged.comparisons if c.worse} == {
        SignalKind.ERRORS,
        SignalKind.LATENCY,
    }
    return reconsider([judged], [*signals, *db], hood, END)[0].verdict


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_slower_dependency_does_not_explain_errors_its_caller_did_not_wait_for(
    seed: int,
) -> None:
    """db's median latency goes from 50 ms to 80 ms at minute 49, its errors stay at 0.2%.
    web's errors go from 0.2% to 10% and its p99 up, its median 10% up: db's latency carries
    web's latency, but a caller that fails on timeouts waited first, and 10% of web's
    requests failing while its usual one took no longer are its own. With web's median
    up by half (it waits on db, and times out), db explains it and the build is cleared."""
    rng = np.random.default_rng(seed + 100)
    db = [
        signal("db", MEDIAN, step(0.05, 0.08, 49), rng),
        signal("db", ERRORS, flat(0.002), rng),
    ]
    hood = Neighbourhood(**GRAPH, troubled={("db", SignalKind.LATENCY): T0 + 49 * STEP})
    assert _verdict(_web(seed, 0.088), db, hood) == "suspect"
    assert _verdict(_web(seed, 0.12), db, hood) == "cleared"


def _failing_at_once(seed: int) -> list[Signal]:
    """web's new pods fail 10% from the minute they serve (40); its old pods, at 0.2%, are
    gone by then."""
    rng = np.random.default_rng(seed)
    out = []
    for n in (1, 2):
        out.append(signal("web", ERRORS, flat(0.002), rng, pod=f"web-6f7d9c-{n}", last=AT))
        out.append(signal("web", ERRORS, flat(0.1), rng, pod=f"web-8b4c1e-{n}", first=AT))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_dependencys_cpu_trouble_that_began_later_does_not_explain_a_build(seed: int) -> None:
    """db's errors go from 0.2% to 0.4% as web's new build serves, too little to be web's
    10% (trouble grows a few times on its way up, not 25); db's CPU trouble (its calls fail
    at web, whatever its own errors say) explains web only if it began by web's rise, give
    or take three samples: from minute 41 it does, from minute 50 it does not. A rise that
    began ten minutes after the change (:func:`failing_late`) is not dated by the new pods,
    and db's CPU from minute 58 still explains it."""
    db = [signal("db", ERRORS, step(0.002, 0.004, AT), np.random.default_rng(seed))]

    def verdict(signals: list[Signal], db_from: int, cpu_from: int) -> str:
        troubled = {("db", SignalKind.ERRORS): T0 + db_from * STEP}
        hood = Neighbourhood(**GRAPH, troubled=troubled, unsized={"db": T0 + cpu_from * STEP})
        judged = judge(change("web"), signals, {}, END)
        return reconsider([judged], [*signals, *db], hood, END)[0].verdict

    at_once = _failing_at_once(seed)
    assert verdict(at_once, AT, AT + 1) == "cleared"
    assert verdict(at_once, AT, AT + 10) == "suspect"
    assert verdict(failing_late("web", np.random.default_rng(seed)), 49, 58) == "cleared"
