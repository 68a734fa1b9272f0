"""Render an :class:`~evals.runner.EvalReport`: a rich table and a PNG comparing fault types.

The per-fault-type breakdown is the point: an overall AC@1 of 0.8 can hide a fault type the
engine never gets right, and that is where the next improvement (or the next bad release) is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from rich import box
from rich.table import Table

from evals.metrics import SuiteMetrics
from evals.runner import EvalReport

_BARS = (("ac_at_1", "AC@1"), ("ac_at_3", "AC@3"), ("fault_type_accuracy", "fault type"))


def _row(name: str, metrics: SuiteMetrics) -> list[str]:
    return [
        name,
        str(metrics.n_cases),
        f"{metrics.ac_at_1:.2f}",
        f"{metrics.ac_at_3:.2f}",
        f"{metrics.avg_at_5:.2f}",
        f"{metrics.fault_type_accuracy:.2f}",
        f"{metrics.latency_p50_s * 1000:.0f}",
        f"{metrics.latency_p95_s * 1000:.0f}",
    ]


def metrics_table(report: EvalReport) -> Table:
    """Overall first, then one row per true fault type."""
    title = f"suite {report.suite}" + (f" · seeds {report.seeds}" if report.seeds else "")
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("fault type")
    for name in ("n", "AC@1", "AC@3", "Avg@5", "fault acc.", "p50 ms", "p95 ms"):
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
