"""The evidence chart: the cited series, with the incident window and onsets marked, as a PNG.

An on-call engineer trusts a ranked root cause faster when they can *see* the memory climb or
the error lines burst at the onset the text claims. The chart draws exactly the series the
evidence points to, looked up in the snapshot the analysis ran on, so nothing is re-queried.
Uses matplotlib's object API (no pyplot global state, no display needed), imported only when
a chart is drawn: the report page (:mod:`agent.page`) uses the lookups here without it.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from agent.engine.detect.shares import failing_shares
from agent.models import Analysis, Evidence, LogRecord, Signal
from agent.report import cited_evidence, subject
from agent.snapshot import Snapshot
from agent.units import format_value

if TYPE_CHECKING:  # matplotlib takes most of a second to import: only when drawing
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_PANELS = 4
MAX_LINES_PER_PANEL = 6
_PLACEHOLDER = re.compile(r"<[^<>\s]*>")


def matching_signals(snapshot: Snapshot, evidence: Evidence) -> list[Signal]:
    """The snapshot series an evidence item points to.

    Exact ``(service, pod, name)`` first; when the engine rolled pods up to the service
    (``pod`` is empty) every pod's series of that name is returned, one line each.
    Series that differ only by labels are narrowed to the one the evidence describes. A
    success share the engine read as failures is drawn as the failing share it quoted.
    """
    if evidence.source != "metric" or not evidence.signal:
        return []
    own = [s for s in snapshot.signals if s.service == evidence.service]
    same = [s for s in own if s.name == evidence.signal] or [
        s for s in failing_shares(own) if s.name == evidence.signal
    ]
    if evidence.pod:
        same = [s for s in same if s.pod == evidence.pod] or same
    # Evidence carries no labels; the engine's description names the series_id it scored
    # (``svc:latency{quantile=p99}``), which singles it out among its label siblings.
    if len(same) > 1 and any(s.labels for s in same):
        same = [s for s in same if s.series_id in evidence.description] or same
    return same


def template_regex(template: str) -> re.Pattern[str]:
    """A log template (``... <*> ...``, ``<NUM>``, ``<IP>``) as a regex over raw messages.

    Template miners split on whitespace, so any run of spaces in the template matches any run
    of whitespace in the message (``ERROR:  could`` has two).
    """
    literals = (
        r"\s+".join(re.escape(w) for w in re.split(r"\s+", part))
        for part in _PLACEHOLDER.split(template.strip())
    )
    return re.compile(".*?".join(literals), re.DOTALL)


def matching_logs(snapshot: Snapshot, evidence: Evidence) -> list[LogRecord]:
    if evidence.source != "log":
        return []
    records = [r for r in snapshot.logs if r.service == evidence.service]
    if evidence.pod:
        records = [r for r in records if r.pod in (None, evidence.pod)]
    if evidence.template:
        pattern = template_regex(evidence.template)
        return [r for r in records if pattern.fullmatch(r.message.strip())]
    if evidence.sample:
        sample = evidence.sample.split()
        return [r for r in records if r.message.split() == sample]
    return []


def _plottable(analysis: Analysis, snapshot: Snapshot) -> list[Evidence]:
    """Up to :data:`MAX_PANELS` evidence items that have data: metrics first, one log panel."""
    chosen: list[Evidence] = []
    logs: list[Evidence] = []
    for ev in cited_evidence(analysis, limit=len(analysis.evidence)):
        if ev.source == "metric" and matching_signals(snapshot, ev):
            chosen.append(ev)
        elif ev.source == "log" and matching_logs(snapshot, ev):
            logs.append(ev)
    if logs:
        chosen = [*chosen[: MAX_PANELS - 1], logs[0]]
    return chosen[:MAX_PANELS]


def _mark_window(ax: Axes, analysis: Analysis, evidence: Evidence) -> None:
    from matplotlib.dates import DateFormatter, date2num

    win = analysis.window
    start, incident, end = (float(date2num(t)) for t in (win.start, win.incident_start, win.end))
    ax.axvspan(incident, end, color="tab:red", alpha=0.08, label="incident window")
    if evidence.onset is not None:
        onset = float(date2num(evidence.onset))
        ax.axvline(onset, color="tab:red", linestyle="--", linewidth=1, label="onset")
    ax.set_xlim(start, end)
    ax.xaxis.set_major_formatter(DateFormatter("%H:%M", tz=UTC))
    ax.grid(True, alpha=0.3)


def _draw_metric(ax: Axes, analysis: Analysis, evidence: Evidence, snapshot: Snapshot) -> None:
    from matplotlib.dates import date2num
    from matplotlib.ticker import FuncFormatter

    series = matching_signals(snapshot, evidence)[:MAX_LINES_PER_PANEL]
    for signal in series:
        times = date2num([datetime.fromtimestamp(t, tz=UTC) for t in signal.timestamps])
        values = [float("nan") if v is None else v for v in signal.values]
        label = signal.pod or signal.series_id
        ax.plot(times, values, linewidth=1.2, label=label if len(series) > 1 else None)
    if evidence.baseline.median is not None:
        ax.axhline(evidence.baseline.median, color="grey", linestyle=":", label="baseline median")
    unit = evidence.unit or (series[0].unit if series else "")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: format_value(value, unit)))


def _draw_log(ax: Axes, evidence: Evidence, snapshot: Snapshot) -> None:
    from matplotlib.dates import date2num

    per_minute = Counter(
        r.timestamp.replace(second=0, microsecond=0) for r in matching_logs(snapshot, evidence)
    )
    minutes = sorted(per_minute)
    counts = [per_minute[m] for m in minutes]
    ax.bar(
        date2num(minutes),
        counts,
        width=1 / 1440,
        color="tab:purple",
        align="edge",
        label="matching lines",
    )
    ax.set_ylabel("lines / min")


def render_evidence_chart(analysis: Analysis, snapshot: Snapshot) -> Figure:
    """One panel per plottable evidence item; a single note panel when there is none."""
    from matplotlib.figure import Figure

    evidence = _plottable(analysis, snapshot)
    fig = Figure(figsize=(10, 2.6 * max(1, len(evidence))), layout="constrained")
    if not evidence:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "No metric or log evidence to plot", ha="center", va="center")
        ax.set_axis_off()
        return fig
    axes = fig.subplots(len(evidence), 1, sharex=True, squeeze=False)[:, 0]
    for i, (ax, ev) in enumerate(zip(axes, evidence, strict=True)):
        if ev.source == "metric":
            _draw_metric(ax, analysis, ev, snapshot)
        else:
            _draw_log(ax, ev, snapshot)
        _mark_window(ax, analysis, ev)
        title = f"[{ev.id}] {subject(ev)} — {ev.pattern}"
        ax.set_title(title if len(title) <= 90 else title[:89] + "…", loc="left", fontsize=10)
        if i == 0 or len(ax.get_lines()) > 2:
            ax.legend(loc="upper left", fontsize=7, frameon=False)
    cause = analysis.root_cause
    heading = f"{cause.service}: {cause.fault_type.value}" if cause else "insufficient evidence"
    fig.suptitle(f"Evidence — {heading} (confidence {analysis.confidence:.2f})")
    axes[-1].set_xlabel("time (UTC)")
    return fig


def write_evidence_chart(analysis: Analysis, snapshot: Snapshot, path: Path) -> Path:
    """Render and save the chart as PNG; parent directories are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    render_evidence_chart(analysis, snapshot).savefig(path, format="png", dpi=110)
    return path
