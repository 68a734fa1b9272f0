"""Accuracy metrics for root-cause ranking, as used in the RCA literature (RCAEval, MicroRCA).

* ``AC@k``: fraction of cases whose true root-cause service is among the top ``k`` candidates.
* ``Avg@k``: mean of AC@1..AC@k; rewards getting the cause *near* the top, not only at it.
* fault-type accuracy: fraction of all cases whose top-1 candidate names the true fault type.
  It is counted over every case, not only those whose service was right, so a wrong service
  with the right fault type still counts: the number says how well the engine names faults.

Everything here is pure: the runner produces :class:`CaseResult` rows, these functions fold
them into :class:`SuiteMetrics`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel


class CaseResult(BaseModel):
    """One evaluated case: the truth, what the engine ranked, and how long analysis took."""

    case: str
    truth_service: str
    truth_fault: str
    predicted: list[str]
    predicted_fault: str | None
    rank: int | None
    latency_s: float
    confidence: float


class SuiteMetrics(BaseModel):
    ac_at_1: float
    ac_at_3: float
    avg_at_5: float
    fault_type_accuracy: float
    n_cases: int
    latency_p50_s: float
    latency_p95_s: float


def rank_of(truth: str, predicted: Sequence[str]) -> int | None:
    """1-based position of ``truth`` in ``predicted``; ``None`` when it is not ranked at all."""
    for position, service in enumerate(predicted, start=1):
        if service == truth:
            return position
    return None


def accuracy_at_k(ranks: Sequence[int | None], k: int) -> float:
    """AC@k over the ranks of the true cause (``None`` = not ranked: a miss at every k)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not ranks:
        raise ValueError("accuracy over zero cases is undefined")
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)


def avg_at_k(ranks: Sequence[int | None], k: int = 5) -> float:
    """Avg@k = mean of AC@1..AC@k."""
    return sum(accuracy_at_k(ranks, j) for j in range(1, k + 1)) / k


def fault_type_accuracy(results: Sequence[CaseResult]) -> float:
    if not results:
        raise ValueError("accuracy over zero cases is undefined")
    return sum(1 for r in results if r.predicted_fault == r.truth_fault) / len(results)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` in [0, 100]."""
    if not values:
        raise ValueError("percentile of zero values is undefined")
    return float(np.percentile(np.asarray(values, dtype=float), q))


def summarize(results: Sequence[CaseResult]) -> SuiteMetrics:
    """Fold case rows into the suite's headline numbers."""
    ranks = [r.rank for r in results]
    latencies = [r.latency_s for r in results]
    return SuiteMetrics(
        ac_at_1=accuracy_at_k(ranks, 1),
        ac_at_3=accuracy_at_k(ranks, 3),
        avg_at_5=avg_at_k(ranks, 5),
        fault_type_accuracy=fault_type_accuracy(results),
        n_cases=len(results),
        latency_p50_s=percentile(latencies, 50),
        latency_p95_s=percentile(latencies, 95),
    )


def per_fault_type(results: Sequence[CaseResult]) -> dict[str, SuiteMetrics]:
    """:func:`summarize` per true fault type, sorted by name."""
    groups: dict[str, list[CaseResult]] = {}
    for result in results:
        groups.setdefault(result.truth_fault, []).append(result)
    return {fault: summarize(groups[fault]) for fault in sorted(groups)}
