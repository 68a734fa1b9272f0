"""The "Seen before" thread reply: similar past incidents, what fixed them, how they were rated.

One line per past analysis, e.g. ``Seen before: 2026-11-02, checkout, db pool exhaustion —
fixed by raising max_connections (postmortem), rated correct · similarity 0.91: same
alert CheckoutErrors, ...``. Everything people or telemetry wrote (resolutions, names,
templates) is escaped, so a resolution cannot mention ``@channel`` or pass for a link.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import tzinfo

from agent.memory.recall import PastIncident
from agent.slack.limits import MESSAGE_TEXT, clip, clip_mrkdwn, escape, link

RESOLUTION_CHARS = 300


def _cause(past: PastIncident) -> str:
    service = past.confirmed_service or past.root_service or "no root cause named"
    fault = past.confirmed_fault_type or (past.fault_type if past.root_service == service else None)
    return escape(service) + (f", {escape(fault.replace('_', ' '))}" if fault else "")


def _verdict(past: PastIncident) -> str:
    if past.verdict is None:
        return "not rated"
    if past.verdict == "correct":
        return "rated correct"
    corrected = (
        f" (it was {escape(past.confirmed_service)})"
        if past.confirmed_service and past.confirmed_service != past.root_service
        else ""
    )
    return f"rated {escape(past.verdict)}{corrected}"


def seen_before_line(
    past: PastIncident, tz: tzinfo, report_url: Callable[[str], str | None] | None = None
) -> str:
    when = past.created_at.astimezone(tz).strftime("%Y-%m-%d")
    url = report_url(past.analysis_id) if report_url else None
    head = link(url, when) if url else when
    parts = [f"*Seen before:* {head}, {_cause(past)}"]
    if past.resolution:
        fixed = escape(clip(" ".join(past.resolution.split()), RESOLUTION_CHARS)[0])
        parts.append(f" — fixed by {fixed}")
    if past.resolution_url:
        parts.append(f" ({link(past.resolution_url, 'postmortem')})")
    parts.append(f", {_verdict(past)}")
    why = "; ".join(escape(r) for r in past.reasons[:3])
    parts.append(f" · similarity {past.similarity:.2f}" + (f": {why}" if why else ""))
    return "".join(parts)


def seen_before_text(
    past: Sequence[PastIncident],
    tz: tzinfo,
    report_url: Callable[[str], str | None] | None = None,
) -> str | None:
    """The reply, or None when nothing similar is remembered."""
    if not past:
        return None
    lines = [seen_before_line(p, tz, report_url) for p in past]
    return clip_mrkdwn("\n".join(lines), MESSAGE_TEXT)[0]
