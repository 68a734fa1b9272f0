"""evals.snapshot_sources: the in-memory log source keeps the asked window, and the asked
services only when told to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.models import LogRecord
from evals.snapshot_sources import SnapshotLogs

START = datetime(2024, 5, 14, 10, 0, tzinfo=UTC)
LINES = [
    LogRecord(timestamp=START + timedelta(minutes=i), service=service, level="INFO", message="x")
    for i in range(10)
    for service in ("cart", "checkout")
]


def test_lines_outside_the_window_are_left_out() -> None:
    fetched = SnapshotLogs(LINES).fetch(
        [], START + timedelta(minutes=2), START + timedelta(minutes=4)
    )
    assert len(fetched.records) == 6
    assert all(START + timedelta(minutes=2) <= r.timestamp for r in fetched.records)


def test_the_asked_services_only_when_by_service() -> None:
    end = START + timedelta(hours=1)
    assert {r.service for r in SnapshotLogs(LINES).fetch(["cart"], START, end).records} == {"cart"}
    every = SnapshotLogs(LINES, by_service=False).fetch(["cart"], START, end).records
    assert {r.service for r in every} == {"cart", "checkout"}
