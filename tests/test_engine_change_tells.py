"""What tells whose trouble it is, on small synthetic rollouts: new pods failing beside old
pods that stayed well fail on their own build, whatever a dependency's trouble in the same
minutes (agent.engine.old_pods, agent.engine.trouble); of two rollouts done before a
callee lost requests, the one that answers faster since is the one that stopped calling it
(agent.engine.owners); a rollout whose late errors began with those of another caller of a
changed callee they share passes that callee's wrong answers up (agent.engine.owners); a
caller's rise passed up through more than one call counts neither way
(agent.engine.trouble); and a callee's requests are compared from when they fell, however
long after the rollout (agent.engine.neighbours).

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
    STEADY,
    STEP,
    T0,
    TRAFFIC,
    change,
    failing_late,
    flat,
    rolled,
    rollout_snapshot,
    signal,
    step,
    verdicts_of,
)

from agent.engine.canary import OLD_WELL, judge
from agent.engine.hood import Neighbourhood
from agent.engine.trouble import reconsider
from agent.models import Signal, SignalKind


def _beside(seed: int, old_errors: float) -> tuple[str, bool]:
    """``web`` rolled out at minute 40: two new pods failing 10% from the start, two old pods
    at ``old_errors`` until minute 44 (too few shared minutes past the new pods' warm-up for
    a rank test: the comparison is before/after); ``db``, its callee, failing 10% from minute
    41. The verdict once the neighbours are in view, and whether the old pods stayed well."""
    rng = np.random.default_rng(seed)
    signals = []
    for n in (1, 2):
        old = step(0.002, old_errors, AT)
        signals.append(signal("web", ERRORS, old, rng, pod=f"web-6f7d9c-{n}", last=AT + 4))
        signals.append(signal("web", ERRORS, flat(0.1), rng, pod=f"web-8b4c1e-{n}", first=AT))
    judged = judge(change("web"), signals, {}, END)
    assert not any(c.same_minutes for c in judged.comparisons if c.kind is SignalKind.ERRORS)
    db = signal("db", ERRORS, step(0.002, 0.1, AT + 1), rng)
    hood = Neighbourhood(
        callers={"db": ["web"]},
        callees={"web": ["db"]},
        troubled={("db", SignalKind.ERRORS): T0 + (AT + 1) * STEP},
    )
    verdict = reconsider([judged], [*signals, db], hood, END)[0].verdict
    return verdict, any(OLD_WELL in c.versus for c in judged.comparisons)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_new_pods_failing_beside_old_ones_that_stayed_well_are_not_cleared_by_a_dependency(
    seed: int,
) -> None:
    """db's trouble began with web's rollout and is big enough to explain web's errors, but
    web's old pods, calling the same db in the same minutes, stayed at 0.2%: the build is
    suspect. Old pods at 4% (not as bad as the new ones, not well either) leave it to db."""
    assert _beside(seed, old_errors=0.002) == ("suspect", True)
    assert _beside(seed, old_errors=0.04) == ("cleared", False)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_callees_loss_after_every_rollout_was_done_goes_to_the_caller_that_got_faster(
    seed: int,
) -> None:
    """``pricing`` and ``search`` both call ``db`` and both rolled out at minute 40 (done by
    minute 44); their request rates hold. db loses half of its requests from minute 46 (a
    code path reached late), when pricing's latency falls from 200 to 170 ms: pricing no
    longer waits on the call it dropped (suspect); search, as fast as before, is cleared
    (before, the tie went to the service name)."""
    rng = np.random.default_rng(seed)
    signals = [*rolled("pricing", rng), *rolled("search", rng)]
    signals += [signal(s, TRAFFIC, flat(100.0), rng) for s in ("pricing", "search")]
    signals.append(signal("pricing", LATENCY, step(0.2, 0.17, 46), rng))
    signals.append(signal("search", LATENCY, flat(0.2), rng))
    signals.append(signal("db", TRAFFIC, step(200.0, 100.0, 46), rng))
    edges = [("pricing", "db"), ("search", "db")]
    snapshot = rollout_snapshot(signals, edges, ["pricing", "search"], "late-lost-calls")
    assert verdicts_of(snapshot) == {"pricing": "suspect", "search": "cleared"}


def _failing_late(service: str, rng: np.random.Generator, at: int) -> list[Signal]:
    """:func:`rolled`, but the new pods' errors go from 0.2% to 5% at minute ``at``, when the
    old pods are long gone: only a before/after comparison sees it."""
    clean = [s for s in rolled(service, rng) if s.name != ERRORS]
    return [*clean, *failing_late(service, rng, to=0.05, at=at)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_rollouts_late_errors_that_another_caller_of_a_changed_callee_shares_are_that_ones(
    seed: int,
) -> None:
    """``orders`` and ``pricing``, which it calls, both rolled out at minute 40; pricing's
    own series stay clean. From minute 46 orders' new pods fail 5%, and so does ``search``,
    which calls pricing but not orders: two services failing together share a cause both
    depend on, so orders' rollout is cleared and pricing, both its callers failing, is
    suspect (a build that answers wrong). With search well, orders' build is suspect."""
    rng = np.random.default_rng(seed)
    signals = [*_failing_late("orders", rng, AT + 6), *rolled("pricing", rng)]
    edges = [("orders", "pricing"), ("search", "pricing")]
    together = [*signals, signal("search", ERRORS, step(0.002, 0.05, AT + 6), rng)]
    snapshot = rollout_snapshot(together, edges, ["orders", "pricing"], "answered-wrong")
    assert verdicts_of(snapshot) == {"orders": "cleared", "pricing": "suspect"}
    alone = [*signals, signal("search", ERRORS, flat(0.002), rng)]
    snapshot = rollout_snapshot(alone, edges, ["orders", "pricing"], "failing-alone")
    assert verdicts_of(snapshot) == {"orders": "suspect", "pricing": "cleared"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_two_rolled_out_callers_failing_together_long_after_their_rollouts_share_a_cause(
    seed: int,
) -> None:
    """``orders``, ``search`` and ``pricing``, which both call, all rolled out at minute 40;
    pricing's own series stay clean. From minute 47 the new pods of orders and of search fail
    5% together. Each, worse before/after, is suspect on its own series, and a suspect's
    trouble counts from its change (minute 40) for its callers: but the two began to fail in
    the same minute, seven minutes after their rollouts, so they share a cause, the changed
    callee both depend on (pricing: suspect; both callers cleared)."""
    rng = np.random.default_rng(seed)
    signals = [*_failing_late("orders", rng, AT + 7), *_failing_late("search", rng, AT + 7)]
    signals += rolled("pricing", rng)
    edges = [("orders", "pricing"), ("search", "pricing")]
    changed = ["orders", "search", "pricing"]
    snapshot = rollout_snapshot(signals, edges, changed, "answered-wrong-both-rolled")
    assert verdicts_of(snapshot) == {"orders": "cleared", "search": "cleared", "pricing": "suspect"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_callers_rise_passed_up_more_than_one_call_does_not_count_against_the_change(
    seed: int,
) -> None:
    """``cart`` (rolled out at minute 40, its own series clean) answers wrong: ``checkout``,
    which calls it, fails from minute 41, and so do ``gateway``, which calls checkout, and
    ``web``, which calls gateway and cart. web's rise is gateway's, itself checkout's passed
    up, so it says nothing of cart either way: checkout, the one caller left to judge by,
    makes cart suspect, where before one of two callers failing was not most of them."""
    rng = np.random.default_rng(seed)
    signals = rolled("cart", rng)
    signals += [signal(s, ERRORS, step(0.002, 0.05), rng) for s in ("checkout", "gateway", "web")]
    edges = [("checkout", "cart"), ("web", "cart"), ("web", "gateway"), ("gateway", "checkout")]
    snapshot = rollout_snapshot(signals, edges, ["cart"], "passed-up-twice")
    assert verdicts_of(snapshot) == {"cart": "suspect"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_call_dropped_on_a_code_path_reached_late_is_the_builds(seed: int) -> None:
    """``orders`` v2 stops calling ``audit`` on a path its traffic reaches only at minute 52,
    twelve minutes after the rollout: audit's requests fall from 80 to 30 a minute then,
    orders' own hold. They are compared from when they fell (before, the twelve normal
    minutes after the rollout left the rank test short of p < 0.001: cleared)."""
    rng = np.random.default_rng(seed)
    signals = rolled("orders", rng)
    signals.append(signal("audit", TRAFFIC, step(80.0, 30.0, AT + 12), rng))
    signals.append(signal("audit", ERRORS, flat(0.002), rng))
    signals.append(signal("frontend", TRAFFIC, STEADY, rng))
    edges = [("frontend", "orders"), ("orders", "audit")]
    snapshot = rollout_snapshot(signals, edges, ["orders"], "late-dropped-call")
    assert verdicts_of(snapshot) == {"orders": "suspect"}
    # With ``search``, another caller of audit, changed at the same minute, the late fall's
    # minutes do not say which build dropped the call: neither is blamed by them.
    signals += [*rolled("search", rng), signal("search", TRAFFIC, STEADY, rng)]
    edges.append(("search", "audit"))
    both = rollout_snapshot(signals, edges, ["orders", "search"], "late-dropped-call")
    assert verdicts_of(both) == {"orders": "cleared", "search": "cleared"}
