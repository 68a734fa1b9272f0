"""Whose trouble a caller's rise is, on small synthetic rollouts (agent.engine.trouble):
passed up through another caller; another dependency's, only where that one is big enough
through the callee it reaches the caller by, not made big by a third one's trouble; or the
caller's own, where it began with trouble of the caller's own (its packets lost, its
connection pool full). Only what is left counts against the change.

An hour of 1-minute samples; the rollouts land at minute 40.
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
    flat,
    rolled,
    rollout_snapshot,
    signal,
    step,
    verdicts_of,
)

from agent.engine.canary import judge
from agent.engine.hood import Neighbourhood
from agent.engine.trouble import reconsider
from agent.models import SignalKind


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_callers_rise_passed_up_through_another_caller_does_not_count_against_the_change(
    seed: int,
) -> None:
    """``cart`` (rolled out at minute 40, its own series clean) answers wrong: ``checkout``,
    which calls it, fails from minute 41, and so does ``web``, which calls both. web's rise
    is checkout's passed up (checkout is its dependency, in trouble of its own), so it says
    nothing of cart either way: checkout, the one caller left to judge by, makes cart
    suspect, where before half its callers failing was not most of them."""
    rng = np.random.default_rng(seed)
    signals = rolled("cart", rng)
    signals.append(signal("checkout", ERRORS, step(0.002, 0.05), rng))
    signals.append(signal("web", ERRORS, step(0.002, 0.05), rng))
    edges = [("web", "checkout"), ("web", "cart"), ("checkout", "cart")]
    snapshot = rollout_snapshot(signals, edges, ["cart"], "passed-up")
    assert verdicts_of(snapshot) == {"cart": "suspect"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_another_dependencys_trouble_too_small_does_not_explain_a_callers_rise(
    seed: int,
) -> None:
    """web calls ``pricing`` (rolled out at minute 40, clean) and ``search``; web's errors
    go from 0.2% to 5% from minute 41 as search's go to 5% (search explains them: pricing
    is cleared) or to 0.4% (web would fail twelve times as much as it is failed: pricing's
    wrong answers, suspect)."""
    rng = np.random.default_rng(seed)
    signals = [*rolled("pricing", rng), signal("web", ERRORS, step(0.002, 0.05), rng)]
    judged = judge(change("pricing"), signals, {}, END)
    hood = Neighbourhood(
        callers={"pricing": ["web"], "search": ["web"]},
        callees={"web": ["pricing", "search"]},
        troubled={
            ("web", SignalKind.ERRORS): T0 + (AT + 1) * STEP,
            ("search", SignalKind.ERRORS): T0 + (AT + 1) * STEP,
        },
    )

    def verdict(search_after: float) -> str:
        search = signal("search", ERRORS, step(0.002, search_after), rng)
        return reconsider([judged], [*signals, search], hood, END)[0].verdict

    assert verdict(0.05) == "cleared"
    assert verdict(0.004) == "suspect"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_dependency_too_small_to_explain_a_rise_is_not_made_big_by_another_callees_trouble(
    seed: int,
) -> None:
    """web calls ``pricing`` (rolled out at minute 40, clean), ``search`` and ``cache``; web's
    errors go from 0.2% to 5% from minute 41, search's only to 0.25% (in trouble, but too
    little to explain them), and cache's CPU goes bad at minute 41 (its trouble would carry
    to web, but cache is not in trouble on errors, and search is not cache): pricing's wrong
    answers are left (suspect), not search's errors (cleared)."""
    rng = np.random.default_rng(seed)
    signals = [*rolled("pricing", rng), signal("web", ERRORS, step(0.002, 0.05), rng)]
    signals.append(signal("search", ERRORS, step(0.002, 0.0025), rng))
    signals.append(signal("cache", ERRORS, flat(0.002), rng))
    judged = judge(change("pricing"), signals, {}, END)
    hood = Neighbourhood(
        callers={"pricing": ["web"], "search": ["web"], "cache": ["web"]},
        callees={"web": ["pricing", "search", "cache"]},
        troubled={
            ("web", SignalKind.ERRORS): T0 + (AT + 1) * STEP,
            ("search", SignalKind.ERRORS): T0 + (AT + 1) * STEP,
        },
        unsized={"cache": T0 + (AT + 1) * STEP},
    )
    assert reconsider([judged], signals, hood, END)[0].verdict == "suspect"


def _sick_caller(seed: int, retransmits: float) -> dict[str, str]:
    """``web`` calls ``pricing`` (rolled out at minute 40, clean); web's errors rise from
    minute 41, and its own TCP retransmits go from 0.02/s to ``retransmits`` then."""
    rng = np.random.default_rng(seed)
    signals = rolled("pricing", rng, traffic=flat(100.0))
    signals.append(signal("web", ERRORS, step(0.002, 0.03), rng))
    signals.append(signal("web", LATENCY, flat(0.1), rng))
    lost = signal("web", "tcp_retransmits:rate", step(0.02, retransmits), rng)
    signals.append(lost.model_copy(update={"kind": SignalKind.OTHER}))
    return verdicts_of(rollout_snapshot(signals, [("web", "pricing")], ["pricing"], "sick"))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_callers_rise_that_came_with_trouble_of_its_own_is_not_the_changes(seed: int) -> None:
    """web's errors rose in the minute its own packets began to be lost (retransmits up
    twentyfold): it fails on its own network, not on what pricing's new build answers."""
    assert _sick_caller(seed, retransmits=0.02) == {"pricing": "suspect"}
    assert _sick_caller(seed, retransmits=0.4) == {"pricing": "cleared"}


def _pool_caller(seed: int, pending: float) -> dict[str, str]:
    """``web`` calls ``pricing`` (rolled out at minute 40, clean); web's errors rise from
    minute 41, and requests waiting for one of its database client connections go from 0.5
    to ``pending`` then."""
    rng = np.random.default_rng(seed)
    signals = rolled("pricing", rng, traffic=flat(100.0))
    signals.append(signal("web", ERRORS, step(0.002, 0.03), rng))
    signals.append(signal("web", LATENCY, flat(0.1), rng))
    signals.append(signal("web", "db_client_connections_pending", step(0.5, pending), rng))
    return verdicts_of(rollout_snapshot(signals, [("web", "pricing")], ["pricing"], "pool"))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_callers_rise_that_came_as_its_connection_pool_filled_is_not_the_changes(
    seed: int,
) -> None:
    """web's errors rose in the minute requests began to queue for its database connections
    (a client-side series, but the pool is web's own): it fails on its own pool, not on
    what pricing's new build answers."""
    assert _pool_caller(seed, pending=0.5) == {"pricing": "suspect"}
    assert _pool_caller(seed, pending=20.0) == {"pricing": "cleared"}
