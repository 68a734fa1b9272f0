"""A callee's lost requests against what its other callers and the changed service itself
lost, on small synthetic rollouts (agent.engine.losses): another caller whose own traffic
dipped a tenth cannot be where half of the callee's requests went, and the changed
service's own traffic, ebbing with the day as the callee's other callers' does, is not
a loss from further up.

``orders`` v2 (minute 40) stops calling ``audit``, which falls from 80 to 30 requests a
second; ``batch`` calls audit too.
"""

from __future__ import annotations

import numpy as np
import pytest
from rollout_support import (
    AT,
    ERRORS,
    TRAFFIC,
    Level,
    flat,
    rolled,
    rollout_snapshot,
    signal,
    step,
    verdicts_of,
)


def _verdict(seed: int, orders: Level, batch: Level) -> str:
    rng = np.random.default_rng(seed)
    signals = rolled("orders", rng, traffic=orders)
    signals.append(signal("audit", TRAFFIC, step(80.0, 30.0, AT + 2), rng))
    signals.append(signal("audit", ERRORS, flat(0.002), rng))
    signals.append(signal("batch", TRAFFIC, batch, rng))
    edges = [("orders", "audit"), ("batch", "audit")]
    return verdicts_of(rollout_snapshot(signals, edges, ["orders"], "losses"))["orders"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_another_caller_that_lost_a_tenth_of_its_requests_did_not_take_half_the_callees(
    seed: int,
) -> None:
    """batch's own traffic dips from 50 to 44 a second as audit loses 62%: too little to be
    where audit's requests went, so orders' build dropped the call (suspect). batch down to
    10 a second could be (cleared)."""
    assert _verdict(seed, flat(100.0), step(50.0, 44.0)) == "suspect"
    assert _verdict(seed, flat(100.0), step(50.0, 10.0)) == "cleared"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_changed_services_traffic_ebbing_as_its_peers_does_is_not_a_loss_from_further_up(
    seed: int,
) -> None:
    """orders' own traffic ebbs from 100 to 74 a second and batch's from 50 to 38 (the
    day's ebb, felt alike) while audit loses 62%: orders' build dropped the call (suspect).
    orders down to 55 while batch held is starved from further up (cleared)."""
    assert _verdict(seed, step(100.0, 74.0), step(50.0, 38.0)) == "suspect"
    assert _verdict(seed, step(100.0, 55.0), flat(50.0)) == "cleared"
