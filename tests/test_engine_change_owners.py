"""Which of several rollouts takes a neighbour's trouble, on small synthetic rollouts
(agent.engine.owners): a caller's rise goes to the rollout whose new pods served by the time
it began, and to the one whose progress it followed; so does a callee's loss of requests.

An hour of 1-minute samples; the rollouts land at minute 40.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from rollout_support import (
    AT,
    ERRORS,
    TRAFFIC,
    change,
    flat,
    rolled,
    rollout_snapshot,
    signal,
    step,
    verdicts_of,
)

from agent.models import Signal


def _late_ready(service: str, rng: np.random.Generator, ready: int) -> list[Signal]:
    """``service`` rolled out at minute 40 whose two new pods take requests only from minute
    ``ready`` (pulled, started, probed), its two old pods serving until two minutes after."""
    out = []
    for n in (1, 2):
        old, new = f"{service}-6f7d9c-{n}", f"{service}-8b4c1e-{n}"
        out.append(signal(service, ERRORS, flat(0.002), rng, pod=old, last=ready + 2))
        out.append(signal(service, ERRORS, flat(0.002), rng, pod=new, first=ready))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_rollout_whose_new_pods_served_after_a_callers_rise_began_does_not_take_it(
    seed: int,
) -> None:
    """web calls ``pricing`` and ``search``, both rolled out at minute 40; web's errors rise
    from minute 41, when only pricing's new pods served (search's took requests from minute
    46): the rise is pricing's, and search's rollout, whose pods came too late, is cleared."""
    rng = np.random.default_rng(seed)
    signals = [*rolled("pricing", rng), *_late_ready("search", rng, AT + 6)]
    signals.append(signal("web", ERRORS, step(0.002, 0.05), rng))
    edges = [("web", "pricing"), ("web", "search")]
    snapshot = rollout_snapshot(signals, edges, ["pricing", "search"], "late-ready")
    assert verdicts_of(snapshot) == {"pricing": "suspect", "search": "cleared"}


def _ramped(service: str, rng: np.random.Generator, every: int) -> list[Signal]:
    """``service`` rolled out at minute 40 over four pods, one replaced every ``every``
    minutes (new pod n from minute 40 + every * (n - 1), old pod n until 40 + every * n)."""
    out = []
    for n in (1, 2, 3, 4):
        new, old = AT + every * (n - 1), AT + every * n
        out.append(signal(service, ERRORS, flat(0.002), rng, pod=f"{service}-6f7d9c-{n}", last=old))
        out.append(
            signal(service, ERRORS, flat(0.002), rng, pod=f"{service}-8b4c1e-{n}", first=new)
        )
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_callers_rise_goes_to_the_rollout_whose_new_pods_it_followed(seed: int) -> None:
    """web calls ``pricing`` and ``search``, both rolled out at minute 40: pricing replaces a
    pod every 2 minutes, search every 4. web's errors climb a step with each new pricing
    pod: the rise is pricing's (its wrong answers reached more requests as its new pods
    took over), and search's rollout is cleared."""
    rng = np.random.default_rng(seed)
    signals = [*_ramped("pricing", rng, every=2), *_ramped("search", rng, every=4)]

    def failing(m: int) -> float:  # 2.5% more errors per new pricing pod serving
        return 0.002 + 0.025 * min(4, max(0, (m - AT) // 2 + 1))

    signals.append(signal("web", ERRORS, failing, rng))
    edges = [("web", "pricing"), ("web", "search")]
    snapshot = rollout_snapshot(signals, edges, ["pricing", "search"], "ramp")
    assert verdicts_of(snapshot) == {"pricing": "suspect", "search": "cleared"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_callees_lost_requests_go_to_the_rollout_whose_new_pods_they_followed(
    seed: int,
) -> None:
    """``pricing`` and ``search`` both call ``db`` and both rolled out at minute 40, pricing
    a pod every 2 minutes, search every 4; their own request rates hold. db loses a tenth of
    its requests with each new pricing pod: pricing's new build no longer makes the call
    (suspect), and search's rollout, whose pods took over on another beat, is cleared."""
    rng = np.random.default_rng(seed)
    signals = [*_ramped("pricing", rng, every=2), *_ramped("search", rng, every=4)]
    signals += [signal(s, TRAFFIC, flat(100.0), rng) for s in ("pricing", "search")]

    def calls(m: int) -> float:
        return 200.0 - 20.0 * min(4, max(0, (m - AT) // 2 + 1))

    signals.append(signal("db", TRAFFIC, calls, rng))
    edges = [("pricing", "db"), ("search", "db")]
    snapshot = rollout_snapshot(signals, edges, ["pricing", "search"], "lost-calls")
    assert verdicts_of(snapshot) == {"pricing": "suspect", "search": "cleared"}


def _swapped(service: str, rng: np.random.Generator, minutes: tuple[int, ...]) -> list[Signal]:
    """``service`` rolled out at minute 40, old pod n replaced at ``minutes[n]`` (the new one
    serving from that minute, the old one its last)."""
    out = []
    for n, m in enumerate(minutes, start=1):
        old, new = f"{service}-6f7d9c-{n}", f"{service}-8b4c1e-{n}"
        out.append(signal(service, ERRORS, flat(0.002), rng, pod=old, last=m + 1))
        out.append(signal(service, ERRORS, flat(0.002), rng, pod=new, first=m))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_rise_that_was_full_when_one_rollout_was_goes_to_it_not_one_a_minute_behind(
    seed: int,
) -> None:
    """web calls ``pricing`` and ``search``, both rolled out at minute 40 over three pods:
    pricing's replaced at minutes 40, 41, 42, search's a minute later each. web's errors
    climb with pricing's new pods and are at their full level from minute 42, when search
    had two of three. Both ramps fit the rise closely (r about 0.98 and 0.94: a step
    dominates any ramp near it), but search's leaves about three times as much of it
    unexplained: the rise is pricing's, and search's rollout is cleared."""
    rng = np.random.default_rng(seed)
    signals = [*_swapped("pricing", rng, (40, 41, 42)), *_swapped("search", rng, (41, 42, 43))]

    def failing(m: int) -> float:  # 2% more errors per new pricing pod serving
        return 0.002 + 0.02 * min(3, max(0, m - AT + 1))

    signals.append(signal("web", ERRORS, failing, rng))
    edges = [("web", "pricing"), ("web", "search")]
    snapshot = rollout_snapshot(signals, edges, ["pricing", "search"], "a-minute-behind")
    assert verdicts_of(snapshot) == {"pricing": "suspect", "search": "cleared"}


def _climbing(m: int) -> float:  # 1.7% more errors per new pricing pod serving
    return 0.002 + 0.05 * min(3, max(0, m - 43)) / 3


def _caller_then_callee(seed: int, gateway: bool) -> dict[str, str]:
    """``web`` rolled out at minute 40 (two pods, its new ones serving alone from minute 42);
    ``pricing``, which it calls, at minute 44 (pods replaced at minutes 44, 45, 46), its own
    series clean; web's new pods' errors climb with pricing's. With ``gateway``: ``gateway``
    calls web and ``search``, rolled out like pricing and healthy, and fails as web does."""
    rng = np.random.default_rng(seed)
    signals = _swapped("pricing", rng, (44, 45, 46))
    for n in (1, 2):
        signals.append(signal("web", ERRORS, flat(0.002), rng, pod=f"web-6f7d9c-{n}", last=AT + 2))
        signals.append(signal("web", ERRORS, _climbing, rng, pod=f"web-8b4c1e-{n}", first=AT))
    edges, changed = [("web", "pricing")], ["web", "pricing"]
    if gateway:
        signals += [
            *_swapped("search", rng, (44, 45, 46)),
            signal("gateway", ERRORS, _climbing, rng),
        ]
        edges += [("gateway", "web"), ("gateway", "search")]
        changed.append("search")
    snapshot = rollout_snapshot(signals, edges, changed, "then-callee")
    later = change("web").at + timedelta(minutes=4)
    changes = [
        c if c.service == "web" else c.model_copy(update={"at": later}) for c in snapshot.changes
    ]
    return verdicts_of(snapshot.model_copy(update={"changes": changes}))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_callers_errors_that_climbed_with_a_callees_rollout_after_its_own_are_the_callees(
    seed: int,
) -> None:
    """web's new pods served every request from minute 42 with no more errors than before;
    from minute 44 its errors climb with each new ``pricing`` pod, to 5% when pricing's
    rollout is done: web fails on what pricing's new build answers (its own rollout is
    cleared, pricing's suspect), where before web's errors, seen only before/after, were its
    own build's. Its callers' rise then is web's trouble passed up, not that of another of
    their callees rolled out in the same minutes: gateway, which calls web and ``search``,
    fails as web does, and search's rollout is cleared."""
    assert _caller_then_callee(seed, False) == {"web": "cleared", "pricing": "suspect"}
    found = _caller_then_callee(seed, True)
    assert found == {"web": "cleared", "pricing": "suspect", "search": "cleared"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_rise_a_sample_after_one_rollout_was_done_goes_to_it_not_one_still_under_way(
    seed: int,
) -> None:
    """web calls ``pricing`` and ``search``, both rolled out at minute 40: pricing's one pod
    replaced at once (its new build serving alone from minute 41), search's three pods at
    minutes 40, 41 and 42. web's errors step up at minute 42, a sample after pricing was
    done (a ratio over the last minute shows a switch in full at the next sample), while
    search's new pods were still taking over. The rise is pricing's: its switch a sample
    before fits the step, search's ramp less well; that pricing was done by then, by that
    one sample, does not rule it out."""
    rng = np.random.default_rng(seed)
    signals = [
        signal("pricing", ERRORS, flat(0.002), rng, pod="pricing-6f7d9c-1", last=AT + 1),
        signal("pricing", ERRORS, flat(0.002), rng, pod="pricing-8b4c1e-1", first=AT + 1),
        *_swapped("search", rng, (40, 41, 42)),
        signal("web", ERRORS, step(0.002, 0.05, at=AT + 2), rng),
    ]
    edges = [("web", "pricing"), ("web", "search")]
    snapshot = rollout_snapshot(signals, edges, ["pricing", "search"], "a-sample-after")
    assert verdicts_of(snapshot) == {"pricing": "suspect", "search": "cleared"}
