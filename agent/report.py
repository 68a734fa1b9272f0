"""Render an :class:`~agent.models.Analysis` for people: a rich terminal report and Markdown.

Both renderings are pure functions of the analysis, so the CLI, the demo and the eval runner
print exactly what an API client would get in JSON, only easier to read at 3 a.m. Numbers
always come with their unit and with the baseline they are compared against, because a bare
"850" tells an on-call engineer nothing.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from rich import box
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from agent.models import Analysis, Candidate, ChangeVerdict, Evidence, Stats
from agent.units import baseline_text, change_ratio, duration_text, format_value, plain
from agent.window import window_line

MAX_EVIDENCE_SHOWN = 6
MAX_CANDIDATES_SHOWN = 5

# --- numbers and times --------------------------------------------------------------------


def _rate(value: float) -> str:
    return f"{plain(value)}/min"


def change_text(evidence: Evidence) -> str:
    """``baseline -> incident`` in one phrase, quoting the value the finding rests on.

    A rise or dip is shown at the level it held (its depth for a dip) and for how long, a
    one-sample spike as a spike, a log pattern as line counts and rates. Items stored before
    findings carried that level fall back to the incident's peak or median.
    """
    base, inc, unit = evidence.baseline, evidence.incident, evidence.unit
    if evidence.pattern == "unbaselined":
        return f"no log lines in the baseline → {inc.count} in incident: cannot tell new from old"
    if evidence.pattern == "origin":
        if base.mean is None:  # the logs begin after the baseline: nothing to count there
            text = f"no log lines in the baseline → first error of {inc.count} traces in incident"
            return text + (f" ({_rate(inc.mean)} while logs ran)" if inc.mean is not None else "")
        text = f"first error of {base.count} traces in baseline → {inc.count} in incident"
        if base.mean is not None and inc.mean is not None:
            text += f" ({_rate(base.mean)} → {_rate(inc.mean)})"
        return text
    if evidence.pattern == "unreached":
        return f"in {inc.count} of its companions' traces where {base.count} were due"
    if evidence.source == "log":
        text = f"{base.count} lines in baseline → {inc.count} in incident"
        if base.mean is not None and inc.mean is not None:
            text += f" ({_rate(base.mean)} → {_rate(inc.mean)})"
        return text
    before = _central(base)
    if evidence.pattern == "canary":
        after = evidence.value if evidence.value is not None else _central(inc)
        return (
            f"reference median {baseline_text(before, after, unit)} → new pods' median "
            f"{format_value(after, unit)}{change_ratio(before, after)}"
        )
    if evidence.pattern == "vanished":
        return f"baseline median {format_value(before, unit)} → stopped reporting"
    after = evidence.value
    what = "held" if evidence.pattern == "up" else "dipped to"
    if after is None:  # stored before findings carried their level
        after, what = (
            (inc.max, "incident peak")
            if evidence.pattern == "up"
            else (_central(inc), "incident median")
        )
    if evidence.samples == 1:
        what = "one-sample spike to" if evidence.pattern == "up" else "one-sample dip to"
    text = (
        f"baseline median {baseline_text(before, after, unit)} → {what} "
        f"{format_value(after, unit)}{change_ratio(before, after)}"
    )
    if evidence.samples and evidence.samples > 1:
        text += f" for {duration_text((evidence.end - evidence.start).total_seconds())}"
    return text


def _central(stats: Stats) -> float | None:
    return stats.median if stats.median is not None else stats.mean


def clock(value: datetime) -> str:
    return value.strftime("%H:%M:%S")


def stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def offset_text(value: datetime, reference: datetime) -> str:
    """``value`` relative to ``reference``, e.g. ``+3m05s`` (the Markdown and Slack reports)."""
    seconds = int((value - reference).total_seconds())
    sign = "+" if seconds >= 0 else "-"
    minutes, secs = divmod(abs(seconds), 60)
    return f"{sign}{minutes}m{secs:02d}s"


def onset_text(evidence: Evidence, incident_start: datetime) -> str:
    if evidence.onset is None:
        return "onset unknown"
    return f"onset {clock(evidence.onset)} ({offset_text(evidence.onset, incident_start)})"


def confidence_text(confidence: float) -> str:
    return f"{confidence:.2f}, {confidence_label(confidence)}"


def confidence_label(confidence: float) -> str:
    if confidence >= 0.7:
        return "high"
    if confidence >= 0.4:
        return "medium"
    return "low"


def subject(evidence: Evidence) -> str:
    """What the evidence points at: ``service/pod · series`` or the log template."""
    owner = f"{evidence.service}/{evidence.pod}" if evidence.pod else evidence.service
    if evidence.source == "log":
        return f"{owner} · log “{evidence.template or evidence.sample or evidence.pattern}”"
    return f"{owner} · {evidence.signal or '?'}"


def cited_evidence(analysis: Analysis, limit: int = MAX_EVIDENCE_SHOWN) -> list[Evidence]:
    """The root cause's own evidence first (what the claim rests on), then the strongest rest."""
    top = analysis.candidates[0].evidence_ids if analysis.candidates else []
    first = [e for i in top if (e := analysis.evidence_by_id(i)) is not None]
    rest = sorted((e for e in analysis.evidence if e.id not in top), key=lambda e: -e.score)
    return (first + rest)[:limit]


# --- terminal -----------------------------------------------------------------------------


def _headline(analysis: Analysis) -> RenderableType:
    conf = confidence_text(analysis.confidence)
    if analysis.insufficient_evidence or analysis.root_cause is None:
        title = Text("Insufficient evidence", style="bold yellow")
        title.append(" — no root cause can be named with confidence", style="yellow")
        title.append(f"\nconfidence {conf}", style="dim")
        body: list[RenderableType] = [title]
        if analysis.summary:
            body.append(Text(analysis.summary))
        return Panel(Group(*body), title="rca", border_style="yellow", box=box.ROUNDED)
    cause = analysis.root_cause
    line = Text("Root cause: ", style="bold")
    line.append(cause.service, style="bold red")
    line.append(" — ")
    line.append(cause.fault_type.value, style="bold magenta")
    line.append(f"   confidence {conf}", style="bold")
    parts: list[RenderableType] = [line]
    if summary := cause.summary or analysis.summary:
        parts.append(Text(summary))
    return Panel(Group(*parts), title="rca", border_style="red", box=box.ROUNDED)


def _context(analysis: Analysis) -> Text:
    win = analysis.window
    text = Text(f"window {window_line(win.start, win.end, win.step_s)}, ", style="dim")
    text.append(f"incident from {clock(win.incident_start)}", style="dim")
    trig = analysis.trigger
    if trig.alert_name:
        text.append(f" · alert {trig.alert_name}", style="dim")
    text.append(f" · analysis {analysis.id}", style="dim")
    return text


def _candidates_table(candidates: list[Candidate]) -> Table:
    table = Table(title="Ranked candidates", box=box.SIMPLE_HEAD, title_justify="left")
    for name, justify in (("#", "right"), ("service", "left"), ("fault type", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_column("score", justify="right")
    table.add_column("onset")
    table.add_column("evidence")
    for rank, cand in enumerate(candidates[:MAX_CANDIDATES_SHOWN], start=1):
        table.add_row(
            str(rank),
            cand.service,
            cand.fault_type.value,
            f"{cand.score:.2f}",
            clock(cand.onset) if cand.onset else "—",
            ", ".join(cand.evidence_ids) or "—",
        )
    return table


def _evidence_lines(analysis: Analysis) -> list[RenderableType]:
    lines: list[RenderableType] = [Text("Evidence", style="bold")]
    for ev in cited_evidence(analysis):
        line = Text(f"  • [{ev.id}] ", style="bold cyan")
        line.append(subject(ev), style="bold")
        line.append(f"  {ev.pattern}\n", style="magenta")
        line.append(f"      {change_text(ev)} · {onset_text(ev, analysis.window.incident_start)}")
        if ev.description:
            line.append(f"\n      {ev.description}", style="dim")
        lines.append(line)
    if len(lines) == 1:
        lines.append(Text("  (no anomalous series or log patterns found)", style="dim"))
    return lines


def _section(title: str, rows: Iterable[Text], style: str = "bold") -> list[RenderableType]:
    body = list(rows)
    return [Text(title, style=style), *body] if body else []


def terminal_renderables(analysis: Analysis) -> list[RenderableType]:
    """The report as rich renderables, top to bottom."""
    out: list[RenderableType] = [_headline(analysis), _context(analysis)]
    if analysis.candidates:
        out.append(_candidates_table(analysis.candidates))
    out.extend(_evidence_lines(analysis))
    out.extend(
        _section("Changes in the window", (Text(f"  {line}") for line in change_lines(analysis)))
    )
    timeline = (
        Text(f"  {clock(ev.time)}  {ev.service:<16} {ev.text}")
        + Text(f"  [{ev.evidence_id}]" if ev.evidence_id else "", style="cyan")
        for ev in analysis.timeline
    )
    out.extend(_section("Timeline", timeline))
    steps = (Text(f"  {n}. {step}") for n, step in enumerate(analysis.next_steps, start=1))
    out.extend(_section("Next steps", steps))
    failures = (
        Text(f"  ! {f.source}: {f.error}", style="yellow") for f in analysis.source_failures
    )
    out.extend(_section("Source failures (analysis ran without them)", failures, "bold yellow"))
    out.extend(_section("Notes", (Text(f"  - {note}", style="dim") for note in analysis.notes)))
    out.append(Text(_footer(analysis), style="dim"))
    return out


def verdict_text(verdict: ChangeVerdict) -> str:
    """``suspect: checkout v1 → v2 (deploy at 10:40:00, namespace shop): new pods are worse
    on errors [M3]``; the namespace only where it is known."""
    change = verdict.change
    versions = " → ".join(v for v in (change.from_version, change.to_version) if v)
    what = f"{change.service} {versions}".strip()
    where = f", namespace {change.namespace}" if change.namespace else ""
    text = f"{verdict.verdict}: {what} ({change.kind.value} at {clock(change.at)}{where})"
    if verdict.reasons:
        text += ": " + "; ".join(r.split(": ", 1)[-1] for r in verdict.reasons)
    if verdict.evidence_ids:
        text += " [" + ", ".join(verdict.evidence_ids) + "]"
    if change.link:
        text += f" {change.link}"
    return text


def change_lines(analysis: Analysis) -> list[str]:
    """Each judged change, suspects first."""
    order = {"suspect": 0, "unknown": 1, "cleared": 2}
    ranked = sorted(analysis.changes, key=lambda v: (order[v.verdict], v.change.at))
    return [verdict_text(v) for v in ranked]


def _footer(analysis: Analysis) -> str:
    parts = [f"backend {analysis.backend}", f"rca-agent {analysis.version}"]
    if "total" in analysis.timings:
        parts.append(f"took {analysis.timings['total']:.2f} s")
    return " · ".join(parts)


def print_report(analysis: Analysis, console: Console) -> None:
    for renderable in terminal_renderables(analysis):
        console.print(renderable)


def report_text(analysis: Analysis, width: int = 100) -> str:
    """The terminal report as plain text (tests, logs, anywhere without a TTY)."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False)
    print_report(analysis, console)
    return buffer.getvalue()


# --- markdown -----------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def _md_headline(analysis: Analysis) -> list[str]:
    conf = confidence_text(analysis.confidence)
    if analysis.insufficient_evidence or analysis.root_cause is None:
        lines = [
            "> **Insufficient evidence** — no root cause can be named with confidence.",
            f"> Confidence: {conf}",
        ]
        return [*lines, "", analysis.summary] if analysis.summary else lines
    cause = analysis.root_cause
    return [
        f"**Root cause:** `{cause.service}` — **{cause.fault_type.value}** (confidence {conf})",
        "",
        cause.summary or analysis.summary,
    ]


def _md_candidates(analysis: Analysis) -> list[str]:
    lines = ["## Ranked candidates", "", "| # | service | fault type | score | onset | evidence |"]
    lines.append("|---:|---|---|---:|---|---|")
    for rank, cand in enumerate(analysis.candidates, start=1):
        onset = clock(cand.onset) if cand.onset else "—"
        evidence = ", ".join(cand.evidence_ids) or "—"
        lines.append(
            f"| {rank} | `{cand.service}` | {cand.fault_type.value} | {cand.score:.2f} "
            f"| {onset} | {evidence} |"
        )
    return lines


def _md_evidence(analysis: Analysis) -> list[str]:
    lines = ["## Evidence", ""]
    if not analysis.evidence:
        return [*lines, "No anomalous series or log patterns were found."]
    lines += ["| id | what | pattern | baseline → incident | onset | link |"]
    lines.append("|---|---|---|---|---|---|")
    for ev in cited_evidence(analysis, limit=len(analysis.evidence)):
        link = f"[open]({ev.link})" if ev.link else "—"
        lines.append(
            f"| **{ev.id}** | {_cell(subject(ev))} | {ev.pattern} | {_cell(change_text(ev))} "
            f"| {onset_text(ev, analysis.window.incident_start)} | {link} |"
        )
    details = [
        f"- **{ev.id}**: {_cell(ev.description)}" for ev in analysis.evidence if ev.description
    ]
    return [*lines, "", *details] if details else lines


def _trigger(analysis: Analysis) -> str:
    trigger = analysis.trigger
    if trigger.alert_name:
        return f"alert `{trigger.alert_name}`" + (
            f" ({trigger.kind})" if trigger.kind != "alert" else ""
        )
    return trigger.kind


def markdown_report(analysis: Analysis, chart: str | None = None) -> str:
    """The report as Markdown; ``chart`` is a path or URL of the evidence PNG to embed."""
    win = analysis.window
    lines = [f"# Root cause analysis {analysis.id}", ""]
    lines += _md_headline(analysis)
    window = window_line(win.start, win.end, win.step_s)
    window += f", incident from {stamp(win.incident_start)}"
    lines += [
        "",
        f"- Window: {window}",
        f"- Trigger: {_trigger(analysis)}",
        f"- Backend: {analysis.backend}, rca-agent {analysis.version}",
        "",
    ]
    if analysis.candidates:
        lines += [*_md_candidates(analysis), ""]
    lines += [*_md_evidence(analysis), ""]
    if analysis.changes:
        lines += [
            "## Changes in the window",
            "",
            *(f"- {line}" for line in change_lines(analysis)),
            "",
        ]
    if chart:
        lines += [f"![evidence chart]({chart})", ""]
    if analysis.timeline:
        lines += ["## Timeline", ""]
        for event in analysis.timeline:
            cite = f" [{event.evidence_id}]" if event.evidence_id else ""
            lines.append(f"- `{clock(event.time)}` **{event.service}**: {event.text}{cite}")
        lines.append("")
    if analysis.next_steps:
        lines += ["## Next steps", ""]
        lines += [f"{n}. {step}" for n, step in enumerate(analysis.next_steps, start=1)]
        lines.append("")
    if analysis.source_failures:
        lines += ["## Source failures", "", "The analysis ran without these sources:", ""]
        lines += [f"- **{f.source}**: {f.error}" for f in analysis.source_failures]
        lines.append("")
    if analysis.notes:
        lines += ["## Notes", "", *(f"- {note}" for note in analysis.notes), ""]
    return "\n".join(lines)


def write_markdown(analysis: Analysis, path: Path, chart: Path | None = None) -> Path:
    """Write the Markdown report; the chart is linked relative to the report when possible."""
    link: str | None = None
    if chart is not None:
        try:
            link = chart.resolve().relative_to(path.resolve().parent).as_posix()
        except ValueError:
            link = chart.resolve().as_posix()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown_report(analysis, chart=link), encoding="utf-8")
    return path
