"""Shared fixtures: a small incident built by hand, so report, chart and CLI tests do not
depend on the engine or the simulator.

The incident: ``payments`` (pod ``payments-7d9f-x2`` ) leaks memory from 10:42; ``checkout``
calls it and gets slow; ``frontend`` calls checkout. Ground truth: payments / memory_leak.
"""

from __future__ import annotations

import math
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.models import (
    Analysis,
    Candidate,
    Edge,
    Evidence,
    FaultType,
    GroundTruth,
    LogRecord,
    RootCause,
    Signal,
    SignalKind,
    SourceFailure,
    Stats,
    TimelineEvent,
    Topology,
    Trigger,
    Window,
)
from agent.snapshot import Snapshot, SnapshotMeta, WindowSpec, write_snapshot

START = datetime(2024, 5, 14, 10, 0, tzinfo=UTC)
INCIDENT = START + timedelta(minutes=40)
ONSET = START + timedelta(minutes=42)
END = START + timedelta(minutes=60)
STEP_S = 15
POD = "payments-7d9f-x2"
MIB = 1024 * 1024


def _series(service: str, name: str, values: list[float], **extra: object) -> Signal:
    base = START.timestamp()
    stamps = [base + i * STEP_S for i in range(len(values))]
    return Signal(service=service, name=name, timestamps=stamps, values=values, **extra)  # type: ignore[arg-type]


def _points() -> int:
    return int((END - START).total_seconds() // STEP_S)


def _memory() -> list[float]:
    onset_i = int((ONSET - START).total_seconds() // STEP_S)
    return [
        300 * MIB + (i - onset_i) * 8 * MIB if i >= onset_i else 300 * MIB + 2 * MIB * math.sin(i)
        for i in range(_points())
    ]


def _latency() -> list[float]:
    onset_i = int((ONSET - START).total_seconds() // STEP_S) + 4
    return [0.12 + 0.01 * math.cos(i) + (0.7 if i >= onset_i else 0.0) for i in range(_points())]


def _logs() -> list[LogRecord]:
    records = [
        LogRecord(
            timestamp=START + timedelta(minutes=m),
            service="payments",
            level="INFO",
            message=f"charge ok order={1000 + m}",
            pod=POD,
        )
        for m in range(0, 60, 3)
    ]
    records += [
        LogRecord(
            timestamp=ONSET + timedelta(seconds=20 * k),
            service="payments",
            level="ERROR",
            message=f"java.lang.OutOfMemoryError: Java heap space (allocating {512 + k} bytes)",
            pod=POD,
        )
        for k in range(30)
    ]
    return records


def build_snapshot(with_truth: bool = True) -> Snapshot:
    signals = [
        _series("payments", "memory_rss_bytes", _memory(), pod=POD, unit="bytes"),
        _series(
            "payments",
            "memory_rss_bytes",
            [290.0 * MIB] * _points(),
            pod="payments-7d9f-y7",
            unit="bytes",
        ),
        _series(
            "checkout",
            "http_latency_p99_seconds",
            _latency(),
            unit="seconds",
            kind=SignalKind.LATENCY,
        ),
        _series("frontend", "http_requests_per_second", [50.0] * _points(), unit="1/s"),
    ]
    return Snapshot(
        meta=SnapshotMeta(
            id="test-incident-1",
            description="hand-built: payments memory leak",
            window=WindowSpec(incident_start=INCIDENT),
        ),
        signals=signals,
        logs=_logs(),
        topology=Topology(
            services=["frontend", "checkout", "payments"],
            edges=[
                Edge(caller="frontend", callee="checkout"),
                Edge(caller="checkout", callee="payments"),
            ],
        ),
        ground_truth=GroundTruth(service="payments", fault_type=FaultType.MEMORY_LEAK, onset=ONSET)
        if with_truth
        else None,
    )


def _evidence() -> list[Evidence]:
    return [
        Evidence(
            id="M1",
            source="metric",
            service="payments",
            pod=POD,
            signal="memory_rss_bytes",
            signal_kind=SignalKind.RESOURCE,
            unit="bytes",
            pattern="up",
            start=INCIDENT,
            end=END,
            onset=ONSET,
            baseline=Stats(median=300 * MIB, p95=302 * MIB, max=302 * MIB, count=160),
            incident=Stats(median=760 * MIB, p95=920 * MIB, max=940 * MIB, count=80),
            score=9.5,
            description="RSS of payments-7d9f-x2 climbs steadily from 10:42",
        ),
        Evidence(
            id="L1",
            source="log",
            service="payments",
            pod=POD,
            template="java.lang.OutOfMemoryError: Java heap space (allocating <*> bytes)",
            sample="java.lang.OutOfMemoryError: Java heap space (allocating 512 bytes)",
            pattern="new",
            start=INCIDENT,
            end=END,
            onset=ONSET,
            baseline=Stats(count=0),
            incident=Stats(count=30),
            score=8.0,
            description="new ERROR template | appears only during the incident",
        ),
        Evidence(
            id="M2",
            source="metric",
            service="checkout",
            signal="http_latency_p99_seconds",
            signal_kind=SignalKind.LATENCY,
            unit="seconds",
            pattern="up",
            start=INCIDENT,
            end=END,
            onset=ONSET + timedelta(minutes=1),
            baseline=Stats(median=0.12, p95=0.13, max=0.13, count=160),
            incident=Stats(median=0.82, p95=0.83, max=0.83, count=80),
            score=6.1,
            description="p99 latency of checkout up 6.8x",
            link="http://prom/graph?g0=x",
        ),
    ]


def build_analysis(insufficient: bool = False) -> Analysis:
    evidence = _evidence()
    candidates = [
        Candidate(
            service="payments",
            fault_type=FaultType.MEMORY_LEAK,
            score=0.91,
            onset=ONSET,
            evidence_ids=["M1", "L1"],
            reasons=["resource anomaly first"],
        ),
        Candidate(
            service="checkout",
            fault_type=FaultType.NETWORK_LATENCY,
            score=0.42,
            onset=ONSET + timedelta(minutes=1),
            evidence_ids=["M2"],
        ),
        Candidate(service="frontend", fault_type=FaultType.UNKNOWN, score=0.05),
    ]
    root = RootCause(
        service="payments",
        fault_type=FaultType.MEMORY_LEAK,
        summary="payments leaks memory from 10:42:00 [M1] and throws OutOfMemoryError [L1].",
    )
    return Analysis(
        id="an-test-1",
        version="0.1.0",
        created_at=END,
        trigger=Trigger(kind="snapshot", alert_name="CheckoutLatencyHigh"),
        window=Window(start=START, end=END, incident_start=INCIDENT),
        candidates=candidates,
        root_cause=None if insufficient else root,
        confidence=0.2 if insufficient else 0.83,
        insufficient_evidence=insufficient,
        evidence=evidence,
        timeline=[
            TimelineEvent(
                time=ONSET, service="payments", text="memory starts climbing", evidence_id="M1"
            ),
            TimelineEvent(
                time=ONSET + timedelta(minutes=1),
                service="checkout",
                text="latency p99 rises",
                evidence_id="M2",
            ),
        ],
        next_steps=["Check heap usage of payments-7d9f-x2", "Roll back the last payments deploy"],
        summary="payments is the most likely root cause.",
        timings={"total": 0.05},
        source_failures=[SourceFailure(source="elasticsearch", error="timed out after 10 s")],
    )


@pytest.fixture
def snapshot() -> Snapshot:
    return build_snapshot()


@pytest.fixture
def analysis() -> Analysis:
    return build_analysis()


@pytest.fixture
def snapshot_dir(tmp_path: Path) -> Path:
    return write_snapshot(build_snapshot(), tmp_path / "incident")


@pytest.fixture
def snap(tmp_path: Path) -> Path:
    """A writable copy of the minimal snapshot fixture (tests/fixtures/snapshots/minimal)."""
    minimal = Path(__file__).parent / "fixtures" / "snapshots" / "minimal"
    return Path(shutil.copytree(minimal, tmp_path / "snap"))
