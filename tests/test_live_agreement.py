"""evals.live_agreement without a server: comparing two analyses, the summary, the CLI's errors.

The live half runs against the real Prometheus in ``test_live_vs_snapshot.py``.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from agent.engine.pipeline import analyze
from agent.models import Analysis
from evals.live_agreement import compare, main, same_quantities, summarize
from evals.simulator import Scenario, simulate


@pytest.fixture(scope="module")
def case() -> tuple[Scenario, Analysis]:
    scenario = simulate(8)
    return scenario, analyze(scenario.snapshot.model_copy(update={"ground_truth": None}))


def test_an_analysis_agrees_with_itself(case: tuple[Scenario, Analysis]) -> None:
    scenario, analysis = case
    agreement = compare(scenario, analysis, analysis)
    assert agreement.same_root_cause and agreement.same_fault_type and agreement.same_top3
    assert agreement.top3_shared == min(3, len(analysis.candidates))
    assert agreement.snapshot_right == agreement.live_right
    assert agreement.snapshot_right == (analysis.candidates[0].service == scenario.plan.service)


def test_a_different_leader_and_a_swapped_bystander_are_told_apart(
    case: tuple[Scenario, Analysis],
) -> None:
    scenario, analysis = case
    assert len(analysis.candidates) >= 4
    first, second, third, fourth = analysis.candidates[:4]
    demoted = analysis.model_copy(update={"candidates": [second, first, fourth, third]})

    agreement = compare(scenario, analysis, demoted)

    assert not agreement.same_root_cause and not agreement.same_fault_type
    assert not agreement.same_top3
    assert agreement.top3_shared == 2
    assert agreement.live_right == (second.service == scenario.plan.service)


def test_the_summary_counts_shares(case: tuple[Scenario, Analysis]) -> None:
    scenario, analysis = case
    same = compare(scenario, analysis, analysis)
    empty = compare(scenario, analysis, analysis.model_copy(update={"candidates": []}))

    metrics = summarize([same, same, empty, empty])

    assert metrics["n"] == 4
    assert metrics["same_root_cause"] == 0.5
    assert metrics["top3_shared_2_or_more"] == 0.5
    assert summarize([])["n"] == 0


def test_only_scenarios_recorded_as_a_live_collection_compare() -> None:
    recorded = simulate(1)
    assert same_quantities(recorded)
    assert {s.name for s in recorded.snapshot.signals} >= {
        "http_requests:rate",
        "http_request_duration_seconds:p99",
        "container_cpu_usage_seconds:rate",
    }, "the default catalog's names"
    assert not same_quantities(simulate(8))  # Prometheus names, but drawn variants
    assert not same_quantities(simulate(0))  # datadog names
    assert not same_quantities(simulate(6))  # rcaeval, rolled up per service


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ("x", "--seeds must be a range like"),
        ("0-0", "no scenario recorded as a live collection in seeds 0-0"),
    ],
)
def test_bad_seed_ranges_are_usage_errors(seeds: str, message: str) -> None:
    result = CliRunner().invoke(main, ["--seeds", seeds])
    assert result.exit_code == 2
    assert message in result.output
