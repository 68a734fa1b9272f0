"""How a judged change ranks, on small synthetic rollouts: a build suspect on its own pods
takes its failing callers' trouble as its evidence, as one suspect by those callers does,
unless another of their callees, as strong, explains it (agent.engine.rank); a cleared
rollout's new pods, measured against their own first minutes, are not a cause
(agent.engine.rank); and a callee that lost the calls a build dropped does not explain
the build (agent.engine.callgraph).

An hour of 1-minute samples; the rollouts land at minute 40 unless a test says otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from rollout_support import (
    AT,
    ERRORS,
    LATENCY,
    STEADY,
    STEP,
    T0,
    TRAFFIC,
    flat,
    rolled,
    rollout_snapshot,
    signal,
    step,
)

from agent.engine.pipeline import analyze
from agent.models import Change, Signal

CPU = "container_cpu_usage_seconds:rate"


def _slow_build(service: str, rng: np.random.Generator) -> list[Signal]:
    """A rollout whose new pods answer in 500 ms where the old ones took 100 ms: two old pods
    until minute 44, two new ones from minute 40 (too few shared minutes past warm-up for a
    rank test: the comparison is before/after)."""
    out = []
    for n in (1, 2):
        old, new = f"{service}-6f7d9c-{n}", f"{service}-8b4c1e-{n}"
        out.append(signal(service, LATENCY, flat(0.1), rng, pod=old, last=AT + 4))
        out.append(signal(service, LATENCY, flat(0.5), rng, pod=new, first=AT))
        out.append(signal(service, ERRORS, flat(0.002), rng, pod=old, last=AT + 4))
        out.append(signal(service, ERRORS, flat(0.002), rng, pod=new, first=AT))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(("since", "first"), [(AT + 1, "cart"), (AT - 10, "web")])
def test_a_build_suspect_on_its_own_pods_takes_its_failing_callers_trouble(
    seed: int, since: int, first: str
) -> None:
    """``cart``'s new pods are five times slower (suspect on its own latency); ``web``, which
    calls it, times out on all four of its pods from minute ``since``. From minute 41, what
    web suffers is what cart's new version answers: cart ranks first, where before its one
    comparison weighed less than web's eight findings, and web, waiting on it, came first.
    Trouble that began ten minutes before the rollout is web's own: web stays first."""
    rng = np.random.default_rng(seed)
    signals = _slow_build("cart", rng)
    for n in range(4):
        pod = f"web-5d8f7b-{n}"
        signals.append(signal("web", ERRORS, step(0.002, 0.3, since), rng, pod=pod))
        signals.append(signal("web", LATENCY, step(0.2, 1.0, since), rng, pod=pod))
    analysis = analyze(rollout_snapshot(signals, [("web", "cart")], ["cart"], "slow-build"))
    assert {v.change.service: v.verdict for v in analysis.changes} == {"cart": "suspect"}
    assert analysis.candidates[0].service == first


def _blips(m: int) -> float:
    """CPU at 20 millicores with a 30-millicore minute every four: what the old pods did."""
    return 0.03 if m % 4 == 0 else 0.02


def _later_blips(m: int) -> float:
    """20 millicores, and 30 for six minutes from minute 50."""
    return 0.03 if AT + 10 <= m < AT + 16 else 0.02


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_cleared_rollouts_new_pods_are_not_a_cause_by_their_own_first_minutes(
    seed: int,
) -> None:
    """``shipping`` rolled out at minute 34, four minutes before the incident: its old pods
    blipped to 30 millicores every fourth minute; its new pods sat at 20 through their
    first minutes and blip to 30 for six minutes from minute 50. Against the old pods
    nothing changed (cleared), but against their own four minutes of history the blips are
    news, and shipping was a CPU-saturation candidate. ``carts``, whose latency doubled at
    minute 41, is the only candidate now."""
    rng = np.random.default_rng(seed)
    signals = [signal("carts", LATENCY, step(0.1, 0.2), rng)]
    for n in (1, 2):
        old, new = f"shipping-6f7d9c-{n}", f"shipping-8b4c1e-{n}"
        signals.append(signal("shipping", CPU, _blips, rng, pod=old, last=AT - 3))
        signals.append(signal("shipping", CPU, _later_blips, rng, pod=new, first=AT - 6))
        signals.append(signal("shipping", ERRORS, flat(0.002), rng, pod=old, last=AT - 3))
        signals.append(signal("shipping", ERRORS, flat(0.002), rng, pod=new, first=AT - 6))
    edges = [("orders", "carts"), ("orders", "shipping")]
    snapshot = rollout_snapshot(signals, edges, [], "young-pods")
    at = datetime.fromtimestamp(T0 + (AT - 6) * STEP, tz=UTC)
    rollout = Change(service="shipping", at=at, from_version="v1", to_version="v2")
    analysis = analyze(snapshot.model_copy(update={"changes": [rollout]}))
    assert [v.verdict for v in analysis.changes] == ["cleared"]
    assert [c.service for c in analysis.candidates] == ["carts"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_callers_trouble_that_another_of_its_callees_explains_is_not_the_builds(
    seed: int,
) -> None:
    """As above, but ``web`` also calls ``db``, whose errors and latency rose as much in the
    same minute: web's trouble may be db's, so cart takes none of it and ranks below web
    (before, it took a share and came second, behind db)."""
    rng = np.random.default_rng(seed)
    signals = _slow_build("cart", rng)
    for n in range(4):
        pod = f"web-5d8f7b-{n}"
        signals.append(signal("web", ERRORS, step(0.002, 0.3), rng, pod=pod))
        signals.append(signal("web", LATENCY, step(0.2, 1.0), rng, pod=pod))
    for n in range(2):
        pod = f"db-0-{n}"
        signals.append(signal("db", ERRORS, step(0.002, 0.3), rng, pod=pod))
        signals.append(signal("db", LATENCY, step(0.05, 0.5), rng, pod=pod))
    edges = [("web", "cart"), ("web", "db")]
    analysis = analyze(rollout_snapshot(signals, edges, ["cart"], "slow-build-and-db"))
    assert [c.service for c in analysis.candidates[:3]] == ["db", "web", "cart"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_callee_that_lost_the_calls_a_build_dropped_does_not_explain_the_build(
    seed: int,
) -> None:
    """``orders`` v2 stops calling ``audit`` (suspect: audit lost requests orders still
    gets); audit's requests and CPU fall from minute 42. What audit shows is what orders'
    new version stopped doing, not a dependency's trouble orders waits on: before, audit's
    fall, as early as the change, discounted orders as "its dependency is anomalous too"."""
    rng = np.random.default_rng(seed)
    signals = rolled("orders", rng)
    signals.append(signal("audit", TRAFFIC, step(80.0, 30.0, AT + 2), rng))
    signals.append(signal("audit", CPU, step(0.4, 0.15, AT + 2), rng))
    signals.append(signal("audit", ERRORS, flat(0.002), rng))
    signals.append(signal("frontend", TRAFFIC, STEADY, rng))
    edges = [("frontend", "orders"), ("orders", "audit")]
    analysis = analyze(rollout_snapshot(signals, edges, ["orders"], "dropped-call"))
    assert {v.change.service: v.verdict for v in analysis.changes} == {"orders": "suspect"}
    orders = next(c for c in analysis.candidates if c.service == "orders")
    assert not any("its dependency audit" in r for r in orders.reasons)
    assert analysis.candidates[0].service == "orders"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_dependency_busier_only_once_a_slow_build_served_is_not_its_cause(seed: int) -> None:
    """``cart``'s new pods answer five times slower than its old pods over the same minutes
    (a query without its index: suspect); ``db``, which it calls, works three times as hard
    from minute 41, as they take requests, and answers as fast as before. Its CPU is what
    cart's new build asks of it, not a saturation cart waits on (that would slow the old
    pods as much): cart ranks first, where before db's CPU, its strongest finding, put it
    first."""
    rng = np.random.default_rng(seed)
    signals = []
    for n in (1, 2):
        old, new = f"cart-6f7d9c-{n}", f"cart-8b4c1e-{n}"
        signals.append(signal("cart", LATENCY, flat(0.1), rng, pod=old, last=AT + 15))
        signals.append(signal("cart", LATENCY, flat(0.5), rng, pod=new, first=AT))
        signals.append(signal("db", CPU, step(0.4, 1.2), rng, pod=f"db-{n}"))
        signals.append(signal("db", LATENCY, flat(0.01), rng, pod=f"db-{n}"))
    analysis = analyze(rollout_snapshot(signals, [("cart", "db")], ["cart"], "loaded-db"))
    assert {v.change.service: v.verdict for v in analysis.changes} == {"cart": "suspect"}
    assert analysis.candidates[0].service == "cart"
