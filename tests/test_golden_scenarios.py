"""Golden scenarios: every fault type, several simulated incidents each, end to end.

Seeds are spread over a range (not one hand-picked seed), and the bar is the product's
promise per fault type: the true root cause in the top three for most incidents, and the
fault named right for most.
"""

from __future__ import annotations

import pytest

from agent.engine.pipeline import analyze
from agent.models import FaultType
from evals.simulator import simulate

FAULTS = [f for f in FaultType if f is not FaultType.UNKNOWN]
SEEDS = range(7100, 7104)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.value for f in FAULTS])
def test_fault_type_is_found_end_to_end(fault: FaultType) -> None:
    in_top3 = named_right = 0
    for seed in SEEDS:
        snapshot = simulate(seed, fault=fault).snapshot
        truth = snapshot.ground_truth
        assert truth is not None and truth.fault_type is fault
        analysis = analyze(snapshot.model_copy(update={"ground_truth": None}))
        ranked = [c.service for c in analysis.candidates]
        in_top3 += truth.service in ranked[:3]
        named_right += bool(analysis.candidates) and analysis.candidates[0].fault_type is fault
        assert analysis.evidence, "an analysis with a found root cause must cite evidence"
    assert in_top3 >= 3, f"{fault.value}: true root cause in top 3 for {in_top3}/4"
    assert named_right >= 2, f"{fault.value}: fault type named right for {named_right}/4"
