"""Small synthetic rollouts for the change-judging tests: an hour of 1-minute samples, every
rollout at minute 40 (tests/test_engine_neighbours.py, tests/test_engine_change_*.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from agent.engine.pipeline import analyze
from agent.models import Change, Edge, Signal, Topology
from agent.snapshot import Snapshot, SnapshotMeta, WindowSpec

T0 = 1_700_000_000.0
STEP = 60.0
MINUTES = 60
AT = 40  # the rollouts' minute
END = T0 + (MINUTES - 1) * STEP
ERRORS, TRAFFIC = "http_requests_5xx:ratio", "http_requests:rate"
LATENCY = "http_request_duration_seconds:p99"
Level = Callable[[int], float]


def flat(value: float) -> Level:
    return lambda _m: value


def step(before: float, after: float, at: int = AT + 1) -> Level:
    return lambda m: after if m >= at else before


STEADY = flat(100.0)


def signal(
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


def change(service: str) -> Change:
    return Change(
        service=service,
        at=datetime.fromtimestamp(T0 + AT * STEP, tz=UTC),
        from_version="v1",
        to_version="v2",
    )


def rolled(service: str, rng: np.random.Generator, traffic: Level = STEADY) -> list[Signal]:
    """Two old pods until the rollout's end (minute 44), two new ones from minute 40; clean
    errors on both, the service's request rate split over whichever pods serve."""
    out = []
    for n in (1, 2):
        old, new = f"{service}-6f7d9c-{n}", f"{service}-8b4c1e-{n}"
        for pod, first, last in ((old, 0, AT + 4), (new, AT, MINUTES)):
            out.append(signal(service, ERRORS, flat(0.002), rng, pod=pod, first=first, last=last))
        out.append(signal(service, TRAFFIC, lambda m: traffic(m) / 2, rng, pod=old, last=AT + 2))
        out.append(signal(service, TRAFFIC, lambda m: traffic(m) / 2, rng, pod=new, first=AT + 2))
    return out


def failing_late(
    service: str, rng: np.random.Generator, to: float = 0.1, at: int = 50
) -> list[Signal]:
    """The service's error series through a rollout whose new pods fail: two old pods at 0.2%
    until minute 44, two new ones from minute 40 whose errors go to ``to`` at minute ``at``,
    when the old pods are long gone (only a before/after comparison sees it)."""
    out = []
    for n in (1, 2):
        old, new = f"{service}-6f7d9c-{n}", f"{service}-8b4c1e-{n}"
        out.append(signal(service, ERRORS, flat(0.002), rng, pod=old, last=AT + 4))
        out.append(signal(service, ERRORS, step(0.002, to, at), rng, pod=new, first=AT))
    return out


def rollout_snapshot(
    signals: list[Signal], edges: list[tuple[str, str]], changed: list[str], name: str
) -> Snapshot:
    """The services' signals, their call edges and changes, split two minutes before the
    rollouts."""
    names = sorted({s.service for s in signals} | {x for e in edges for x in e})
    return Snapshot(
        meta=SnapshotMeta(
            id=name,
            window=WindowSpec(
                start=datetime.fromtimestamp(T0, tz=UTC),
                incident_start=datetime.fromtimestamp(T0 + (AT - 2) * STEP, tz=UTC),
                end=datetime.fromtimestamp(END, tz=UTC),
            ),
        ),
        signals=signals,
        topology=Topology(services=names, edges=[Edge(caller=a, callee=b) for a, b in edges]),
        changes=[change(s) for s in changed],
    )


def verdicts_of(snapshot: Snapshot) -> dict[str, str]:
    return {v.change.service: v.verdict for v in analyze(snapshot).changes}
