"""Accuracy metrics for root-cause ranking, as used in the RCA literature (RCAEval, MicroRCA).

* ``AC@k``: fraction of cases whose true root-cause service is among the top ``k`` candidates.
* ``Avg@k``: mean of AC@1..AC@k; rewards getting the cause *near* the top, not only at it.
* ``AC@k, ties shared``: candidates of equal score are listed by name, so a truth tied with
  others for first place counts as an AC@1 hit or miss by the alphabet. Shared, a truth in a
  tie of ``m`` that spans ``k`` counts ``(k - first + 1) / m``: what AC@k would be with the
  tie listed in a random order, and what another system's names would give on average.
* fault-type accuracy: fraction of all cases whose top-1 candidate names the true fault type.
  It is counted over every case, not only those whose service was right, so a wrong service
  with the right fault type still counts: the number says how well the engine names faults.

For a summarizer backend (``rca eval --backend``), per case and then per suite:

* valid-output rate: model answers that passed the guard (schema, citations, known service),
  over all answers including repairs; extractive counts as valid;
* citation validity: cited evidence ids that exist, over all ids cited in all answers;
* top-1 agreement: the summary's root cause is the engine's top candidate;
* fallback rate: cases the extractive fallback wrote; plus latency, tokens in/out, cost.

Everything here is pure: the runner produces :class:`CaseResult` / :class:`SummaryCase` rows,
these functions fold them into :class:`SuiteMetrics` / :class:`SummarizerMetrics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel

if TYPE_CHECKING:
    from evals.calibration import Reliability


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
    tied_before: int = 0  # candidates listed before the truth with its score (a tie by name)
    tied_after: int = 0  # and after it


class SuiteMetrics(BaseModel):
    ac_at_1: float
    ac_at_3: float
    avg_at_5: float
    fault_type_accuracy: float
    n_cases: int
    latency_p50_s: float
    latency_p95_s: float
    ac_at_1_ties_shared: float | None = None
    ac_at_3_ties_shared: float | None = None


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


def shared_hit(result: CaseResult, k: int) -> float:
    """The case's AC@k with a tie at the truth's score listed in a random order: the share
    of the tie's places that lie within the top ``k``."""
    if result.rank is None:
        return 0.0
    first = result.rank - result.tied_before
    size = result.tied_before + 1 + result.tied_after
    return min(1.0, max(0.0, (k - first + 1) / size))


def accuracy_ties_shared(results: Sequence[CaseResult], k: int) -> float:
    if not results:
        raise ValueError("accuracy over zero cases is undefined")
    return sum(shared_hit(r, k) for r in results) / len(results)


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
        ac_at_1_ties_shared=accuracy_ties_shared(results, 1),
        ac_at_3_ties_shared=accuracy_ties_shared(results, 3),
    )


def per_fault_type(results: Sequence[CaseResult]) -> dict[str, SuiteMetrics]:
    """:func:`summarize` per true fault type, sorted by name."""
    groups: dict[str, list[CaseResult]] = {}
    for result in results:
        groups.setdefault(result.truth_fault, []).append(result)
    return {fault: summarize(groups[fault]) for fault in sorted(groups)}


class SuiteRow(BaseModel):
    """One suite's headline numbers in the summary of a several-suite ``rca eval``."""

    suite: str
    seeds: str | None
    n_cases: int
    n_skipped: int
    ac_at_1: float
    ac_at_3: float
    avg_at_5: float
    fault_type_accuracy: float
    ac_at_1_ties_shared: float | None = None
    ece: float | None = None
    high_n: int = 0
    high_precision: float | None = None


def suite_row(
    suite: str,
    seeds: str | None,
    metrics: SuiteMetrics,
    skipped: int,
    calibration: Reliability | None = None,
) -> SuiteRow:
    high = calibration.label("high") if calibration is not None else None
    return SuiteRow(
        suite=suite,
        seeds=seeds,
        n_cases=metrics.n_cases,
        n_skipped=skipped,
        ac_at_1=metrics.ac_at_1,
        ac_at_3=metrics.ac_at_3,
        avg_at_5=metrics.avg_at_5,
        fault_type_accuracy=metrics.fault_type_accuracy,
        ac_at_1_ties_shared=metrics.ac_at_1_ties_shared,
        ece=calibration.ece if calibration is not None else None,
        high_n=high.n_cases if high is not None else 0,
        high_precision=high.precision if high is not None else None,
    )


# --- summarizer backends ---------------------------------------------------------------------


class SummaryCase(BaseModel):
    """How one backend summarized one case: validity, grounding, agreement, cost, latency."""

    case: str
    backend: str
    answers: int  # model answers (0 for extractive, 1 or 2 with the repair call)
    answers_valid: int
    cited: int
    cited_valid: int
    fallback: str | None
    agrees_top1: bool | None  # None: no root cause (insufficient evidence)
    root_cause_correct: bool | None
    latency_s: float
    tokens_in: int
    tokens_out: int
    cost_usd: float


class SummarizerMetrics(BaseModel):
    """Suite-level numbers of one summarizer backend (``rca eval --backend``)."""

    backend: str
    n_cases: int
    valid_output_rate: float  # model answers that passed the guard (final text for extractive)
    citation_validity: float | None  # cited evidence ids that exist; None if nothing was cited
    top1_agreement: float  # root cause == the engine's top-1 candidate
    root_cause_accuracy: float  # root cause == ground truth
    fallback_rate: float
    latency_p50_s: float
    latency_p95_s: float
    tokens_in_mean: float
    tokens_out_mean: float
    tokens_in_p95: float
    cost_usd_total: float


def _share(flags: Sequence[bool | None]) -> float:
    return sum(1 for f in flags if f) / len(flags) if flags else 0.0


def summarize_backend(backend: str, cases: Sequence[SummaryCase]) -> SummarizerMetrics:
    """Fold per-case summary rows into a backend's headline numbers."""
    if not cases:
        raise ValueError("summary metrics over zero cases are undefined")
    answers = sum(c.answers for c in cases)
    valid = sum(c.answers_valid for c in cases)
    cited = sum(c.cited for c in cases)
    tokens_in = [float(c.tokens_in) for c in cases]
    latencies = [c.latency_s for c in cases]
    return SummarizerMetrics(
        backend=backend,
        n_cases=len(cases),
        valid_output_rate=valid / answers if answers else 1.0,
        citation_validity=sum(c.cited_valid for c in cases) / cited if cited else None,
        top1_agreement=_share([c.agrees_top1 for c in cases]),
        root_cause_accuracy=_share([c.root_cause_correct for c in cases]),
        fallback_rate=_share([c.fallback is not None for c in cases]),
        latency_p50_s=percentile(latencies, 50),
        latency_p95_s=percentile(latencies, 95),
        tokens_in_mean=float(np.mean(tokens_in)),
        tokens_out_mean=float(np.mean([c.tokens_out for c in cases])),
        tokens_in_p95=percentile(tokens_in, 95),
        cost_usd_total=sum(c.cost_usd for c in cases),
    )
