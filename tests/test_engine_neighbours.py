"""A change judged by its neighbours, on small synthetic rollouts: callers' errors towards
it, callees' lost requests, and what else explains them (agent.engine.neighbours, .trouble).

Every service here rolls out (or not) at minute 40 of an hour of 1-minute samples; its own
pods stay clean unless a test says otherwise, so only its neighbours can tell.
"""

from __future__ import annotations

import numpy as np
import pytest
from rollout_support import (
    AT,
    END,
    ERRORS,
    MINUTES,
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

from agent.engine.canary import judge
from agent.engine.detect.series import SeriesFinding
from agent.engine.hood import Neighbourhood
from agent.engine.neighbours import aggregate
from agent.engine.pipeline import analyze
from agent.engine.rank import _draining
from agent.engine.trouble import reconsider
from agent.models import Change, FaultType, Signal, SignalKind, Stats
from agent.snapshot import Snapshot


def _wrong_values(seed: int, second_caller_fails: bool = True) -> Snapshot:
    """``pricing`` v2 answers wrong values: its pods stay clean, its callers ``cart`` and
    ``checkout`` fail more from its rollout on; ``search`` rolled out too, harmlessly."""
    rng = np.random.default_rng(seed)
    signals = rolled("pricing", rng) + rolled("search", rng)
    signals.append(signal("cart", ERRORS, step(0.002, 0.08), rng))
    second = step(0.002, 0.06) if second_caller_fails else flat(0.002)
    signals.append(signal("checkout", ERRORS, second, rng))
    edges = [("cart", "pricing"), ("checkout", "pricing"), ("checkout", "search")]
    return rollout_snapshot(signals, edges, ["pricing", "search"], "neighbours")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_callers_failing_towards_a_clean_rollout_make_it_suspect(seed: int) -> None:
    snapshot = _wrong_values(seed)
    assert verdicts_of(snapshot) == {"pricing": "suspect", "search": "cleared"}
    analysis = analyze(snapshot)
    top = analysis.candidates[0]
    assert (top.service, top.fault_type) == ("pricing", FaultType.BAD_DEPLOY)
    (verdict,) = [v for v in analysis.changes if v.change.service == "pricing"]
    assert "its callers cart, checkout fail more towards it" in verdict.reasons[0]


@pytest.mark.parametrize("seed", [1, 2])
def test_one_caller_failing_alone_is_its_own_fault(seed: int) -> None:
    verdicts = verdicts_of(_wrong_values(seed, second_caller_fails=False))
    assert verdicts["pricing"] == "cleared"


@pytest.mark.parametrize("seed", [1, 2])
def test_a_callers_rise_that_another_troubled_dependency_explains_is_not_the_changes(
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    snapshot = _wrong_values(seed)
    # inventory, which both callers also call, fails on its own from the same minute.
    failing = signal("inventory", ERRORS, step(0.002, 0.3), rng)
    edges = [(e.caller, e.callee) for e in snapshot.topology.edges] if snapshot.topology else []
    edges += [("cart", "inventory"), ("checkout", "inventory")]
    explained = rollout_snapshot(
        [*snapshot.signals, failing], edges, ["pricing", "search"], "neighbours"
    )
    assert verdicts_of(explained)["pricing"] == "cleared"
    assert analyze(explained).candidates[0].service == "inventory"


def _missing_call(seed: int, own_traffic_falls: bool) -> Snapshot:
    """``orders`` v2 stops calling ``audit``: audit loses the requests, orders keeps its own
    (unless the test has orders lose them too: then the loss came from further up)."""
    rng = np.random.default_rng(seed)
    own = step(100.0, 55.0) if own_traffic_falls else flat(100.0)
    signals = rolled("orders", rng, traffic=own)
    signals.append(signal("audit", TRAFFIC, step(80.0, 30.0, AT + 2), rng))
    signals.append(signal("audit", ERRORS, flat(0.002), rng))
    signals.append(signal("frontend", TRAFFIC, own, rng))
    return rollout_snapshot(
        signals, [("frontend", "orders"), ("orders", "audit")], ["orders"], "neighbours"
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_callee_that_lost_its_requests_points_at_the_rollout_that_stopped_sending_them(
    seed: int,
) -> None:
    analysis = analyze(_missing_call(seed, own_traffic_falls=False))
    (verdict,) = analysis.changes
    assert verdict.verdict == "suspect"
    assert "its callee audit lost requests" in verdict.reasons[0]
    assert analysis.candidates[0].service == "orders"
    assert verdicts_of(_missing_call(seed, own_traffic_falls=True)) == {"orders": "cleared"}


def _judged_late_failure(seed: int) -> tuple[list[Signal], Change]:
    """``web``'s new pods fail only from minute 50, after its old pods left at minute 44."""
    return failing_late("web", np.random.default_rng(seed)), change("web")


@pytest.mark.parametrize("seed", [1, 2])
def test_new_pods_are_compared_with_old_ones_only_over_the_minutes_both_served(seed: int) -> None:
    signals, change = _judged_late_failure(seed)
    judged = judge(change, signals, {}, END)
    worse = [c for c in judged.comparisons if c.worse]
    assert judged.verdict == "suspect"
    assert worse and not any(c.same_minutes for c in worse)  # before/after, not canary
    assert all(c.versus == "the service's pods before the change" for c in worse)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_before_after_worsening_a_troubled_dependency_explains_is_cleared(seed: int) -> None:
    signals, change = _judged_late_failure(seed)
    judged = judge(change, signals, {}, END)
    calm = Neighbourhood({"db": ["web"]}, {"web": ["db"]}, {})
    assert reconsider([judged], signals, calm, END)[0].verdict == "suspect"
    db_failing = {("db", SignalKind.ERRORS): T0 + 49 * STEP}
    troubled = Neighbourhood({"db": ["web"]}, {"web": ["db"]}, db_failing)
    (cleared,) = reconsider([judged], signals, troubled, END)
    assert cleared.verdict == "cleared" and "its dependency db" in cleared.reasons[0]
    # Trouble that began only well after web's own rise explains nothing.
    late = Neighbourhood({"db": ["web"]}, {"web": ["db"]}, {("db", SignalKind.ERRORS): END})
    assert reconsider([judged], signals, late, END)[0].verdict == "suspect"


def test_a_missed_scrape_is_not_lost_traffic() -> None:
    a = Signal(service="s", pod="a", name=TRAFFIC, timestamps=[0, 60, 120], values=[5, None, 5])
    b = Signal(service="s", pod="b", name=TRAFFIC, timestamps=[0, 60, 120], values=[5, 5, 5])
    times, values = aggregate([a, b], total=True)
    assert list(times) == [0, 120] and list(values) == [10, 10]
    late = Signal(service="s", pod="c", name=TRAFFIC, timestamps=[120], values=[5])
    assert list(aggregate([a, b, late], total=True)[1]) == [10, 15]


def test_a_draining_pods_last_blip_is_not_evidence() -> None:
    def finding(stamps: list[float], onset: float, run: int) -> SeriesFinding:
        signal = Signal(
            service="s", pod="s-1", name=ERRORS, timestamps=stamps, values=[0.0] * len(stamps)
        )
        return SeriesFinding(
            signal, SignalKind.ERRORS, 9.0, 1, onset, onset, stamps[-1], Stats(), Stats(), run=run
        )

    gone = [T0 + m * STEP for m in range(AT + 1)]
    assert _draining(finding(gone, gone[-1], 1), END)
    assert not _draining(finding(gone, gone[-1], 5), END)  # it failed for minutes: not a drain
    stays = [T0 + m * STEP for m in range(MINUTES)]
    assert not _draining(finding(stays, stays[AT], 1), END)  # the pod is still there


@pytest.mark.parametrize("seed", [1, 2])
def test_a_callers_rise_goes_to_the_changed_callee_whose_callers_all_rose(seed: int) -> None:
    """``cart`` calls both ``pricing`` (defective) and ``search`` (healthy, cart its only
    caller), which changed in the same minute; pricing's other caller ``checkout`` rose too,
    so pricing takes cart's rise."""
    rng = np.random.default_rng(seed)
    signals = rolled("pricing", rng) + rolled("search", rng)
    signals.append(signal("cart", ERRORS, step(0.002, 0.08), rng))
    signals.append(signal("checkout", ERRORS, step(0.002, 0.06), rng))
    edges = [("cart", "pricing"), ("checkout", "pricing"), ("cart", "search")]
    verdicts = verdicts_of(rollout_snapshot(signals, edges, ["pricing", "search"], "neighbours"))
    assert verdicts == {"pricing": "suspect", "search": "cleared"}


@pytest.mark.parametrize("seed", [1, 2])
def test_a_callee_whose_other_caller_lost_its_own_requests_lost_them_from_further_up(
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    snapshot = _missing_call(seed, own_traffic_falls=False)
    # batch, audit's other caller, lost its own requests in the same minute.
    batch = signal("batch", TRAFFIC, step(50.0, 10.0), rng)
    edges = [(e.caller, e.callee) for e in snapshot.topology.edges] if snapshot.topology else []
    moved = rollout_snapshot(
        [*snapshot.signals, batch], [*edges, ("batch", "audit")], ["orders"], "neighbours"
    )
    assert verdicts_of(moved) == {"orders": "cleared"}


def test_before_after_cpu_must_double_to_count() -> None:
    """New pods' CPU 40 % above the pods before the change (the incident's load) is not a
    worse build; three times it is."""
    rng = np.random.default_rng(3)

    def rollout(after: float) -> list[Signal]:
        cpu = "container_cpu_usage_seconds:rate"
        old = signal("web", cpu, flat(0.2), rng, pod="web-6f7d9c-1", last=AT)
        new = signal("web", cpu, flat(after), rng, pod="web-8b4c1e-1", first=AT)
        return [old, new]

    mild = judge(change("web"), rollout(0.28), {}, END)
    assert not any(c.worse for c in mild.comparisons)
    assert any(c.worse for c in judge(change("web"), rollout(0.6), {}, END).comparisons)
