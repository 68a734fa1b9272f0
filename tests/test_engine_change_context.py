"""What else a change's evidence may be: on small synthetic rollouts, a caller's errors that
came with its wait on another slow dependency (agent.engine.trouble), and a rollout the
better part of an hour before the alert (agent.engine.canary).

An hour of 1-minute samples; the rollouts land at minute 40.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from rollout_support import (
    AT,
    ERRORS,
    STEP,
    T0,
    flat,
    rolled,
    rollout_snapshot,
    signal,
    step,
    verdicts_of,
)

from agent.snapshot import WindowSpec

LATENCY = "http_request_duration_seconds:p99"


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
