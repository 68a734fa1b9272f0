"""A success share that falls is errors that rise: the engine reads ``success_rate``-style
series as their failing share (agent.engine.detect.shares), so a code fault shows in metrics
alone as a success share that falls at one service while its resources stay flat."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from agent.chart import matching_signals
from agent.engine.detect.shares import failing_share
from agent.engine.pipeline import analyze
from agent.models import Edge, FaultType, Signal, SignalKind, Topology
from agent.service.runner import chart_material
from agent.snapshot import Snapshot, SnapshotMeta, WindowSpec

START = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)
STEPS, SPLIT_AT = 30, 20
STAMPS = [START.timestamp() + 60.0 * i for i in range(STEPS)]


def _series(
    name: str, values: list[float], unit: str = "", kind: SignalKind | None = None
) -> Signal:
    return Signal(
        service="checkout",
        name=name,
        unit=unit,
        kind=kind,
        timestamps=STAMPS[: len(values)],
        values=list(values),
    )


@pytest.mark.parametrize(
    ("name", "unit", "values", "complement"),
    [
        ("PodSuccessRate(%)", "", [99.5, 99.0, 70.0], [0.5, 1.0, 30.0]),
        ("grpc_success_ratio", "", [0.999, 0.5], [0.001, 0.5]),
        ("availability", "percent", [100.0, 98.0], [0.0, 2.0]),
    ],
)
def test_a_success_share_reads_as_its_failing_share(
    name: str, unit: str, values: list[float], complement: list[float]
) -> None:
    failing = failing_share(_series(name, values, unit))
    assert failing is not None
    assert failing.kind is SignalKind.ERRORS
    assert failing.name.endswith(f" - {name}") and failing.unit == unit
    assert failing.values == pytest.approx(complement)


@pytest.mark.parametrize(
    ("name", "values", "kind"),
    [
        ("http_requests_success_total", [10.0, 12.0], None),  # a count of successes: traffic
        ("success_count", [10.0, 12.0], None),
        ("success_rate", [120.0, 340.0], None),  # successes per second, beyond any share
        ("success_rate", [0.99, 0.5], SignalKind.TRAFFIC),  # the source said what it is
        ("error_rate", [0.01, 0.5], None),
        ("memory_available_percent", [40.0, 5.0], None),  # free capacity, not requests served
        ("disk_available_gb", [40.0, 30.0], None),
        ("request_duration_seconds_success_p99", [0.2, 0.9], None),  # a latency, in seconds
        ("success_latency_ms", [20.0, 90.0], None),
    ],
)
def test_anything_else_is_left_as_it_is(
    name: str, values: list[float], kind: SignalKind | None
) -> None:
    assert failing_share(_series(name, values, kind=kind)) is None


def _snapshot(seed: int) -> Snapshot:
    """frontend -> checkout -> payment; checkout's code starts failing a third of its
    requests at the split, its CPU and memory flat; frontend's own share falls with it."""
    rng = random.Random(seed)

    def share(fall: float) -> list[float]:
        return [rng.uniform(99.3, 99.9) - (fall if i >= SPLIT_AT else 0.0) for i in range(STEPS)]

    def flat(level: float) -> list[float]:
        return [level * rng.uniform(0.95, 1.05) for _ in range(STEPS)]

    falls = {"frontend": 20.0, "checkout": 33.0, "payment": 0.0}
    signals = []
    for service, fall in falls.items():
        pod = f"{service}-1"
        signals += [
            Signal(service=service, pod=pod, name="success_rate_percent", unit="%",
                   timestamps=STAMPS, values=share(fall)),
            Signal(service=service, pod=pod, name="container_cpu_usage_cores",
                   timestamps=STAMPS, values=flat(0.3)),
            Signal(service=service, pod=pod, name="container_memory_working_set_bytes",
                   timestamps=STAMPS, values=flat(2e8)),
            Signal(service=service, pod=pod, name="request_duration_p95_seconds", unit="s",
                   timestamps=STAMPS, values=flat(0.05)),
        ]  # fmt: skip
    return Snapshot(
        meta=SnapshotMeta(
            id=f"success-{seed}",
            description="hand-built",
            window=WindowSpec(incident_start=datetime.fromtimestamp(STAMPS[SPLIT_AT], tz=UTC)),
        ),
        signals=signals,
        topology=Topology(
            services=list(falls),
            edges=[
                Edge(caller="frontend", callee="checkout"),
                Edge(caller="checkout", callee="payment"),
            ],
        ),
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_success_share_that_falls_at_one_service_reads_as_its_code_failing(seed: int) -> None:
    snapshot = _snapshot(seed)
    analysis = analyze(snapshot)
    top = analysis.candidates[0]
    assert (top.service, top.fault_type) == ("checkout", FaultType.CODE_EXCEPTION)
    cited = next(
        e
        for e in analysis.evidence
        if e.id in top.evidence_ids and e.signal_kind is SignalKind.ERRORS
    )
    # The evidence quotes the failing share, rising, under a name that says so.
    assert cited.signal == "100 - success_rate_percent" and cited.pattern == "up"
    assert "rose from" in cited.description and "%" in cited.description
    # The chart draws the series the evidence quotes.
    (drawn,) = matching_signals(snapshot, cited)
    assert drawn.name == cited.signal and max(drawn.values[SPLIT_AT:]) > 30  # type: ignore[type-var]
    # ... and so does the report page, from the part of the snapshot the service keeps.
    material = chart_material(analysis, snapshot)
    assert material is not None
    kept = [s for s in material.signals if s.service == "checkout" and s.name == cited.signal]
    assert len(kept) == 1 and matching_signals(material, cited) == kept
