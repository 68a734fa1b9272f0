"""The leak canary (agent.engine.leaks): new pods whose memory grows with their age, on a
small synthetic rollout (an hour of 1-minute samples, the rollout at minute 40, the old pods
gone two minutes later)."""

from __future__ import annotations

import numpy as np
import pytest
from rollout_support import AT, END, ERRORS, STEP, T0, Level, change, flat, signal

from agent.engine.canary import judge
from agent.engine.leaks import GROWTH, new_pods_grow
from agent.models import Signal

MEMORY = "container_memory_working_set_bytes"


def _rollout(old: Level, new: Level, seed: int) -> list[Signal]:
    """``web``: two old pods until minute 42, two new ones from minute 40, clean errors."""
    rng = np.random.default_rng(seed)
    out = []
    for n in (1, 2):
        old_pod, new_pod = f"web-6f7d9c-{n}", f"web-8b4c1e-{n}"
        out.append(signal("web", MEMORY, old, rng, pod=old_pod, last=AT + 2))
        out.append(signal("web", ERRORS, flat(0.002), rng, pod=old_pod, last=AT + 2))
        out.append(signal("web", MEMORY, new, rng, pod=new_pod, first=AT))
        out.append(signal("web", ERRORS, flat(0.002), rng, pod=new_pod, first=AT))
    return out


def _leaking(minute: int) -> float:
    """1.2 GB at start, 80 MB more a minute, killed and restarted at 3.2 GB."""
    age = (minute - AT) % 25
    return 1.2e9 + 8e7 * age


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_new_pods_whose_memory_climbs_with_their_age_make_the_change_suspect(seed: int) -> None:
    """Against the pods before the change the new pods hold under twice as much (the
    before/after cut); the climb within each pod's life is the leak."""
    judged = judge(change("web"), _rollout(flat(1.2e9), _leaking, seed), {}, END)
    assert judged.verdict == "suspect"
    assert [c.what for c in judged.comparisons if c.worse] == [GROWTH]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_new_pods_that_fill_a_cache_and_level_off_are_not_leaking(seed: int) -> None:
    """Memory up 40 % in the first minutes and flat after: a cache filling, not a leak."""

    def settles(minute: int) -> float:
        return 1.2e9 * (1.0 + 0.4 * min((minute - AT) / 3, 1.0))

    judged = judge(change("web"), _rollout(flat(1.2e9), settles, seed), {}, END)
    assert judged.verdict == "cleared"


def _grows(old: Level, seed: int) -> bool:
    by_pod: dict[str, list[Signal]] = {}
    for s in _rollout(old, _leaking, seed):
        by_pod.setdefault(s.pod or "", []).append(s)
    new = {p for p in by_pod if "8b4c1e" in p}
    return new_pods_grow(by_pod, new, T0 + AT * STEP, END, 30 * 60.0, 120.0) is not None


@pytest.mark.parametrize("seed", [1, 2])
def test_memory_that_grew_as_much_on_the_old_pods_is_not_the_builds(seed: int) -> None:
    """The old pods' memory climbed the same way over the half hour before the change: it
    grows with the load or the day, whichever pods serve."""

    def climbing(minute: int) -> float:
        return 1.2e9 + 8e7 * ((minute - 10) % 25)

    assert _grows(flat(1.2e9), seed)
    assert not _grows(climbing, seed)
