"""Whether a caller's trouble kept pace with a rollout, on small synthetic rollouts: a
caller whose own rollout was done in the minute its errors rose, which then climbed with a
callee's new pods taking over (agent.engine.owners.followed_callee); new pods that look
worse than the old ones pooled over the same minutes, though side by side, minute by
minute, the old ones got as bad (agent.engine.old_pods.as_bad_beside); and a caller already
at its full rise in errors before a callee's new pods served any request, and as high while
few of them were new (agent.engine.owners.ahead_of_rollout).

An hour of 1-minute samples; rollouts begin at minute 40.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from rollout_support import (
    ERRORS,
    STEP,
    T0,
    TRAFFIC,
    Level,
    flat,
    rollout_snapshot,
    signal,
    verdicts_of,
)

from agent.models import Change, Signal


def _pods(
    service: str, level: Level, rng: np.random.Generator, spans: list[tuple[str, int, int]]
) -> list[Signal]:
    """The service's errors and request rate on each ``(pod, first, last)`` of ``spans``."""
    out = []
    for pod, first, last in spans:
        name = f"{service}-{pod}"
        out.append(signal(service, ERRORS, level, rng, pod=name, first=first, last=last))
        out.append(signal(service, TRAFFIC, flat(50.0), rng, pod=name, first=first, last=last))
    return out


def _at(service: str, minute: int) -> Change:
    when = datetime.fromtimestamp(T0 + minute * STEP, tz=UTC)
    return Change(service=service, at=when, from_version="v1", to_version="v2")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_callers_errors_that_climbed_with_a_callees_rollout_after_its_own_are_the_callees(
    seed: int,
) -> None:
    """web rolls out from minute 40, its last old pod gone at 44; train, which it calls,
    rolls out from 44, half its pods new until 47. web's errors go from 0.2% to 3% at 44,
    the minute its own rollout was done, and to 6% at 47 as train's last old pod leaves:
    they followed train's new pods taking over, not web's own (whose new pods served at
    0.2% for four minutes). web is cleared and train's build, which answers wrong, is
    suspect."""
    rng = np.random.default_rng(seed)

    def web_errors(m: int) -> float:
        return 0.06 if m >= 47 else 0.03 if m >= 44 else 0.002

    web = [("6f7d9c-1", 0, 42), ("6f7d9c-2", 0, 44), ("8b4c1e-1", 40, 60), ("8b4c1e-2", 42, 60)]
    train = [("5d2a7b-1", 0, 44), ("5d2a7b-2", 0, 47), ("9c3e1f-1", 44, 60), ("9c3e1f-2", 47, 60)]
    signals = _pods("web", web_errors, rng, web) + _pods("train", flat(0.002), rng, train)
    snapshot = rollout_snapshot(signals, [("web", "train")], ["web"], "follows the callee")
    snapshot = snapshot.model_copy(update={"changes": [*snapshot.changes, _at("train", 44)]})
    assert verdicts_of(snapshot) == {"web": "cleared", "train": "suspect"}


def _callee_failing(m: int) -> float:
    """Errors passed up from a callee whose rollout from minute 44 throws, in three steps as
    its new pods take over."""
    return 0.21 if m >= 53 else 0.14 if m >= 49 else 0.07 if m >= 45 else 0.002


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_new_pods_no_worse_than_old_ones_side_by_side_are_not_worse_over_the_same_minutes(
    seed: int,
) -> None:
    """assure rolls out from minute 41, one pod every four minutes, while a callee's
    failures reach every pod of it, old or new, in three steps from minute 45. Pooled over
    the minutes both served, its new pods look worse (their minutes come later, when the
    trouble had grown); side by side, minute by minute, the old ones were as bad: cleared.
    New pods that fail beside old ones that stay well are still suspect."""
    rng = np.random.default_rng(seed)
    old = [(f"6f7d9c-{n}", 0, 42 + 4 * n) for n in range(4)]
    new = [(f"8b4c1e-{n}", 41 + 4 * n, 60) for n in range(4)]
    passed_up = _pods("assure", _callee_failing, rng, old + new)
    snapshot = rollout_snapshot(passed_up, [], ["assure"], "as bad side by side")
    assert verdicts_of(snapshot) == {"assure": "cleared"}
    own = _pods("assure", flat(0.002), rng, old) + _pods("assure", _callee_failing, rng, new)
    snapshot = rollout_snapshot(own, [], ["assure"], "worse side by side")
    assert verdicts_of(snapshot) == {"assure": "suspect"}


def _ahead(seed: int, early: float) -> dict[str, str]:
    """``sub`` calls ``route``, which rolls out from minute 40: its first new pod serves from
    minute 42 (a third of its pods new), two thirds from 44, all from 47; its own series
    stay clean. sub's errors go from 0.2% to ``early`` at minute 41, a minute before
    route's first new pod served (a rate's lag allows that much), and to 30% at 47."""
    rng = np.random.default_rng(seed)

    def sub_errors(m: int) -> float:
        return 0.3 if m >= 47 else early if m >= 41 else 0.002

    pods = [("6f7d9c-1", 0, 44), ("6f7d9c-2", 0, 47), ("8b4c1e-1", 42, 60), ("8b4c1e-2", 44, 60)]
    signals = _pods("route", flat(0.002), rng, pods)
    signals.append(signal("sub", ERRORS, sub_errors, rng))
    return verdicts_of(rollout_snapshot(signals, [("sub", "route")], ["route"], "ahead"))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_callers_errors_at_their_full_rise_before_a_build_served_are_not_its(
    seed: int,
) -> None:
    """At 30% a minute before route's first new pod served, as high while a third of its
    pods were new, and no higher once all were, sub's errors are its own (route cleared);
    at 15% until the new pods took every request, then 30%, they may be route's wrong
    answers (suspect)."""
    assert _ahead(seed, 0.3) == {"route": "cleared"}
    assert _ahead(seed, 0.15) == {"route": "suspect"}
