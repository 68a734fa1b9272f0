"""The incident message in Block Kit, rendered from an :class:`~agent.models.Analysis`.

Pure: the same analysis and view give the same blocks, so golden files pin the layout. The
message is what an on-call engineer reads before opening a dashboard: the alert, the named
root cause and how sure we are, the evidence with its numbers and a link each, a short
timeline, what to check next, then buttons to rate or widen the analysis. Anything cut to
fit Slack's limits ends in "…" and a "(truncated)" note points to the full report.

Links are never cut: a Prometheus graph URL cut mid-query opens a different query. Evidence
text gives way first, bullets spill into further sections rather than being clipped, and a
link too long for any section is left out whole with a note. The header names what its
service slot is ("root cause: X", or "alert: Y" when no root cause is named), so a reader
never takes the alerting service for the cause.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

from agent.models import Analysis, Evidence, RootCause
from agent.report import (
    change_text,
    cited_evidence,
    confidence_text,
    offset_text,
    subject,
    verdict_text,
)
from agent.slack.limits import (
    BUTTON_VALUE,
    CONTEXT_TEXT,
    HEADER_TEXT,
    MESSAGE_TEXT,
    SECTION_TEXT,
    clip,
    clip_mrkdwn,
    escape,
    link,
)
from agent.window import window_line

Block = dict[str, Any]

MAX_EVIDENCE = 5
MAX_TIMELINE = 6
MAX_STEPS = 5
BULLET_TEXT = 560  # an evidence bullet's words, without its link
EVIDENCE_TITLE = "*Evidence*"
# The longest link a bullet keeps: with the title and the longest words it still fits one section.
LINK_TEXT = SECTION_TEXT - len(EVIDENCE_TITLE) - 1 - BULLET_TEXT - len(" · ")

ACTION_CORRECT = "rca_feedback_correct"
ACTION_WRONG = "rca_feedback_wrong"
ACTION_RERUN = "rca_rerun_wider"
ACTIONS_BLOCK = "rca_actions"


@dataclass(frozen=True)
class IncidentView:
    """What the message shows besides the analysis: alert state and where things live."""

    status: Literal["firing", "resolved"] = "firing"
    severity: str | None = None
    report_url: str | None = None  # "full report": in the service, a signed share link
    tz: tzinfo = UTC
    buttons: bool = True


@dataclass
class _Cuts:
    """Parts left out or shortened; rendered as one visible note."""

    notes: list[str] = field(default_factory=list)

    def clip(self, text: str, limit: int, what: str) -> str:
        """``text`` (mrkdwn) within ``limit``, never ending inside a link."""
        out, cut = clip_mrkdwn(text, limit)
        if cut:
            self.note(what)
        return out

    def note(self, what: str) -> None:
        if what not in self.notes:
            self.notes.append(what)


def _clock(value: datetime, tz: tzinfo) -> str:
    return value.astimezone(tz).strftime("%H:%M:%S")


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(text)}


def named_cause(analysis: Analysis) -> RootCause | None:
    """The root cause the message names: none when the evidence is insufficient, even if
    the analysis holds a best guess."""
    cause = analysis.root_cause
    return None if cause is None or analysis.insufficient_evidence else cause


def subject_text(analysis: Analysis) -> str:
    """The header's last slot, in words: ``root cause: X`` when one is named, else
    ``alert: Y`` (the services the alert is about). A bare service name was read as the
    root cause when it was only where the alert fired."""
    cause = named_cause(analysis)
    if cause is not None:
        return f"root cause: {cause.service}"
    services = ", ".join(analysis.trigger.services)
    return f"alert: {services}" if services else "no root cause named"


def title(analysis: Analysis, view: IncidentView, limit: int | None = HEADER_TEXT) -> str:
    """``AlertName · severity · root cause: X`` (or ``alert: Y``), marked resolved when the
    alert is. Over ``limit`` the alert name gives way first, so the verdict stays readable."""
    name = analysis.trigger.alert_name or f"rca {', '.join(analysis.trigger.services) or ''}"
    prefix = "✅ Resolved: " if view.status == "resolved" else "🔴 "
    tail = " · ".join(p for p in (view.severity or "", subject_text(analysis)) if p)
    name = name.strip()
    if limit is not None:
        room = limit - len(prefix) - len(" · ") - len(tail)
        name = clip(name, room)[0] if room >= 20 else name
    text = prefix + " · ".join(p for p in (name, tail) if p)
    return text if limit is None else clip(text, limit)[0]


def fallback_text(analysis: Analysis, view: IncidentView) -> str:
    """The notification text (and what screen readers get)."""
    cause = named_cause(analysis)
    conf = f"confidence {analysis.confidence:.2f}"
    if cause is None:
        verdict = f" — insufficient evidence, no root cause named ({conf})"
    else:
        verdict = f" ({cause.fault_type.value}, {conf})"
    return clip(title(analysis, view, None) + verdict, MESSAGE_TEXT)[0]


def _root_cause(analysis: Analysis, cuts: _Cuts) -> Block:
    conf = confidence_text(analysis.confidence)
    cause = named_cause(analysis)
    if cause is None:
        head = f":warning: *Insufficient evidence* — no root cause named (confidence {conf})"
        # The notes (how the window was placed, a baseline that held the same rise) are then
        # the reader's best lead; the other channels show them in a section of their own.
        body = " ".join([analysis.summary, *(_sentence(n) for n in analysis.notes)]).strip()
    else:
        head = (
            f"*Root cause:* `{escape(cause.service)}` — *{cause.fault_type.value}* "
            f"· confidence {conf}"
        )
        body = cause.summary or analysis.summary
    text = head + (f"\n{escape(body)}" if body else "")
    return _section(cuts.clip(text, SECTION_TEXT, "summary"))


def _sentence(note: str) -> str:
    return f"{note[:1].upper()}{note[1:]}."


def evidence_text(evidence: Evidence, analysis: Analysis, tz: tzinfo) -> str:
    """One bullet's words: what, how it moved (baseline → incident), when."""
    onset = (
        f"onset {_clock(evidence.onset, tz)} "
        f"({offset_text(evidence.onset, analysis.window.incident_start)})"
        if evidence.onset
        else "onset unknown"
    )
    return (
        f"• *[{evidence.id}]* {escape(subject(evidence))} — {escape(evidence.pattern)}: "
        f"{escape(change_text(evidence))} · {onset}"
    )


def evidence_link(evidence: Evidence) -> str | None:
    """The bullet's link in mrkdwn: where to look (the Prometheus graph, Kibana Discover)."""
    if not evidence.link:
        return None
    label = "Prometheus graph" if evidence.source == "metric" else "Kibana Discover"
    return link(evidence.link, label)


def _bullet(evidence: Evidence, analysis: Analysis, view: IncidentView, cuts: _Cuts) -> str:
    """The words shortened to BULLET_TEXT, the link whole or (over LINK_TEXT) left out whole."""
    text = cuts.clip(evidence_text(evidence, analysis, view.tz), BULLET_TEXT, "evidence text")
    url = evidence_link(evidence)
    if url is None:
        return text
    if len(url) > LINK_TEXT:
        cuts.note("evidence links too long for Slack")
        return f"{text} · _link too long for Slack, in the full report_"
    return f"{text} · {url}"


def _pack(lines: list[str], limit: int = SECTION_TEXT) -> list[str]:
    """Lines into as few section texts as hold them, none split; each line fits by itself."""
    texts: list[str] = []
    for line in lines:
        if texts and len(texts[-1]) + 1 + len(line) <= limit:
            texts[-1] += "\n" + line
        else:
            texts.append(line)
    return texts


def _evidence(analysis: Analysis, view: IncidentView, cuts: _Cuts) -> list[Block]:
    shown = cited_evidence(analysis, limit=len(analysis.evidence))
    if not shown:
        return []
    lines = [EVIDENCE_TITLE] + [_bullet(ev, analysis, view, cuts) for ev in shown[:MAX_EVIDENCE]]
    if len(shown) > MAX_EVIDENCE:
        lines.append(f"_… and {len(shown) - MAX_EVIDENCE} more in the full report_")
        cuts.note(f"{len(shown) - MAX_EVIDENCE} more evidence items")
    return [_section(text) for text in _pack(lines)]


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


def _changes(analysis: Analysis, cuts: _Cuts) -> Block | None:
    """Changes in the window: the suspect one named with its version, time and link; the
    ones checked and cleared said so, so nobody rolls back a healthy service."""
    if not analysis.changes:
        return None
    lines = []
    for verdict in sorted(analysis.changes, key=lambda v: v.verdict != "suspect")[:MAX_STEPS]:
        change = verdict.change
        text = escape(
            verdict_text(
                verdict.model_copy(update={"change": change.model_copy(update={"link": None})})
            )
        )
        if change.link:
            text += " " + link(change.link, "change")
        lines.append(("🚩 " if verdict.verdict == "suspect" else "• ") + text)
    return _section(
        cuts.clip("*Changes in the window*\n" + "\n".join(lines), SECTION_TEXT, "changes")
    )


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
    win = analysis.window
    elements.append(_mrkdwn(f"window {window_line(win.start, win.end, win.step_s, view.tz)}"))
    if "total" in analysis.timings:
        elements.append(_mrkdwn(f"took {analysis.timings['total']:.2f} s"))
    if view.report_url and len(report := link(view.report_url, "full report")) <= CONTEXT_TEXT:
        elements.append(_mrkdwn(report))
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
    header = title(analysis, view)
    if header != title(analysis, view, None):
        cuts.note("title")
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        _root_cause(analysis, cuts),
        *_evidence(analysis, view, cuts),
    ]
    body = (
        _changes(analysis, cuts),
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
