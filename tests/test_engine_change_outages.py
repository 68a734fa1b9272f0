"""A dependency that went down, on small synthetic rollouts (agent.engine.outages): every pod
of it stopped reporting, so it is in trouble of its own on errors and latency (its callers'
calls fail or time out) though none of its own series can show it, and its requests went
with it, whoever calls it (agent.engine.trouble, agent.engine.owners).

An hour of 1-minute samples; the rollouts land at minute 40.
"""

from __future__ import annotations

import numpy as np
import pytest
from rollout_support import (
    AT,
    ERRORS,
    MINUTES,
    STEADY,
    TRAFFIC,
    Level,
    failing_late,
    flat,
    rolled,
    rollout_snapshot,
    signal,
    step,
    verdicts_of,
)

from agent.models import Signal

CPU, MEMORY = "container_cpu_usage_seconds:rate", "container_memory_working_set_bytes"


def _search(
    rng: np.random.Generator, down_at: int | None, pods: int = 2, back_at: int = MINUTES
) -> list[Signal]:
    """``search``'s pods (CPU, memory, requests), every one of them silent from ``down_at``
    (None: up throughout) until ``back_at``; where ``pods`` is 3, the third stays up."""
    out = []
    for n in range(pods):
        for name, level in ((CPU, flat(0.2)), (MEMORY, flat(5e8)), (TRAFFIC, flat(50.0))):
            s = signal("search", name, level, rng, pod=f"search-0{n}")
            if down_at is not None and n < 2:
                gap = range(down_at, back_at)
                values = [None if m in gap else v for m, v in enumerate(s.values)]
                s = s.model_copy(update={"values": values})
            out.append(s)
    return out


def _failing_web(
    seed: int, down_at: int | None, pods: int = 2, back_at: int = MINUTES
) -> dict[str, str]:
    """``web`` rolled out at minute 40, its new pods failing 10% from minute 50 (when the old
    ones are long gone: only before/after sees it); ``search``, which it calls, down from
    ``down_at`` until ``back_at``."""
    rng = np.random.default_rng(seed)
    signals = [*failing_late("web", rng), *_search(rng, down_at, pods, back_at)]
    return verdicts_of(rollout_snapshot(signals, [("web", "search")], ["web"], "outage"))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_build_failing_as_its_dependency_went_down_is_cleared(seed: int) -> None:
    """web's errors rose in the minute every pod of search stopped reporting: web fails on
    calls to a target that is down, not on its build. A search that stayed up, whose third
    pod went on answering, that went down two minutes after web began to fail (a target's
    data stops when it does: no onset slack), or whose data came back three minutes later
    (a scrape gap), explains nothing."""
    assert _failing_web(seed, down_at=50) == {"web": "cleared"}
    assert _failing_web(seed, down_at=52) == {"web": "suspect"}
    assert _failing_web(seed, down_at=50, back_at=53) == {"web": "suspect"}
    assert _failing_web(seed, down_at=None) == {"web": "suspect"}
    assert _failing_web(seed, down_at=50, pods=3) == {"web": "suspect"}


def _calling(seed: int, down_at: int | None) -> dict[str, str]:
    """``orders`` rolled out at minute 40 (clean, its traffic steady); ``audit``, its callee,
    gets 80 requests a minute, none from minute 45 where it went down then (every pod of it
    silent), and 30 from then where it stayed up (a call the build dropped)."""
    rng = np.random.default_rng(seed)
    after: Level = flat(0.0) if down_at is not None else flat(30.0)
    signals = [*rolled("orders", rng), signal("frontend", TRAFFIC, STEADY, rng)]
    signals.append(signal("audit", TRAFFIC, lambda m: after(m) if m >= AT + 5 else 80.0, rng))
    signals.append(signal("audit", ERRORS, flat(0.002), rng))
    for n in (1, 2):
        cpu = signal("audit", CPU, step(0.2, 0.2), rng, pod=f"audit-0{n}")
        if down_at is not None:
            values = [
                None if m >= down_at else v for m, v in zip(range(MINUTES), cpu.values, strict=True)
            ]
            cpu = cpu.model_copy(update={"values": values})
        signals.append(cpu)
    edges = [("frontend", "orders"), ("orders", "audit")]
    return verdicts_of(rollout_snapshot(signals, edges, ["orders"], "down-callee"))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_callee_that_went_down_did_not_lose_a_call_the_build_dropped(seed: int) -> None:
    """audit's requests fell to nothing as its pods went silent: it is down, and a build
    that still calls it is not blamed for the requests it no longer serves; the same fall
    at an audit that stayed up is a call the build dropped."""
    assert _calling(seed, down_at=AT + 5) == {"orders": "cleared"}
    assert _calling(seed, down_at=None) == {"orders": "suspect"}
