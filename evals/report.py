"""Render an :class:`~evals.runner.EvalReport`: a rich table and a PNG comparing fault types.

The per-fault-type breakdown is the point: an overall AC@1 of 0.8 can hide a fault type the
engine never gets right, and that is where the next improvement (or the next bad release) is.
With summarizer backends (``--backend``, ``--compare``) a second table and chart put the
backends side by side: valid output, citation validity, agreement, fallback, latency, cost.
With several suites, a summary table and chart put the suites side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from rich import box
from rich.table import Table

from evals.calibration import Reliability
from evals.metrics import SuiteMetrics, SuiteRow
from evals.runner import EvalReport

TIES_SHARED = "AC@1 ties shared"
TIES_CAPTION = (
    f"{TIES_SHARED}: a tie at the truth's score counted as its share "
    "(a three-way tie for first: 1/3), not as the alphabet lists it"
)
_BARS = (("ac_at_1", "AC@1"), ("ac_at_3", "AC@3"), ("fault_type_accuracy", "fault type"))


def _row(name: str, metrics: SuiteMetrics) -> list[str]:
    return [
        name,
        str(metrics.n_cases),
        f"{metrics.ac_at_1:.2f}",
        _rate(metrics.ac_at_1_ties_shared),
        f"{metrics.ac_at_3:.2f}",
        f"{metrics.avg_at_5:.2f}",
        f"{metrics.fault_type_accuracy:.2f}",
        f"{metrics.latency_p50_s * 1000:.0f}",
        f"{metrics.latency_p95_s * 1000:.0f}",
    ]


def metrics_table(report: EvalReport) -> Table:
    """Overall first, then one row per true fault type."""
    title = f"suite {report.suite}" + (f" · seeds {report.seeds}" if report.seeds else "")
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", caption=TIES_CAPTION)
    table.add_column("fault type")
    for name in ("n", "AC@1", TIES_SHARED, "AC@3", "Avg@5", "fault acc.", "p50 ms", "p95 ms"):
        table.add_column(name, justify="right")
    table.add_row(*_row("overall", report.metrics), style="bold", end_section=True)
    for fault, metrics in report.per_fault_type.items():
        table.add_row(*_row(fault, metrics))
    return table


def render_comparison(report: EvalReport) -> Figure:
    """Grouped bars: AC@1, AC@3 and fault-type accuracy per fault type, overall last."""
    groups = [*report.per_fault_type.items(), ("overall", report.metrics)]
    names = [f"{name}\n(n={m.n_cases})" for name, m in groups]
    x = np.arange(len(groups))
    width = 0.8 / len(_BARS)
    fig = Figure(figsize=(max(6.0, 0.9 * len(groups) + 2), 4.5), layout="constrained")
    ax = fig.add_subplot()
    for i, (field, label) in enumerate(_BARS):
        heights = [float(getattr(m, field)) for _, m in groups]
        ax.bar(x + (i - 1) * width, heights, width, label=label)
    ax.set_xticks(x, names, fontsize=8, rotation=20, ha="right")
    ax.axvline(len(groups) - 1.5, color="grey", linestyle="--", linewidth=0.8)
    ax.set_ylim(0, 1.18)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("fraction of cases")
    title = f"rca eval — suite {report.suite}" + (f", seeds {report.seeds}" if report.seeds else "")
    ax.set_title(title)
    ax.legend(loc="upper center", ncol=len(_BARS), fontsize=8, frameon=False)
    ax.grid(True, axis="y", alpha=0.3)
    return fig


def write_comparison_png(report: EvalReport, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    render_comparison(report).savefig(path, format="png", dpi=110)
    return path


# --- several suites -------------------------------------------------------------------------


def suites_table(rows: Sequence[SuiteRow]) -> Table:
    """One row per suite; each suite's per-fault-type rows are in its own table above."""
    table = Table(title="suites", box=box.SIMPLE_HEAD, title_justify="left", caption=TIES_CAPTION)
    table.add_column("suite", no_wrap=True)
    for name in ("n", "skipped", "AC@1", TIES_SHARED, "AC@3", "Avg@5", "fault acc."):
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(
            row.suite + (f" · seeds {row.seeds}" if row.seeds else ""),
            str(row.n_cases),
            str(row.n_skipped),
            f"{row.ac_at_1:.2f}",
            _rate(row.ac_at_1_ties_shared),
            f"{row.ac_at_3:.2f}",
            f"{row.avg_at_5:.2f}",
            f"{row.fault_type_accuracy:.2f}",
        )
    return table


def render_suites(rows: Sequence[SuiteRow]) -> Figure:
    """Grouped bars: AC@1, AC@3 and fault-type accuracy per suite."""
    names = [f"{row.suite}\n(n={row.n_cases})" for row in rows]
    x = np.arange(len(rows))
    width = 0.8 / len(_BARS)
    fig = Figure(figsize=(max(6.0, 1.1 * len(rows) + 2), 4.5), layout="constrained")
    ax = fig.add_subplot()
    for i, (field, label) in enumerate(_BARS):
        ax.bar(x + (i - 1) * width, [float(getattr(r, field)) for r in rows], width, label=label)
    ax.set_xticks(x, names, fontsize=8, rotation=20, ha="right")
    ax.set_ylim(0, 1.18)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("fraction of cases")
    ax.set_title(f"rca eval — {len(rows)} suites")
    ax.legend(loc="upper center", ncol=len(_BARS), fontsize=8, frameon=False)
    ax.grid(True, axis="y", alpha=0.3)
    return fig


def write_suites_png(rows: Sequence[SuiteRow], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    render_suites(rows).savefig(path, format="png", dpi=110)
    return path


# --- summarizer backends ---------------------------------------------------------------------

_RATES = (
    ("valid_output_rate", "valid output"),
    ("citation_validity", "citation validity"),
    ("top1_agreement", "agrees with top-1"),
    ("root_cause_accuracy", "root cause correct"),
    ("fallback_rate", "fallback"),
)


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def summarizer_table(reports: Sequence[EvalReport]) -> Table:
    """One row per backend: validity, grounding, agreement, fallback, latency, tokens, cost."""
    table = Table(title="summarizer backends", box=box.SIMPLE_HEAD, title_justify="left")
    longest = max((len(r.summarizer.backend) for r in reports if r.summarizer), default=7)
    table.add_column("backend", no_wrap=True, min_width=min(longest, 40))
    for name in ("n", "AC@1", "valid", "cites", "top-1", "right", "fallb."):
        table.add_column(name, justify="right")
    for name in ("p50 s", "tok in", "tok out", "USD"):
        table.add_column(name, justify="right")
    for report in reports:
        m = report.summarizer
        if m is None:
            continue
        table.add_row(
            m.backend,
            str(m.n_cases),
            f"{report.metrics.ac_at_1:.2f}",
            *(_rate(getattr(m, field)) for field, _ in _RATES),
            f"{m.latency_p50_s:.2f}",
            f"{m.tokens_in_mean:.0f}",
            f"{m.tokens_out_mean:.0f}",
            f"{m.cost_usd_total:.3g}",
        )
    return table


def render_backend_comparison(reports: Sequence[EvalReport]) -> Figure:
    """Rates per backend (grouped bars) and summarizer latency per backend (log scale)."""
    rows = [r.summarizer for r in reports if r.summarizer is not None]
    fig = Figure(figsize=(max(8.0, 2.2 * len(rows) + 4), 4.5), layout="constrained")
    rates, latency = fig.subplots(1, 2, width_ratios=[3, 1])
    x = np.arange(len(_RATES))
    width = 0.8 / max(len(rows), 1)
    for i, m in enumerate(rows):
        heights = [float(getattr(m, field) or 0.0) for field, _ in _RATES]
        rates.bar(x + (i - (len(rows) - 1) / 2) * width, heights, width, label=m.backend)
    rates.set_xticks(x, [label for _, label in _RATES], fontsize=8, rotation=15, ha="right")
    rates.set_ylim(0, 1.18)
    rates.set_ylabel("fraction")
    title = f"rca eval — suite {reports[0].suite}" if reports else "rca eval"
    rates.set_title(title + (f", seeds {reports[0].seeds}" if reports and reports[0].seeds else ""))
    rates.legend(loc="upper center", ncol=max(len(rows), 1), fontsize=8, frameon=False)
    rates.grid(True, axis="y", alpha=0.3)
    names = [m.backend for m in rows]
    latency.bar(names, [max(m.latency_p50_s, 1e-4) for m in rows], label="p50")
    latency.scatter(names, [max(m.latency_p95_s, 1e-4) for m in rows], color="black", label="p95")
    latency.set_yscale("log")
    latency.set_ylabel("summarizer latency (s)")
    latency.tick_params(axis="x", labelsize=8, rotation=15)
    latency.legend(fontsize=8, frameon=False, scatterpoints=1)
    return fig


def write_backend_comparison_png(reports: Sequence[EvalReport], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    render_backend_comparison(reports).savefig(path, format="png", dpi=110)
    return path


def _precision(rel: Reliability, label: str) -> str:
    p = rel.label(label)
    return f"{p.n_right}/{p.n_cases}" + (f" ({p.precision:.2f})" if p.precision is not None else "")


def reliability_table(named: Sequence[tuple[str, Reliability]]) -> Table:
    """Does confidence mean what it says: ECE, and how often each label's root cause was right."""
    table = Table(title="confidence", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("suite", no_wrap=True)
    for name in ("n", "ECE", "high ≥ 0.7 right", "medium right", "low right"):
        table.add_column(name, justify="right")
    for name, rel in named:
        table.add_row(
            name,
            str(rel.n_cases),
            f"{rel.ece:.3f}",
            _precision(rel, "high"),
            _precision(rel, "medium"),
            _precision(rel, "low"),
        )
    return table
