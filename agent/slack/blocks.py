"""The incident message in Block Kit, rendered from an :class:`~agent.models.Analysis`.

Pure: the same analysis and view give the same blocks, so golden files pin the layout. The
message is what an on-call engineer reads before opening a dashboard: the alert, the named
root cause and how sure we are, the evidence with its numbers and a link each, a short
timeline, what to check next, then buttons to rate or widen the analysis. Anything cut to
fit Slack's limits ends in "…" and a "(truncated)" note points to the full report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

from agent.models import Analysis, Evidence
from agent.report import change_text, cited_evidence, confidence_text, offset_text, subject
from agent.slack.limits import (
    BUTTON_VALUE,
    HEADER_TEXT,
    MESSAGE_TEXT,
    SECTION_TEXT,
    clip,
    escape,
    link,
)

Block = dict[str, Any]

MAX_EVIDENCE = 5
MAX_TIMELINE = 6
MAX_STEPS = 5
BULLET_TEXT = 560  # five bullets and a title stay under one section's 3000 characters

ACTION_CORRECT = "rca_feedback_correct"
ACTION_WRONG = "rca_feedback_wrong"
ACTION_RERUN = "rca_rerun_wider"
ACTIONS_BLOCK = "rca_actions"


@dataclass(frozen=True)
class IncidentView:
    """What the message shows besides the analysis: alert state and where things live."""

    status: Literal["firing", "resolved"] = "firing"
    severity: str | None = None
    public_url: str | None = None
    tz: tzinfo = UTC
    buttons: bool = True


@dataclass
class _Cuts:
    """Parts left out or shortened; rendered as one visible note."""

    notes: list[str] = field(default_factory=list)

    def clip(self, text: str, limit: int, what: str) -> str:
        out, cut = clip(text, limit)
        if cut and what not in self.notes:
            self.notes.append(what)
        return out


def _clock(value: datetime, tz: tzinfo) -> str:
    return value.astimezone(tz).strftime("%H:%M:%S")


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(text)}


def report_url(analysis: Analysis, public_url: str | None) -> str | None:
    if not public_url:
        return None
    return f"{public_url.rstrip('/')}/v1/analyses/{analysis.id}/report.md"


def subject_service(analysis: Analysis) -> str:
    if analysis.root_cause is not None:
        return analysis.root_cause.service
    return ", ".join(analysis.trigger.services) or "unknown service"


def title(analysis: Analysis, view: IncidentView) -> str:
    """``AlertName · severity · service``, marked resolved when the alert is."""
    name = analysis.trigger.alert_name or f"rca {', '.join(analysis.trigger.services) or ''}"
    parts = [name.strip(), view.severity or "", subject_service(analysis)]
    text = " · ".join(p for p in parts if p)
    return ("✅ Resolved: " if view.status == "resolved" else "🔴 ") + text


def fallback_text(analysis: Analysis, view: IncidentView) -> str:
    """The notification text (and what screen readers get)."""
    cause = analysis.root_cause
    if cause is None or analysis.insufficient_evidence:
        verdict = f"insufficient evidence (confidence {analysis.confidence:.2f})"
    else:
        verdict = (
            f"root cause {cause.service} ({cause.fault_type.value}, "
            f"confidence {analysis.confidence:.2f})"
        )
    return clip(f"{title(analysis, view)}: {verdict}", MESSAGE_TEXT)[0]


def _root_cause(analysis: Analysis, cuts: _Cuts) -> Block:
    conf = confidence_text(analysis.confidence)
    cause = analysis.root_cause
    if cause is None or analysis.insufficient_evidence:
        head = f":warning: *Insufficient evidence* — no root cause named (confidence {conf})"
        body = analysis.summary
    else:
        head = (
            f"*Root cause:* `{escape(cause.service)}` — *{cause.fault_type.value}* "
            f"· confidence {conf}"
        )
        body = cause.summary or analysis.summary
    text = head + (f"\n{escape(body)}" if body else "")
    return _section(cuts.clip(text, SECTION_TEXT, "summary"))


def evidence_line(evidence: Evidence, analysis: Analysis, tz: tzinfo) -> str:
    """One bullet: what, how it moved (baseline → incident), when, and where to look."""
    onset = (
        f"onset {_clock(evidence.onset, tz)} "
        f"({offset_text(evidence.onset, analysis.window.incident_start)})"
        if evidence.onset
        else "onset unknown"
    )
    line = (
        f"• *[{evidence.id}]* {escape(subject(evidence))} — {escape(evidence.pattern)}: "
        f"{escape(change_text(evidence))} · {onset}"
    )
    if evidence.link:
        label = "Prometheus graph" if evidence.source == "metric" else "Kibana Discover"
        line += f" · {link(evidence.link, label)}"
    return line


def _clip_line(line: str, limit: int, cuts: _Cuts, what: str) -> str:
    """Shorten a bullet without cutting through its trailing link."""
    if len(line) <= limit:
        return line
    head, sep, tail = line.rpartition(" · <")
    if sep and len(tail) + 4 < limit // 2:
        return cuts.clip(head, limit - len(tail) - 4, what) + sep + tail
    return cuts.clip(line, limit, what)


def _evidence(analysis: Analysis, view: IncidentView, cuts: _Cuts) -> Block | None:
    shown = cited_evidence(analysis, limit=len(analysis.evidence))
    if not shown:
        return None
    lines = [
        _clip_line(evidence_line(ev, analysis, view.tz), BULLET_TEXT, cuts, "evidence text")
        for ev in shown[:MAX_EVIDENCE]
    ]
    if len(shown) > MAX_EVIDENCE:
        lines.append(f"_… and {len(shown) - MAX_EVIDENCE} more in the full report_")
        cuts.notes.append(f"{len(shown) - MAX_EVIDENCE} more evidence items")
    return _section(cuts.clip("*Evidence*\n" + "\n".join(lines), SECTION_TEXT, "evidence"))


def _timeline(analysis: Analysis, view: IncidentView, cuts: _Cuts) -> Block | None:
    events = analysis.timeline
    if not events:
        return None
    lines = []
    for event in events[:MAX_TIMELINE]:
        cite = f" [{event.evidence_id}]" if event.evidence_id else ""
        line = f"`{_clock(event.time, view.tz)}` *{escape(event.service)}* {escape(event.text)}"
        lines.append(cuts.clip(line + cite, 400, "timeline text"))
    if len(events) > MAX_TIMELINE:
        lines.append(f"_… and {len(events) - MAX_TIMELINE} more_")
        cuts.notes.append(f"{len(events) - MAX_TIMELINE} more timeline events")
    return _section(cuts.clip("*Timeline*\n" + "\n".join(lines), SECTION_TEXT, "timeline"))


def _next_steps(analysis: Analysis, cuts: _Cuts) -> Block | None:
    steps = analysis.next_steps
    if not steps:
        return None
    lines = [
        cuts.clip(f"{n}. {escape(step)}", 500, "next steps text")
        for n, step in enumerate(steps[:MAX_STEPS], start=1)
    ]
    if len(steps) > MAX_STEPS:
        lines.append(f"_… and {len(steps) - MAX_STEPS} more_")
        cuts.notes.append(f"{len(steps) - MAX_STEPS} more next steps")
    return _section(cuts.clip("*Next steps*\n" + "\n".join(lines), SECTION_TEXT, "next steps"))


def _failures(analysis: Analysis, cuts: _Cuts) -> Block | None:
    if not analysis.source_failures:
        return None
    text = "⚠️ Ran without: " + "; ".join(
        f"{escape(f.source)} ({escape(f.error)})" for f in analysis.source_failures
    )
    return {"type": "context", "elements": [_mrkdwn(cuts.clip(text, 1000, "source failures"))]}


def _context(analysis: Analysis, view: IncidentView) -> Block:
    created = analysis.created_at.astimezone(view.tz)
    elements = [
        _mrkdwn(f"backend `{escape(analysis.backend)}`"),
        _mrkdwn(f"analysed {created:%Y-%m-%d %H:%M} {created.tzname() or ''}".rstrip()),
    ]
    if "total" in analysis.timings:
        elements.append(_mrkdwn(f"took {analysis.timings['total']:.2f} s"))
    if url := report_url(analysis, view.public_url):
        elements.append(_mrkdwn(link(url, "full report")))
    elements.append(_mrkdwn(f"`{escape(analysis.id)}`"))
    return {"type": "context", "elements": elements}


def _button(text: str, action_id: str, value: str, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _actions(analysis: Analysis) -> Block:
    value = clip(analysis.id, BUTTON_VALUE)[0]
    return {
        "type": "actions",
        "block_id": ACTIONS_BLOCK,
        "elements": [
            _button("👍 Correct", ACTION_CORRECT, value, "primary"),
            _button("👎 Wrong", ACTION_WRONG, value, "danger"),
            _button("🔁 Re-run with a wider window", ACTION_RERUN, value),
        ],
    }


def incident_blocks(analysis: Analysis, view: IncidentView | None = None) -> list[Block]:
    """The whole incident message; within Slack's limits by construction."""
    view = view or IncidentView()
    cuts = _Cuts()
    header = cuts.clip(title(analysis, view), HEADER_TEXT, "title")
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        _root_cause(analysis, cuts),
    ]
    body = (
        _evidence(analysis, view, cuts),
        _timeline(analysis, view, cuts),
        _next_steps(analysis, cuts),
        _failures(analysis, cuts),
    )
    blocks += [b for b in body if b is not None]
    blocks.append(_context(analysis, view))
    if cuts.notes:
        note = "(truncated) " + ", ".join(cuts.notes) + " — see the full report"
        blocks.append({"type": "context", "elements": [_mrkdwn(clip(note, 1000)[0])]})
    if view.buttons:
        blocks.append(_actions(analysis))
    return blocks
