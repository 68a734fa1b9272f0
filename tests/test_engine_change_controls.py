"""The controls an SRE applies before blaming a change, on small synthetic rollouts: did the
old pods get as bad (agent.engine.canary), does a dependency further down explain a caller's
rise (agent.engine.trouble), and did a callee lose more than the day's ebb (.neighbours).

An hour of 1-minute samples; the rollouts land at minute 40.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

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
    Level,
    change,
    failing_late,
    flat,
    rolled,
    rollout_snapshot,
    signal,
    step,
    verdicts_of,
)

from agent.engine.canary import OLD_AS_BAD, judge
from agent.engine.hood import Neighbourhood
from agent.engine.trouble import _dependency_in_trouble, reconsider
from agent.models import Change, Signal, SignalKind


def _fast_rollout(old: Level, new: Level, seed: int, old_pods: int = 2) -> list[Signal]:
    """``web``: old pods gone two minutes after the change (too few shared minutes for a
    rank test, so new pods are compared with the pods before it), two new pods."""
    rng = np.random.default_rng(seed)
    out = [
        signal("web", ERRORS, old, rng, pod=f"web-6f7d9c-{n}", last=AT + 2) for n in range(old_pods)
    ]
    return out + [
        signal("web", ERRORS, new, rng, pod=f"web-8b4c1e-{n}", first=AT) for n in range(2)
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_old_pods_as_bad_as_the_new_ones_clear_the_build(seed: int) -> None:
    """A callee broke as ``web`` rolled out: every web pod fails from minute 40, old or new."""
    broken = judge(change("web"), _fast_rollout(flat(0.002), flat(0.1), seed), {}, END)
    assert broken.verdict == "suspect"  # only the new pods fail: the build
    everyone = _fast_rollout(step(0.002, 0.1, AT), flat(0.1), seed)
    judged = judge(change("web"), everyone, {}, END)
    assert judged.verdict == "cleared"
    (errors,) = judged.comparisons
    assert OLD_AS_BAD in errors.versus and not errors.worse


@pytest.mark.parametrize("seed", [1, 2])
def test_a_rollout_to_fewer_pods_keeps_the_blame_when_all_pods_get_worse(seed: int) -> None:
    """Four pods replaced by two: the same load on fewer pods hurts old and new alike."""
    fewer = _fast_rollout(step(0.002, 0.1, AT), flat(0.1), seed, old_pods=4)
    assert judge(change("web"), fewer, {}, END).verdict == "suspect"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_callee_that_lost_more_than_the_days_ebb_points_at_the_rollout(seed: int) -> None:
    """``orders`` v2 stops calling ``audit``; traffic ebbs 10 % everywhere meanwhile."""
    rng = np.random.default_rng(seed)
    ebb = step(100.0, 90.0)
    signals = rolled("orders", rng, traffic=ebb)
    signals.append(signal("audit", TRAFFIC, step(80.0, 30.0, AT + 2), rng))
    signals.append(signal("audit", ERRORS, flat(0.002), rng))
    signals.append(signal("frontend", TRAFFIC, ebb, rng))
    snapshot = rollout_snapshot(
        signals, [("frontend", "orders"), ("orders", "audit")], ["orders"], "controls"
    )
    assert verdicts_of(snapshot) == {"orders": "suspect"}
    # audit losing no more than orders itself did is the ebb, not a missing call.
    signals[-3] = signal("audit", TRAFFIC, step(80.0, 72.0, AT + 2), rng)
    ebbing = rollout_snapshot(
        signals, [("frontend", "orders"), ("orders", "audit")], ["orders"], "controls"
    )
    assert verdicts_of(ebbing) == {"orders": "cleared"}


@pytest.mark.parametrize("seed", [1, 2])
def test_a_callers_rise_explained_by_a_dependency_two_hops_down_is_not_the_changes(
    seed: int,
) -> None:
    """``cart`` and ``checkout`` call ``pricing`` (rolled out, clean) and ``inventory``,
    whose own callee ``stock`` fails from the same minute: the rise is stock's."""
    rng = np.random.default_rng(seed)
    signals = rolled("pricing", rng, traffic=flat(100.0))
    signals.append(signal("cart", ERRORS, step(0.002, 0.08), rng))
    signals.append(signal("checkout", ERRORS, step(0.002, 0.06), rng))
    signals.append(signal("stock", ERRORS, step(0.002, 0.3), rng))
    edges = [("cart", "pricing"), ("checkout", "pricing")]
    assert verdicts_of(rollout_snapshot(signals, edges, ["pricing"], "controls")) == {
        "pricing": "suspect"
    }
    edges += [("cart", "inventory"), ("checkout", "inventory"), ("inventory", "stock")]
    explained = rollout_snapshot(signals, edges, ["pricing"], "controls")
    assert verdicts_of(explained) == {"pricing": "cleared"}


def _late_failure(seed: int) -> tuple[list[Signal], Change]:
    """``web``'s new pods fail from minute 50, after its old pods left at minute 44."""
    return failing_late("web", np.random.default_rng(seed)), change("web")


@pytest.mark.parametrize("seed", [1, 2])
def test_a_dependency_in_trouble_long_before_the_rise_does_not_explain_it(seed: int) -> None:
    """db in trouble from minute 44, web well until minute 50: web was not hurt by db."""
    signals, change = _late_failure(seed)
    judged = judge(change, signals, {}, END)
    graph = {"callers": {"db": ["web"]}, "callees": {"web": ["db"]}}
    early = Neighbourhood(**graph, troubled={("db", SignalKind.ERRORS): T0 + 44 * STEP})
    assert reconsider([judged], signals, early, END)[0].verdict == "suspect"
    with_it = Neighbourhood(**graph, troubled={("db", SignalKind.ERRORS): T0 + 49 * STEP})
    assert reconsider([judged], signals, with_it, END)[0].verdict == "cleared"
    # A suspect rollout of db's from minute 44 still grows as its new pods take over.
    ramping = replace(early, changed={"db": T0 + 44 * STEP}, suspect=frozenset({"db"}))
    found = _dependency_in_trouble(change, ramping, [SignalKind.ERRORS], T0 + 50 * STEP, True)
    assert found == "db"
    assert (
        _dependency_in_trouble(
            change, replace(ramping, suspect=frozenset()), [SignalKind.ERRORS], T0 + 50 * STEP, True
        )
        is None
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_change_that_landed_after_a_callers_rise_began_does_not_take_it(seed: int) -> None:
    """``frontend`` calls ``report`` (rolled out at minute 40, wrong values) and ``seat``
    (rolled out at minute 44, healthy); frontend fails more from minute 41, more and more as
    report's new pods take over. Measured from seat's change on, the rise seems to begin
    with it; the detector saw it earlier."""
    rng = np.random.default_rng(seed)
    signals = rolled("report", rng, traffic=flat(100.0))
    signals += [
        s.model_copy(update={"service": "seat", "pod": (s.pod or "").replace("report", "seat")})
        for s in rolled("report", rng, traffic=flat(100.0))
    ]

    def ramp(minute: int) -> float:
        return 0.002 + 0.08 * min(max((minute - AT) / 7, 0.0), 1.0)

    signals.append(signal("frontend", ERRORS, ramp, rng))
    snapshot = rollout_snapshot(
        signals, [("frontend", "report"), ("frontend", "seat")], ["report"], "controls"
    )
    late = Change(
        service="seat",
        at=datetime.fromtimestamp(T0 + (AT + 4) * STEP, tz=UTC),
        from_version="v1",
        to_version="v2",
    )
    snapshot = snapshot.model_copy(update={"changes": [*snapshot.changes, late]})
    verdicts = verdicts_of(snapshot)
    assert verdicts["report"] == "suspect" and verdicts["seat"] != "suspect"


@pytest.mark.parametrize("seed", [1, 2])
def test_a_dependency_in_trouble_does_not_explain_a_busier_service(seed: int) -> None:
    """web fails from minute 50 as db does, but its new pods' CPU also went from 0.2 to
    0.6 cores: a failing dependency leaves its callers waiting, not busier."""
    signals, change = _late_failure(seed)
    rng = np.random.default_rng(seed)
    cpu = "container_cpu_usage_seconds:rate"
    for n in (1, 2):
        old = signal("web", cpu, flat(0.2), rng, pod=f"web-6f7d9c-{n}", last=AT + 4)
        new = signal("web", cpu, step(0.2, 0.6, 50), rng, pod=f"web-8b4c1e-{n}", first=AT)
        signals += [old, new]
    judged = judge(change, signals, {}, END)
    graph = {"callers": {"db": ["web"]}, "callees": {"web": ["db"]}}
    with_it = Neighbourhood(**graph, troubled={("db", SignalKind.ERRORS): T0 + 49 * STEP})
    assert reconsider([judged], signals, with_it, END)[0].verdict == "suspect"


def _counter(pod: str, first: int, last: int, level: Level) -> Signal:
    minutes = range(first, last)
    return Signal(
        service="web",
        pod=pod,
        name="kube_pod_container_status_restarts_total",
        timestamps=[T0 + m * STEP for m in minutes],
        values=[level(m) for m in minutes],
    )


def _restart_counters(new_restarts: list[int], seed: int) -> list[Signal]:
    """``web``'s fast rollout, with restart counters: the old pods' at 4 all along
    (restarted long ago), the new pods' climbing to ``new_restarts`` by the end."""
    out = _fast_rollout(flat(0.002), flat(0.002), seed)
    for n, restarts in enumerate(new_restarts):
        out.append(_counter(f"web-6f7d9c-{n}", 0, AT + 2, flat(4.0)))
        climb = step(0.0, float(restarts), AT + 10)
        out.append(_counter(f"web-8b4c1e-{n}", AT, MINUTES, climb))
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_new_pods_that_restart_make_the_change_suspect(seed: int) -> None:
    judged = judge(change("web"), _restart_counters([3, 2], seed), {}, END)
    assert judged.verdict == "suspect" and "restarts" in judged.reasons[0]
    healthy = judge(change("web"), _restart_counters([0, 0], seed), {}, END)
    assert healthy.verdict == "cleared"
    once = judge(change("web"), _restart_counters([1, 0], seed), {}, END)
    assert once.verdict == "cleared"  # one restart is a rescheduled pod, not a pattern


def test_a_steady_series_a_little_higher_after_the_change_is_not_worse() -> None:
    """New pods' memory 5 % above the pods' before the change: a new build's footprint."""
    rng = np.random.default_rng(5)
    memory = "container_memory_working_set_bytes"
    steady = [
        signal("web", memory, flat(1.50e9), rng, pod="web-6f7d9c-1", last=AT),
        signal("web", memory, flat(1.58e9), rng, pod="web-8b4c1e-1", first=AT),
    ]
    for s in steady:  # as steady as memory is: 0.1 % noise
        s.values[:] = [1.50e9 if "6f7d9c" in (s.pod or "") else 1.58e9] * len(s.values)
        s.values[::2] = [v * 1.001 for v in s.values[::2]]
    assert not any(c.worse for c in judge(change("web"), steady, {}, END).comparisons)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_rise_is_dated_by_its_largest_step(seed: int) -> None:
    """web's new pods answer a little slower from minute 45 (a slightly heavier build) and
    fail from minute 50, as db does: the failures date the rise, and db explains them."""
    signals, change = _late_failure(seed)
    rng = np.random.default_rng(seed)
    p99 = "http_request_duration_seconds:p99"
    for n in (1, 2):
        signals.append(signal("web", p99, flat(0.1), rng, pod=f"web-6f7d9c-{n}", last=AT + 4))
        slower = step(0.1, 0.15, AT + 5)
        signals.append(signal("web", p99, slower, rng, pod=f"web-8b4c1e-{n}", first=AT))
    judged = judge(change, signals, {}, END)
    assert {c.kind for c in judged.comparisons if c.worse} == {
        SignalKind.ERRORS,
        SignalKind.LATENCY,
    }
    graph = {"callers": {"db": ["web"]}, "callees": {"web": ["db"]}}
    with_it = Neighbourhood(**graph, troubled={("db", SignalKind.ERRORS): T0 + 49 * STEP})
    assert reconsider([judged], signals, with_it, END)[0].verdict == "cleared"


def _rolled_at(service: str, rng: np.random.Generator, minute: int) -> tuple[list[Signal], Change]:
    """Two old pods until ``minute`` + 4, two new ones from ``minute``; clean and steady."""
    out = []
    for n in (1, 2):
        old, new = f"{service}-6f7d9c-{n}", f"{service}-8b4c1e-{n}"
        for pod, first, last in ((old, 0, minute + 4), (new, minute, MINUTES)):
            out.append(signal(service, ERRORS, flat(0.002), rng, pod=pod, first=first, last=last))
            out.append(signal(service, TRAFFIC, flat(50.0), rng, pod=pod, first=first, last=last))
    at = datetime.fromtimestamp(T0 + minute * STEP, tz=UTC)
    return out, Change(service=service, at=at, from_version="v1", to_version="v2")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_caller_that_changed_last_before_a_callee_lost_requests_takes_the_loss(
    seed: int,
) -> None:
    """``batch`` rolled out at minute 34 and ``orders`` at 40, both call ``audit``, which
    loses requests from minute 41: batch's rollout came and went with audit's requests."""
    rng = np.random.default_rng(seed)
    batch, early = _rolled_at("batch", rng, AT - 6)
    orders, late = _rolled_at("orders", rng, AT)
    audit = [
        signal("audit", TRAFFIC, step(80.0, 30.0, AT + 1), rng),
        signal("audit", ERRORS, flat(0.002), rng),
    ]
    snapshot = rollout_snapshot(
        batch + orders + audit, [("batch", "audit"), ("orders", "audit")], [], "controls"
    )
    snapshot = snapshot.model_copy(update={"changes": [early, late]})
    assert verdicts_of(snapshot) == {"batch": "cleared", "orders": "suspect"}


@pytest.mark.parametrize("seed", [1, 2])
def test_throttling_counts_before_after_only_when_the_pods_work_harder(seed: int) -> None:
    """New pods throttled 4x as often as the pods before the change: with their CPU 5 %
    up, a build running a little nearer its limit; with it 60 % up, fewer pods for the load."""
    rng = np.random.default_rng(seed)

    def rollout(cpu_after: float) -> list[Signal]:
        out = []
        for name, before, after in (
            ("container_cpu_cfs_throttled:ratio", 0.02, 0.08),
            ("container_cpu_usage_seconds:rate", 0.3, cpu_after),
        ):
            for n in (1, 2):
                out.append(signal("web", name, flat(before), rng, pod=f"web-6f7d9c-{n}", last=AT))
                out.append(signal("web", name, flat(after), rng, pod=f"web-8b4c1e-{n}", first=AT))
        return out

    nearer = judge(change("web"), rollout(0.315), {}, END)
    assert not any(c.worse for c in nearer.comparisons)
    busier = judge(change("web"), rollout(0.48), {}, END)
    assert {c.kind for c in busier.comparisons if c.worse} == {SignalKind.SATURATION}
