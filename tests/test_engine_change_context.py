"""What else a change's evidence may be: on small synthetic rollouts, a caller's errors that
came with its wait on another slow dependency, a crashing dependency, trouble on every pod of
the changed service, old or new, a dependency's trouble too small to be a build's failures
(agent.engine.trouble), new pods a little slower than all pods before them, old
pods as bad as the new ones side by side (agent.engine.old_pods), and a rollout the better
part of an hour before the alert (agent.engine.canary); and, in the ranking, what a suspect
rollout explains (agent.engine.service_score) and when its trouble began
(agent.engine.rank). Whose trouble a caller's rise is, is tests/test_engine_change_culprits.py;
which of several rollouts takes a neighbour's trouble, tests/test_engine_change_owners.py.

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
    LATENCY,
    STEP,
    T0,
    change,
    failing_late,
    flat,
    rolled,
    rollout_snapshot,
    signal,
    step,
    verdicts_of,
)

from agent.engine.canary import OLD_AS_BAD, RESTARTS, Comparison, Judgement, judge
from agent.engine.hood import Neighbourhood, neighbourhood
from agent.engine.neighbours import caller_rises, index_of
from agent.engine.rank import _began
from agent.engine.service_score import ServiceScore, strength_by
from agent.engine.trouble import reconsider
from agent.models import Signal, SignalKind, Stats
from agent.snapshot import WindowSpec


def _waiting_caller(seed: int, caller_waits: bool, other_slow: bool) -> dict[str, str]:
    """``web`` calls ``pricing`` (rolled out at minute 40, clean) and ``search``; web's
    errors rise from minute 41, its latency too where ``caller_waits``, and search's latency
    where ``other_slow``."""
    rng = np.random.default_rng(seed)
    signals = rolled("pricing", rng, traffic=flat(100.0))
    signals.append(signal("web", ERRORS, step(0.002, 0.03), rng))
    signals.append(signal("web", LATENCY, step(0.1, 0.6) if caller_waits else flat(0.1), rng))
    signals.append(signal("search", LATENCY, step(0.05, 0.5) if other_slow else flat(0.05), rng))
    signals.append(signal("search", ERRORS, flat(0.002), rng))
    edges = [("web", "pricing"), ("web", "search")]
    return verdicts_of(rollout_snapshot(signals, edges, ["pricing"], "timeouts"))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_callers_errors_that_came_with_its_wait_on_a_slow_dependency_are_that_ones(
    seed: int,
) -> None:
    """web waits on slow search and times out: its errors rise with its latency, and
    search's latency explains both; pricing's rollout is cleared."""
    assert _waiting_caller(seed, caller_waits=True, other_slow=False) == {"pricing": "suspect"}
    assert _waiting_caller(seed, caller_waits=True, other_slow=True) == {"pricing": "cleared"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_slow_dependency_does_not_explain_a_caller_that_fails_without_waiting(
    seed: int,
) -> None:
    """web's errors rise but its latency holds: it fails on what it got back (pricing's
    wrong values), not for waiting on search, whatever search's latency does."""
    assert _waiting_caller(seed, caller_waits=False, other_slow=True) == {"pricing": "suspect"}


def _leak(seed: int, alert_after: int) -> list[str]:
    """``cache``'s new pods (from minute 40) fail a little more, the split ``alert_after``
    minutes after the rollout: the services whose changes got a verdict."""
    rng = np.random.default_rng(seed)
    minutes = AT + alert_after + 20
    signals = [
        signal("cache", ERRORS, flat(0.002), rng, pod=f"cache-6f7d9c-{n}", last=AT + 4)
        for n in (1, 2)
    ]
    signals += [
        signal("cache", ERRORS, flat(0.05), rng, pod=f"cache-8b4c1e-{n}", first=AT, last=minutes)
        for n in (1, 2)
    ]
    snapshot = rollout_snapshot(signals, [], ["cache"], "slow burn")
    window = WindowSpec(
        start=datetime.fromtimestamp(T0, tz=UTC),
        incident_start=datetime.fromtimestamp(T0 + (AT + alert_after) * STEP, tz=UTC),
        end=datetime.fromtimestamp(T0 + (minutes - 1) * STEP, tz=UTC),
    )
    meta = snapshot.meta.model_copy(update={"window": window})
    return sorted(verdicts_of(snapshot.model_copy(update={"meta": meta})))


@pytest.mark.parametrize("seed", [1, 2])
def test_a_rollout_45_minutes_before_the_alert_is_judged(seed: int) -> None:
    """A slow burn pages long after its rollout; a rollout two hours back is history."""
    assert _leak(seed, alert_after=45) == ["cache"]
    assert _leak(seed, alert_after=70) == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_new_pods_a_little_slower_than_all_pods_before_them_are_not_worse(seed: int) -> None:
    """``web``'s old pods leave two minutes after the change, so its two new pods are
    compared with every pod before it: 1.3 times the latency is what the day's drift or
    another service's trouble gives any pod; twice is the build."""

    def fast(after: float) -> list[Signal]:
        rng = np.random.default_rng(seed)
        old = [
            signal("web", LATENCY, flat(0.1), rng, pod=f"web-6f7d9c-{n}", last=AT + 2)
            for n in (1, 2)
        ]
        new = [
            signal("web", LATENCY, flat(after), rng, pod=f"web-8b4c1e-{n}", first=AT)
            for n in (1, 2)
        ]
        return old + new

    assert judge(change("web"), fast(0.13), {}, END).verdict == "cleared"
    assert judge(change("web"), fast(0.2), {}, END).verdict == "suspect"


def _restarting(worse: bool) -> Judgement:
    """``cache``'s rollout, suspect on its new pods' restarts (or on nothing)."""
    stats = Stats(median=1.0, count=3)
    restarts = Comparison(
        signal(
            "cache", "kube_pod_container_status_restarts_total", flat(1.0), np.random.default_rng(0)
        ),
        SignalKind.CHANGE,
        stats,
        stats,
        "old pods' restarts",
        1e-4,
        worse,
        label=RESTARTS,
    )
    verdict = "suspect" if worse else "cleared"
    return Judgement(change("cache"), verdict, [restarts])


def test_a_rollout_whose_new_pods_restart_is_in_trouble_on_errors_and_latency() -> None:
    """Killed or crashing pods fail and delay the requests they held: their callers' errors
    and latency are passed up from it, from the change."""
    at = change("cache").at.timestamp()
    crashing = neighbourhood(None, [], [], [_restarting(True)]).troubled
    assert crashing == {("cache", SignalKind.ERRORS): at, ("cache", SignalKind.LATENCY): at}
    assert neighbourhood(None, [], [], [_restarting(False)]).troubled == {}


def _every_pod_fails(seed: int) -> list[Signal]:
    """``web``: two old pods until minute 48, two new ones from minute 40; from minute 46
    every pod fails, old or new (its own dependency broke); ``api`` calls it and fails too."""
    rng = np.random.default_rng(seed)
    broken = step(0.002, 0.4, 46)
    out = [signal("web", ERRORS, broken, rng, pod=f"web-6f7d9c-{n}", last=48) for n in (1, 2)]
    out += [signal("web", ERRORS, broken, rng, pod=f"web-8b4c1e-{n}", first=AT) for n in (1, 2)]
    return [*out, signal("api", ERRORS, step(0.002, 0.3, 46), rng)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_trouble_on_every_pod_old_or_new_is_not_the_builds(seed: int) -> None:
    """The new pods fail more later than the pods before the change did, but so did the old
    ones while they still served; nor are the caller's failures towards it the build's."""
    signals = _every_pod_fails(seed)
    judged = judge(change("web"), [s for s in signals if s.service == "web"], {}, END)
    assert judged.verdict == "cleared"
    assert any(OLD_AS_BAD in c.versus for c in judged.comparisons)
    snapshot = rollout_snapshot(signals, [("api", "web")], ["web"], "every pod")
    assert verdicts_of(snapshot) == {"web": "cleared"}


def _judged_with_slow_db(signals: list[Signal]) -> Judgement:
    """``web``'s rollout judged where ``db``, its only dependency, got slower at the change."""
    hood = Neighbourhood(
        callers={"db": ["web"]},
        callees={"web": ["db"]},
        troubled={("db", SignalKind.LATENCY): T0 + AT * STEP},
    )
    return reconsider([judge(change("web"), signals, {}, END)], signals, hood, END)[0]


def _timing_out(seed: int, waits: bool) -> Judgement:
    """``web``'s fast rollout: its new pods fail more; where ``waits``, every pod, old or
    new, answers slower from the change (it waits on ``db``)."""
    rng = np.random.default_rng(seed)
    slow = step(0.1, 0.5, AT) if waits else flat(0.1)
    signals = []
    for n in (1, 2):
        old, new = f"web-6f7d9c-{n}", f"web-8b4c1e-{n}"
        signals.append(signal("web", ERRORS, flat(0.002), rng, pod=old, last=AT + 2))
        signals.append(signal("web", LATENCY, slow, rng, pod=old, last=AT + 2))
        signals.append(signal("web", ERRORS, flat(0.05), rng, pod=new, first=AT))
        signals.append(signal("web", LATENCY, flat(0.5) if waits else slow, rng, pod=new, first=AT))
    return _judged_with_slow_db(signals)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_errors_of_a_service_slow_on_every_pod_are_its_slow_dependencys(seed: int) -> None:
    """web's latency rose on every pod as db's did: it waits on db, and its new pods'
    errors (timeouts) are db's trouble passed up. With its latency steady, db's latency
    does not explain web's errors."""
    assert _timing_out(seed, waits=True).verdict == "cleared"
    assert _timing_out(seed, waits=False).verdict == "suspect"


def test_a_suspect_change_explains_what_began_after_it_with_all_its_strength() -> None:
    """A caller's trouble that began after its callee's suspect rollout is explained by the
    rollout with all the strength the rollout's evidence carries (its callers' failures
    included), not only by what its own series showed by then."""
    rolled_out = ServiceScore("cart", change_bonus=(T0 + AT * STEP, 2.0))
    assert strength_by(rolled_out, None, 3.0) == 2.0
    assert strength_by(rolled_out, T0 + (AT + 5) * STEP, 3.0) == 2.0
    assert strength_by(rolled_out, T0 + (AT - 5) * STEP, 3.0) == 0.0  # trouble before it


@pytest.mark.parametrize("seed", [1, 2])
def test_a_rollout_its_callers_show_late_is_dated_by_their_rise(seed: int) -> None:
    """``pricing`` rolled out at minute 40 and answers wrong only from minute 50 (a code path
    that traffic reaches late): the rollout's trouble began when ``web``'s errors rose, not
    when it rolled out (an anomaly half an hour before the alert looks unrelated)."""
    rng = np.random.default_rng(seed)
    signals = [*rolled("pricing", rng), signal("web", ERRORS, step(0.002, 0.1, 50), rng)]
    (rise,), _ = caller_rises(change("pricing"), index_of(signals), ["web"], END)
    assert rise.comparison.onset == T0 + 50 * STEP
    at = change("pricing").at.timestamp()
    assert _began([rise.comparison], at) == T0 + 50 * STEP
    own = judge(change("pricing"), _fast_pricing(seed), {}, END).comparisons
    assert _began([c for c in own if c.worse] + [rise.comparison], at) == at


def _fast_pricing(seed: int) -> list[Signal]:
    """``pricing``'s new pods fail from the start, its old pods gone two minutes later."""
    rng = np.random.default_rng(seed)
    old = [
        signal("pricing", ERRORS, flat(0.002), rng, pod=f"pricing-6f7d9c-{n}", last=AT + 2)
        for n in (1, 2)
    ]
    return old + [
        signal("pricing", ERRORS, flat(0.1), rng, pod=f"pricing-8b4c1e-{n}", first=AT)
        for n in (1, 2)
    ]


def _slower_rollout(seed: int, old_pods: int) -> Judgement:
    """``web``: ``old_pods`` old pods until two minutes after the change, two new ones,
    slower; ``db``, its dependency, got slower at the change too."""
    rng = np.random.default_rng(seed)
    signals = [
        signal("web", LATENCY, flat(0.1), rng, pod=f"web-6f7d9c-{n}", last=AT + 2)
        for n in range(old_pods)
    ]
    signals += [
        signal("web", LATENCY, flat(0.3), rng, pod=f"web-8b4c1e-{n}", first=AT) for n in (1, 2)
    ]
    return _judged_with_slow_db(signals)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_rollout_to_fewer_pods_keeps_its_slowness_whatever_its_dependencies_do(
    seed: int,
) -> None:
    """Two pods for two: web's slowness is db's, passed up. Two pods for three: the same
    load on fewer pods is its own."""
    assert _slower_rollout(seed, old_pods=2).verdict == "cleared"
    assert _slower_rollout(seed, old_pods=3).verdict == "suspect"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_dependency_whose_trouble_is_too_small_does_not_explain_a_failing_build(
    seed: int,
) -> None:
    """web's new pods fail from minute 50 (0.2% to 10%) as db, its callee, goes wrong: db's
    own errors going to 10% explain web's; db's going to 0.4% cannot (web would have to
    fail 25 times as much as it is failed), unless db's trouble is of a kind not to be set
    against its requests (its pods gone, its CPU pinned: the calls fail at web)."""
    signals = failing_late("web", np.random.default_rng(seed))
    judged = judge(change("web"), signals, {}, END)
    graph = {"callers": {"db": ["web"]}, "callees": {"web": ["db"]}}
    hood = Neighbourhood(**graph, troubled={("db", SignalKind.ERRORS): T0 + 49 * STEP})

    def verdict(db_after: float, hood: Neighbourhood = hood) -> str:
        db = signal("db", ERRORS, step(0.002, db_after, 49), np.random.default_rng(seed))
        return reconsider([judged], [*signals, db], hood, END)[0].verdict

    assert verdict(0.1) == "cleared"
    assert verdict(0.004) == "suspect"
    unsized = replace(hood, unsized={"db": T0 + 49 * STEP})
    assert verdict(0.004, unsized) == "cleared"


def _blip_then_failing(m: int) -> float:
    """A new pod's errors: 0.2%, but 1% at minutes 45 and 46 (a blip), 10% from minute 50 to
    57."""
    return 0.01 if m in (45, 46) else 0.1 if 50 <= m < 58 else 0.002


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_rise_that_held_under_half_the_minutes_since_the_change_is_dated_by_its_step(
    seed: int,
) -> None:
    """web (rolled out at minute 40) fails 10% from minute 50 to 57, as db, its callee, does:
    db explains it (cleared). Eight of the nineteen minutes since the change leave the
    median after near the level before, and a third of the way to it, web's rise was dated
    by its new pods' blip at minute 45, five minutes before db's trouble (suspect)."""
    rng = np.random.default_rng(seed)
    signals = []
    for n in (1, 2):
        signals.append(signal("web", ERRORS, flat(0.002), rng, pod=f"web-6f7d9c-{n}", last=AT + 4))
        late = _blip_then_failing
        signals.append(signal("web", ERRORS, late, rng, pod=f"web-8b4c1e-{n}", first=AT))
    judged = judge(change("web"), signals, {}, END)
    db = signal("db", ERRORS, lambda m: 0.1 if 50 <= m < 58 else 0.002, rng)
    hood = Neighbourhood(
        callers={"db": ["web"]},
        callees={"web": ["db"]},
        troubled={("db", SignalKind.ERRORS): T0 + 50 * STEP},
    )
    assert reconsider([judged], [*signals, db], hood, END)[0].verdict == "cleared"


def _growing(seed: int, old_as_bad: bool) -> Judgement:
    """``web`` rolled out at minute 40, its two old pods gone at minute 42: its new pods'
    errors climb from 10% to 40% by minute 44 (a callee's wrong answers reaching more of its
    requests as that callee rolls out); its old pods fail 10% in the two minutes they
    share with the new ones where ``old_as_bad``, else stay at 0.2%."""
    rng = np.random.default_rng(seed)

    def climbing(m: int) -> float:
        return 0.002 if m < AT else min(0.4, 0.1 * (m - AT - 1)) if m > AT + 1 else 0.1

    old_level = step(0.002, 0.1, AT) if old_as_bad else flat(0.002)
    signals = []
    for n in (1, 2):
        signals.append(signal("web", ERRORS, old_level, rng, pod=f"web-6f7d9c-{n}", last=AT + 2))
        signals.append(signal("web", ERRORS, climbing, rng, pod=f"web-8b4c1e-{n}", first=AT))
    return judge(change("web"), signals, {}, END)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_old_pods_as_bad_as_the_new_ones_side_by_side_clear_a_build(seed: int) -> None:
    """The old pods never reach the new pods' later 40% (they are gone by then), but in the
    minutes both served they failed as much: the trouble reached every pod, the build is
    cleared; old pods that stayed well beside failing new ones leave it suspect."""
    assert _growing(seed, old_as_bad=True).verdict == "cleared"
    assert _growing(seed, old_as_bad=False).verdict == "suspect"
