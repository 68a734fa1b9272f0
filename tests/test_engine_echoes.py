"""A baseline that already held the incident's rise (an earlier incident's tail): when nothing
stands out, the analysis says so, names the stretch and what would settle it."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from agent.engine.echoes import echo_note, echoes
from agent.engine.pipeline import analyze
from agent.models import Signal, SignalKind
from agent.slack.blocks import IncidentView, incident_blocks
from agent.snapshot import Snapshot, SnapshotMeta, WindowSpec

START = datetime(2024, 5, 14, 5, 43, tzinfo=UTC)
SPLIT = START + timedelta(minutes=10)
STEP = 60.0
QUIET, RAISED = 0.08, 0.72  # seconds: its p95 before and in the incident


def _latency(earlier: range, now: range, seed: int) -> list[float]:
    """A p95 that is raised in ``earlier`` and ``now`` and otherwise quiet, with the blips
    real baselines have (quiet minutes at twice the level)."""
    rng = random.Random(seed)
    blips = {4, 6, 8}
    return [
        (RAISED if i in earlier or i in now else 2 * QUIET if i in blips else QUIET)
        * rng.uniform(0.8, 1.1)
        for i in range(15)
    ]


def _snapshot(earlier: range, seed: int = 1) -> Snapshot:
    stamps = [START.timestamp() + STEP * i for i in range(15)]
    rng = random.Random(seed)
    signals = [
        Signal(
            service="checkout",
            pod="checkout-1",
            name="request_latency_p95_seconds",
            kind=SignalKind.LATENCY,
            unit="s",
            timestamps=stamps,
            values=_latency(earlier, range(10, 14), seed),
        ),
        *(
            Signal(
                service=service,
                pod=f"{service}-1",
                name="cpu_usage_cores",
                kind=SignalKind.RESOURCE,
                timestamps=stamps,
                values=[0.2 * rng.uniform(0.95, 1.05) for _ in stamps],
            )
            for service in ("checkout", "payment", "frontend")
        ),
    ]
    return Snapshot(
        meta=SnapshotMeta(
            id="echo", description="hand-built", window=WindowSpec(incident_start=SPLIT)
        ),
        signals=signals,
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_baseline_that_held_the_same_rise_is_named_with_what_would_settle_it(
    seed: int,
) -> None:
    analysis = analyze(_snapshot(earlier=range(1, 4), seed=seed))
    assert analysis.insufficient_evidence
    note = next(n for n in analysis.notes if "baseline already held" in n)
    assert "checkout/checkout-1 request_latency_p95_seconds" in note
    # Both stretches, with their times and values in the series' unit.
    assert "from 05:53" in note and "from 05:44 to 05:46" in note
    assert " ms " in note and "before 05:44" in note


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_same_rise_over_a_quiet_baseline_is_found_and_needs_no_such_note(seed: int) -> None:
    analysis = analyze(_snapshot(earlier=range(0), seed=seed))
    assert analysis.candidates and analysis.candidates[0].service == "checkout"
    assert analysis.evidence[0].signal == "request_latency_p95_seconds"
    assert not any("baseline already held" in n for n in analysis.notes)


def test_a_level_raised_until_the_split_is_an_early_onset_not_an_earlier_incident() -> None:
    snapshot = _snapshot(earlier=range(6, 10))
    split = SPLIT.timestamp()
    assert echoes(snapshot.signals, START.timestamp(), split, split + 5 * STEP) == []
    back = _snapshot(earlier=range(5, 8))
    found = echoes(back.signals, START.timestamp(), split, split + 5 * STEP)
    assert [e.signal.service for e in found] == ["checkout"]
    assert found[0].earlier == (START.timestamp() + 5 * STEP, START.timestamp() + 7 * STEP)


def test_a_single_raised_sample_is_noise_not_an_earlier_incident() -> None:
    snapshot = _snapshot(earlier=range(2, 3))
    split = SPLIT.timestamp()
    assert echo_note(echoes(snapshot.signals, START.timestamp(), split, split + 5 * STEP)) is None


def test_slack_shows_the_note_when_no_root_cause_is_named() -> None:
    analysis = analyze(_snapshot(earlier=range(1, 4)))
    section = incident_blocks(analysis, IncidentView())[1]["text"]["text"]
    assert "*Insufficient evidence*" in section
    assert "The baseline already held the incident's rise" in section
