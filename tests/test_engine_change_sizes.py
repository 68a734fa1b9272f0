"""Where two builds compete for one trouble, and where a dropped call's path leads, on
small synthetic rollouts (agent.engine.sizes, agent.engine.callgraph): a build whose own
errors rose by a percent does not take a caller's rise that another suspect callee, failing
seven requests in ten, carries, nor explain that build's own failures; alone, it still
takes its callers' trouble (a build that answers wrong keeps its own series clean); and the
dependencies a build reaches only through a callee it stopped calling show what the build
did, not trouble it waits on.

An hour of 1-minute samples; the rollouts land at minute 40.
"""

from __future__ import annotations

import numpy as np
import pytest
from rollout_support import (
    AT,
    ERRORS,
    LATENCY,
    TRAFFIC,
    flat,
    rolled,
    rollout_snapshot,
    signal,
    step,
)

from agent.engine.pipeline import analyze
from agent.models import Signal

CPU = "container_cpu_usage_seconds:rate"


def _build(service: str, rng: np.random.Generator, before: float, after: float) -> list[Signal]:
    """Two old pods whose errors sit at ``before`` until minute 44, two new ones from minute
    40 at ``after``."""
    out = []
    for n in (1, 2):
        old, new = f"{service}-6f7d9c-{n}", f"{service}-8b4c1e-{n}"
        out.append(signal(service, ERRORS, flat(before), rng, pod=old, last=AT + 4))
        out.append(signal(service, ERRORS, flat(after), rng, pod=new, first=AT))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_builds_small_rise_does_not_take_a_far_larger_one(seed: int) -> None:
    """``tax``'s new pods fail 70% of their requests, ``loyalty``'s 1.5% where its old pods
    failed 0.5% (both suspect); ``rating``, which calls both, fails 90% from minute 41, and
    tax reaches loyalty through ``ledger``. tax's step carries rating's rise; loyalty's,
    passed on as a few percent at most (a call edge amplifies by retries, not a
    hundredfold), neither takes it nor explains tax's 70%. Before, loyalty took a share of
    rating's trouble, discounted tax as "its dependency loyalty is anomalous too", and
    ranked first."""
    rng = np.random.default_rng(seed)
    signals = _build("tax", rng, 0.002, 0.7) + _build("loyalty", rng, 0.005, 0.015)
    for n in range(4):
        signals.append(signal("rating", ERRORS, step(0.008, 0.9), rng, pod=f"rating-5d8f7b-{n}"))
    edges = [("rating", "tax"), ("rating", "loyalty"), ("tax", "ledger"), ("ledger", "loyalty")]
    analysis = analyze(rollout_snapshot(signals, edges, ["tax", "loyalty"], "small-rise"))
    verdicts = {v.change.service: v.verdict for v in analysis.changes}
    assert verdicts == {"tax": "suspect", "loyalty": "suspect"}
    assert analysis.candidates[0].service == "tax"
    tax = analysis.candidates[0]
    assert not any("its dependency loyalty" in r for r in tax.reasons)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_builds_small_rise_alone_still_takes_its_callers_trouble(seed: int) -> None:
    """``coupon``'s new pods fail 1.5% where its old ones failed 0.5%, and ``loyalty``, which
    calls it and nothing else that changed, fails 50% from minute 41: a build that answers
    wrong fails its callers with its own series all but clean, and no other build carries
    loyalty's rise, so coupon takes it and ranks first."""
    rng = np.random.default_rng(seed)
    signals = _build("coupon", rng, 0.005, 0.015)
    for n in range(2):
        signals.append(signal("loyalty", ERRORS, step(0.008, 0.5), rng, pod=f"loyalty-5d8f-{n}"))
    analysis = analyze(rollout_snapshot(signals, [("loyalty", "coupon")], ["coupon"], "alone"))
    assert {v.change.service: v.verdict for v in analysis.changes} == {"coupon": "suspect"}
    assert analysis.candidates[0].service == "coupon"


def _orders_score(with_db: bool, seed: int) -> tuple[float, list[str]]:
    """``orders`` v2 stops calling ``audit``, whose requests and CPU fall from minute 42;
    ``audit-db`` behind it (``with_db``) does less work from then too, and its latency crept
    up a little from minute 41."""
    rng = np.random.default_rng(seed)
    signals = rolled("orders", rng)
    signals.append(signal("audit", TRAFFIC, step(80.0, 30.0, AT + 2), rng))
    signals.append(signal("audit", CPU, step(0.4, 0.15, AT + 2), rng))
    signals.append(signal("audit", ERRORS, flat(0.002), rng))
    signals.append(signal("frontend", TRAFFIC, flat(100.0), rng))
    if with_db:
        signals.append(signal("audit-db", TRAFFIC, step(120.0, 35.0, AT + 2), rng))
        signals.append(signal("audit-db", LATENCY, step(0.0135, 0.021, AT + 1), rng))
        signals.append(signal("audit-db", CPU, step(0.1, 0.05, AT + 2), rng))
    edges = [("frontend", "orders"), ("orders", "audit"), ("audit", "audit-db")]
    analysis = analyze(rollout_snapshot(signals, edges, ["orders"], "dropped-call-path"))
    assert {v.change.service: v.verdict for v in analysis.changes} == {"orders": "suspect"}
    orders = next(c for c in analysis.candidates if c.service == "orders")
    return orders.score, orders.reasons


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_dependency_behind_a_dropped_call_does_not_explain_the_build(seed: int) -> None:
    """orders reaches ``audit-db`` only through the call its new build dropped: what audit-db
    shows (less work, a little slower) is what that build stopped doing, not a dependency
    orders waits on, so orders scores as it does without audit-db. Before, audit-db, as
    early as orders' loss, discounted orders as "its dependency is anomalous too"."""
    score, reasons = _orders_score(True, seed)
    assert not any("its dependency audit-db" in r for r in reasons)
    assert score == pytest.approx(_orders_score(False, seed)[0])
