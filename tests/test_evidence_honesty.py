"""Every metric item's quoted numbers support its direction, on real and simulated incidents.

Walks the real recorded incidents (the fixtures here, and ``../shared/real`` where a checkout
has it, in both modes) and 200 simulator seeds; see :mod:`evals.honesty`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.models import Evidence, Stats
from evals.honesty import contradicts, walk
from evals.runner import directory_cases, expand_suites, parse_seed_range, simulated_cases

ROOT = Path(__file__).resolve().parents[1]
SHARED_REAL = ROOT.parent / "shared" / "real"


def _item(pattern: str, before: float, value: float | None, median: float = 1.0) -> Evidence:
    from datetime import UTC, datetime

    now = datetime(2024, 1, 1, tzinfo=UTC)
    return Evidence(
        id="M1",
        source="metric",
        service="a",
        pattern=pattern,
        start=now,
        end=now,
        baseline=Stats(median=before),
        incident=Stats(median=median, max=median),
        value=value,
        score=5.0,
        description="",
    )


def test_a_dip_that_quotes_a_value_above_its_baseline_contradicts_itself() -> None:
    assert contradicts(_item("down", 0.489, 0.49))
    assert not contradicts(_item("down", 0.489, 0.2))
    assert contradicts(_item("up", 5.0, None, median=4.0))  # legacy item: its max
    assert not contradicts(_item("up", 5.0, 9.0))


def _described(values: list[float]) -> str:
    from agent.engine.detect.series import score_signal
    from agent.engine.evidence import build_evidence
    from agent.engine.service_score import ServiceScore
    from agent.models import Signal

    stamps = [60.0 * i for i in range(len(values))]
    signal = Signal(service="a", name="latency_p99_seconds", timestamps=stamps, values=values)
    finding = score_signal(signal, split=600.0, threshold=4.0)
    assert finding is not None
    (item,), _ = build_evidence([ServiceScore("a", metrics=[finding])], limit=5)
    return item.description


def test_a_z_at_the_detectors_cap_is_quoted_as_the_cap_not_as_a_measure() -> None:
    # A near-flat baseline makes a large step "50 sigma" or more: the number says only that it
    # hit the cap.
    capped = _described(
        [0.010, 0.0101, 0.010, 0.0099, 0.010, 0.0101, 0.010, 0.010, 0.0099, 0.010] + [0.5] * 5
    )
    assert "robust z ≥ 50, the cap" in capped and "z 50.0" not in capped
    measured = _described([1.0, 1.2, 0.9, 1.1, 1.0, 0.8, 1.2, 1.0, 0.9, 1.1] + [2.0] * 5)
    assert "the cap" not in measured and "robust z " in measured


def _real_cases() -> list:
    cases = directory_cases(ROOT / "tests" / "fixtures" / "real")[0]
    if SHARED_REAL.is_dir():
        for suite in expand_suites([str(SHARED_REAL)]):
            cases += directory_cases(Path(suite.path or "."))[0]
    return cases


def test_no_metric_item_on_real_incidents_contradicts_its_direction() -> None:
    tally = walk(_real_cases())
    assert tally.items > 0
    assert tally.contradicting == []


@pytest.mark.parametrize("seeds", ["16000-16099", "16100-16199"])
def test_no_metric_item_on_simulated_incidents_contradicts_its_direction(seeds: str) -> None:
    tally = walk(simulated_cases(parse_seed_range(seeds)))
    assert tally.cases == 100 and tally.items > 100
    assert tally.contradicting == []
