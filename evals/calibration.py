"""Does confidence mean what it says? Reliability of the engine's confidence over a suite.

A confidence of 0.8 should be right four times in five. This module bins the cases by their
confidence and compares each bin's mean confidence with how often its root cause was right
(the reliability diagram), folds the gaps into the expected calibration error (ECE, weighted
by the bins' sizes), and reports the precision of each label a report shows (high, medium,
low; :func:`agent.report.confidence_label`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure
from pydantic import BaseModel

from agent.report import confidence_label
from evals.metrics import CaseResult

BINS = 10
LABELS = ("high", "medium", "low")


class ReliabilityBin(BaseModel):
    low: float
    high: float
    n_cases: int
    mean_confidence: float | None
    accuracy: float | None


class LabelPrecision(BaseModel):
    """How often a root cause shown with this confidence label was right."""

    label: str
    n_cases: int
    n_right: int
    precision: float | None


class Reliability(BaseModel):
    ece: float
    bins: list[ReliabilityBin]
    labels: list[LabelPrecision]
    n_cases: int

    def label(self, name: str) -> LabelPrecision:
        return next(p for p in self.labels if p.label == name)


def reliability(results: Sequence[CaseResult], bins: int = BINS) -> Reliability:
    """Reliability of ``results``' confidences (right = the root cause at rank 1)."""
    return reliability_of([(r.confidence, r.rank == 1) for r in results], bins)


def reliability_of(cases: Sequence[tuple[float, bool]], bins: int = BINS) -> Reliability:
    """Reliability bins, ECE and per-label precision of (confidence, right) pairs."""
    if not cases:
        raise ValueError("calibration over zero cases is undefined")
    rows: list[ReliabilityBin] = []
    ece = 0.0
    for i in range(bins):
        low, high = i / bins, (i + 1) / bins
        members = [(c, r) for c, r in cases if low <= c < high or (i == bins - 1 and c >= 1)]
        if not members:
            rows.append(
                ReliabilityBin(low=low, high=high, n_cases=0, mean_confidence=None, accuracy=None)
            )
            continue
        confidence = sum(c for c, _ in members) / len(members)
        accuracy = sum(r for _, r in members) / len(members)
        ece += len(members) / len(cases) * abs(confidence - accuracy)
        rows.append(
            ReliabilityBin(
                low=low,
                high=high,
                n_cases=len(members),
                mean_confidence=confidence,
                accuracy=accuracy,
            )
        )
    labels = []
    for label in LABELS:
        members = [(c, r) for c, r in cases if confidence_label(c) == label]
        right = sum(r for _, r in members)
        labels.append(
            LabelPrecision(
                label=label,
                n_cases=len(members),
                n_right=right,
                precision=right / len(members) if members else None,
            )
        )
    return Reliability(ece=ece, bins=rows, labels=labels, n_cases=len(cases))


def render_reliability(named: Sequence[tuple[str, Reliability]]) -> Figure:
    """The reliability diagram: accuracy per confidence bin against the diagonal, per suite,
    with each bin's share of cases underneath."""
    figure = Figure(figsize=(6.4, 6.4))
    top, bottom = figure.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    width = 0.8 / BINS / max(len(named), 1)
    for n, (name, rel) in enumerate(named):
        filled = [b for b in rel.bins if b.n_cases and b.mean_confidence is not None]
        top.plot(
            [b.mean_confidence for b in filled],
            [b.accuracy for b in filled],
            marker="o",
            label=f"{name} (ECE {rel.ece:.3f}, n={rel.n_cases})",
        )
        bottom.bar(
            [b.low + 0.1 / BINS + (n + 0.5) * width for b in rel.bins],
            [b.n_cases / rel.n_cases for b in rel.bins],
            width=width,
            label=name,
        )
    top.set_ylabel("share right (root cause at rank 1)")
    top.set_ylim(0, 1.02)
    top.set_title("Confidence reliability")
    top.legend(loc="upper left", fontsize="small")
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("share of cases")
    bottom.set_xlim(0, 1)
    figure.tight_layout()
    return figure


def write_reliability_png(named: Sequence[tuple[str, Reliability]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    render_reliability(named).savefig(path, dpi=110)
    return path
