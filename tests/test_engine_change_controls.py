"""The controls an SRE applies before blaming a change, on small synthetic rollouts: did the
old pods get as bad (agent.engine.canary), does a dependency further down explain a caller's
rise (agent.engine.trouble), and did a callee lose more than the day's ebb (.neighbours).

An hour of 1-minute samples; the rollouts land at minute 40.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from agent.engine.canary import OLD_AS_BAD, judge
from agent.engine.pipeline import analyze
from agent.engine.trouble import Neighbourhood, _dependency_in_trouble, reconsider
from agent.models import Change, Edge, Signal, SignalKind, Topology
from agent.snapshot import Snapshot, SnapshotMeta, WindowSpec

T0 = 1_700_000_000.0
STEP = 60.0
MINUTES = 60
AT = 40
END = T0 + (MINUTES - 1) * STEP
ERRORS, TRAFFIC = "http_requests_5xx:ratio", "http_requests:rate"
Level = Callable[[int], float]


def _flat(value: float) -> Level:
    return lambda _m: value


def _step(before: float, after: float, at: int = AT + 1) -> Level:
    return lambda m: after if m >= at else before


def _signal(
    service: str,
    name: str,
    level: Level,
    rng: np.random.Generator,
    pod: str | None = None,
    first: int = 0,
    last: int = MINUTES,
) -> Signal:
    minutes = range(first, last)
    values = [abs(float(rng.normal(level(m), 0.08 * level(m) + 1e-4))) for m in minutes]
    ts = [T0 + m * STEP for m in minutes]
    return Signal(service=service, name=name, pod=pod, timestamps=ts, values=values)


def _change(service: str) -> Change:
    return Change(
        service=service,
        at=datetime.fromtimestamp(T0 + AT * STEP, tz=UTC),
        from_version="v1",
        to_version="v2",
    )


def _fast_rollout(old: Level, new: Level, seed: int, old_pods: int = 2) -> list[Signal]:
    """``web``: old pods gone two minutes after the change (too few shared minutes for a
    rank test, so new pods are compared with the pods before it), two new pods."""
    rng = np.random.default_rng(seed)
    out = [
        _signal("web", ERRORS, old, rng, pod=f"web-6f7d9c-{n}", last=AT + 2)
        for n in range(old_pods)
    ]
    return out + [
        _signal("web", ERRORS, new, rng, pod=f"web-8b4c1e-{n}", first=AT) for n in range(2)
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_old_pods_as_bad_as_the_new_ones_clear_the_build(seed: int) -> None:
    """A callee broke as ``web`` rolled out: every web pod fails from minute 40, old or new."""
    broken = judge(_change("web"), _fast_rollout(_flat(0.002), _flat(0.1), seed), {}, END)
    assert broken.verdict == "suspect"  # only the new pods fail: the build
    everyone = _fast_rollout(_step(0.002, 0.1, AT), _flat(0.1), seed)
    judged = judge(_change("web"), everyone, {}, END)
    assert judged.verdict == "cleared"
    (errors,) = judged.comparisons
    assert OLD_AS_BAD in errors.versus and not errors.worse


@pytest.mark.parametrize("seed", [1, 2])
def test_a_rollout_to_fewer_pods_keeps_the_blame_when_all_pods_get_worse(seed: int) -> None:
    """Four pods replaced by two: the same load on fewer pods hurts old and new alike."""
    fewer = _fast_rollout(_step(0.002, 0.1, AT), _flat(0.1), seed, old_pods=4)
    assert judge(_change("web"), fewer, {}, END).verdict == "suspect"


def _rolled(service: str, rng: np.random.Generator, traffic: Level) -> list[Signal]:
    """Two old pods until minute 44, two new ones from minute 40; clean errors."""
    out = []
    for n in (1, 2):
        old, new = f"{service}-6f7d9c-{n}", f"{service}-8b4c1e-{n}"
        for pod, first, last in ((old, 0, AT + 4), (new, AT, MINUTES)):
            out.append(_signal(service, ERRORS, _flat(0.002), rng, pod=pod, first=first, last=last))
        out.append(_signal(service, TRAFFIC, lambda m: traffic(m) / 2, rng, pod=old, last=AT + 2))
        out.append(_signal(service, TRAFFIC, lambda m: traffic(m) / 2, rng, pod=new, first=AT + 2))
    return out


def _snapshot(signals: list[Signal], edges: list[tuple[str, str]], changed: list[str]) -> Snapshot:
    names = sorted({s.service for s in signals} | {x for e in edges for x in e})
    return Snapshot(
        meta=SnapshotMeta(
            id="controls",
            window=WindowSpec(
                start=datetime.fromtimestamp(T0, tz=UTC),
                incident_start=datetime.fromtimestamp(T0 + (AT - 2) * STEP, tz=UTC),
                end=datetime.fromtimestamp(END, tz=UTC),
            ),
        ),
        signals=signals,
        topology=Topology(services=names, edges=[Edge(caller=a, callee=b) for a, b in edges]),
        changes=[_change(s) for s in changed],
    )


def _verdicts(snapshot: Snapshot) -> dict[str, str]:
    return {v.change.service: v.verdict for v in analyze(snapshot).changes}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_callee_that_lost_more_than_the_days_ebb_points_at_the_rollout(seed: int) -> None:
    """``orders`` v2 stops calling ``audit``; traffic ebbs 10 % everywhere meanwhile."""
    rng = np.random.default_rng(seed)
    ebb = _step(100.0, 90.0)
    signals = _rolled("orders", rng, traffic=ebb)
    signals.append(_signal("audit", TRAFFIC, _step(80.0, 30.0, AT + 2), rng))
    signals.append(_signal("audit", ERRORS, _flat(0.002), rng))
    signals.append(_signal("frontend", TRAFFIC, ebb, rng))
    snapshot = _snapshot(signals, [("frontend", "orders"), ("orders", "audit")], ["orders"])
    assert _verdicts(snapshot) == {"orders": "suspect"}
    # audit losing no more than orders itself did is the ebb, not a missing call.
    signals[-3] = _signal("audit", TRAFFIC, _step(80.0, 72.0, AT + 2), rng)
    ebbing = _snapshot(signals, [("frontend", "orders"), ("orders", "audit")], ["orders"])
    assert _verdicts(ebbing) == {"orders": "cleared"}


@pytest.mark.parametrize("seed", [1, 2])
def test_a_callers_rise_explained_by_a_dependency_two_hops_down_is_not_the_changes(
    seed: int,
) -> None:
    """``cart`` and ``checkout`` call ``pricing`` (rolled out, clean) and ``inventory``,
    whose own callee ``stock`` fails from the same minute: the rise is stock's."""
    rng = np.random.default_rng(seed)
    signals = _rolled("pricing", rng, traffic=_flat(100.0))
    signals.append(_signal("cart", ERRORS, _step(0.002, 0.08), rng))
    signals.append(_signal("checkout", ERRORS, _step(0.002, 0.06), rng))
    signals.append(_signal("stock", ERRORS, _step(0.002, 0.3), rng))
    edges = [("cart", "pricing"), ("checkout", "pricing")]
    assert _verdicts(_snapshot(signals, edges, ["pricing"])) == {"pricing": "suspect"}
    edges += [("cart", "inventory"), ("checkout", "inventory"), ("inventory", "stock")]
    explained = _snapshot(signals, edges, ["pricing"])
    assert _verdicts(explained) == {"pricing": "cleared"}


def _late_failure(seed: int) -> tuple[list[Signal], Change]:
    """``web``'s new pods fail from minute 50, after its old pods left at minute 44."""
    rng = np.random.default_rng(seed)
    signals = []
    for n in (1, 2):
        signals.append(
            _signal("web", ERRORS, _flat(0.002), rng, pod=f"web-6f7d9c-{n}", last=AT + 4)
        )
        late = _signal("web", ERRORS, _step(0.002, 0.1, 50), rng, pod=f"web-8b4c1e-{n}", first=AT)
        signals.append(late)
    return signals, _change("web")


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
    signals = _rolled("report", rng, traffic=_flat(100.0))
    signals += [
        s.model_copy(update={"service": "seat", "pod": (s.pod or "").replace("report", "seat")})
        for s in _rolled("report", rng, traffic=_flat(100.0))
    ]

    def ramp(minute: int) -> float:
        return 0.002 + 0.08 * min(max((minute - AT) / 7, 0.0), 1.0)

    signals.append(_signal("frontend", ERRORS, ramp, rng))
    snapshot = _snapshot(signals, [("frontend", "report"), ("frontend", "seat")], ["report"])
    late = Change(
        service="seat",
        at=datetime.fromtimestamp(T0 + (AT + 4) * STEP, tz=UTC),
        from_version="v1",
        to_version="v2",
    )
    snapshot = snapshot.model_copy(update={"changes": [*snapshot.changes, late]})
    verdicts = _verdicts(snapshot)
    assert verdicts["report"] == "suspect" and verdicts["seat"] != "suspect"


@pytest.mark.parametrize("seed", [1, 2])
def test_a_dependency_in_trouble_does_not_explain_a_busier_service(seed: int) -> None:
    """web fails from minute 50 as db does, but its new pods' CPU also went from 0.2 to
    0.6 cores: a failing dependency leaves its callers waiting, not busier."""
    signals, change = _late_failure(seed)
    rng = np.random.default_rng(seed)
    cpu = "container_cpu_usage_seconds:rate"
    for n in (1, 2):
        old = _signal("web", cpu, _flat(0.2), rng, pod=f"web-6f7d9c-{n}", last=AT + 4)
        new = _signal("web", cpu, _step(0.2, 0.6, 50), rng, pod=f"web-8b4c1e-{n}", first=AT)
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
    out = _fast_rollout(_flat(0.002), _flat(0.002), seed)
    for n, restarts in enumerate(new_restarts):
        out.append(_counter(f"web-6f7d9c-{n}", 0, AT + 2, _flat(4.0)))
        climb = _step(0.0, float(restarts), AT + 10)
        out.append(_counter(f"web-8b4c1e-{n}", AT, MINUTES, climb))
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_new_pods_that_restart_make_the_change_suspect(seed: int) -> None:
    judged = judge(_change("web"), _restart_counters([3, 2], seed), {}, END)
    assert judged.verdict == "suspect" and "restarts" in judged.reasons[0]
    healthy = judge(_change("web"), _restart_counters([0, 0], seed), {}, END)
    assert healthy.verdict == "cleared"
    once = judge(_change("web"), _restart_counters([1, 0], seed), {}, END)
    assert once.verdict == "cleared"  # one restart is a rescheduled pod, not a pattern


def test_a_steady_series_a_little_higher_after_the_change_is_not_worse() -> None:
    """New pods' memory 5 % above the pods' before the change: a new build's footprint."""
    rng = np.random.default_rng(5)
    memory = "container_memory_working_set_bytes"
    steady = [
        _signal("web", memory, _flat(1.50e9), rng, pod="web-6f7d9c-1", last=AT),
        _signal("web", memory, _flat(1.58e9), rng, pod="web-8b4c1e-1", first=AT),
    ]
    for s in steady:  # as steady as memory is: 0.1 % noise
        s.values[:] = [1.50e9 if "6f7d9c" in (s.pod or "") else 1.58e9] * len(s.values)
        s.values[::2] = [v * 1.001 for v in s.values[::2]]
    assert not any(c.worse for c in judge(_change("web"), steady, {}, END).comparisons)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_rise_is_dated_by_its_largest_step(seed: int) -> None:
    """web's new pods answer a little slower from minute 45 (a slightly heavier build) and
    fail from minute 50, as db does: the failures date the rise, and db explains them."""
    signals, change = _late_failure(seed)
    rng = np.random.default_rng(seed)
    p99 = "http_request_duration_seconds:p99"
    for n in (1, 2):
        signals.append(_signal("web", p99, _flat(0.1), rng, pod=f"web-6f7d9c-{n}", last=AT + 4))
        slower = _step(0.1, 0.15, AT + 5)
        signals.append(_signal("web", p99, slower, rng, pod=f"web-8b4c1e-{n}", first=AT))
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
            out.append(_signal(service, ERRORS, _flat(0.002), rng, pod=pod, first=first, last=last))
            out.append(_signal(service, TRAFFIC, _flat(50.0), rng, pod=pod, first=first, last=last))
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
        _signal("audit", TRAFFIC, _step(80.0, 30.0, AT + 1), rng),
        _signal("audit", ERRORS, _flat(0.002), rng),
    ]
    snapshot = _snapshot(batch + orders + audit, [("batch", "audit"), ("orders", "audit")], [])
    snapshot = snapshot.model_copy(update={"changes": [early, late]})
    assert _verdicts(snapshot) == {"batch": "cleared", "orders": "suspect"}


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
                out.append(_signal("web", name, _flat(before), rng, pod=f"web-6f7d9c-{n}", last=AT))
                out.append(_signal("web", name, _flat(after), rng, pod=f"web-8b4c1e-{n}", first=AT))
        return out

    nearer = judge(_change("web"), rollout(0.315), {}, END)
    assert not any(c.worse for c in nearer.comparisons)
    busier = judge(_change("web"), rollout(0.48), {}, END)
    assert {c.kind for c in busier.comparisons if c.worse} == {SignalKind.SATURATION}
