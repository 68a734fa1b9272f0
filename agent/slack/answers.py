"""Answer a question in an incident thread from the stored analysis, without an LLM.

Extractive on purpose: the answer quotes what the analysis already established (evidence
ids, numbers, times), so it can be no more wrong than the analysis itself. Questions are
matched by the things they mention: an evidence id, a service, or words about cause,
confidence, alternatives, next steps or the timeline.
"""

from __future__ import annotations

import re

from agent.models import Analysis
from agent.report import change_text, confidence_text, subject
from agent.slack.limits import SECTION_TEXT, clip_mrkdwn, escape, link

_TOPICS: dict[str, tuple[str, ...]] = {
    "next": ("next", "do", "fix", "check", "mitigat", "action"),
    "confidence": ("confiden", "sure", "certain", "trust"),
    "alternatives": ("else", "other", "alternativ", "instead"),
    "timeline": ("when", "timeline", "start", "first", "order"),
}


def _evidence_answer(analysis: Analysis, evidence_id: str) -> str | None:
    ev = analysis.evidence_by_id(evidence_id)
    if ev is None:
        return None
    onset = f", onset {ev.onset:%H:%M:%S} UTC" if ev.onset else ""
    source = f"\n{link(ev.link, 'open the source')}" if ev.link else ""
    return (
        f"*[{ev.id}]* {escape(subject(ev))} — {escape(ev.pattern)}: "
        f"{escape(change_text(ev))}{onset}.\n{escape(ev.description)}{source}"
    )


def _service_answer(analysis: Analysis, service: str) -> str:
    rank, cand = next(
        (i, c) for i, c in enumerate(analysis.candidates, start=1) if c.service == service
    )
    ids = ", ".join(cand.evidence_ids) or "no evidence items"
    reasons = ("; ".join(cand.reasons) + ".") if cand.reasons else ""
    return (
        f"`{escape(service)}` ranks #{rank} of {len(analysis.candidates)} "
        f"({cand.fault_type.value}, score {cand.score:.2f}), on {ids}. {escape(reasons)}"
    ).strip()


def _topic_answer(analysis: Analysis, topic: str) -> str | None:
    if topic == "next" and analysis.next_steps:
        return "*Next steps:*\n" + "\n".join(
            f"{n}. {escape(s)}" for n, s in enumerate(analysis.next_steps, start=1)
        )
    if topic == "confidence":
        runner = analysis.candidates[1].service if len(analysis.candidates) > 1 else None
        text = f"Confidence {confidence_text(analysis.confidence)}."
        return text + (f" The runner-up is `{escape(runner)}`." if runner else "")
    if topic == "alternatives":
        others = analysis.alternatives or [
            f"{c.service} ({c.fault_type.value})" for c in analysis.candidates[1:4]
        ]
        return ("Other candidates: " + "; ".join(escape(o) for o in others)) if others else None
    if topic == "timeline" and analysis.timeline:
        return "*Timeline (UTC):*\n" + "\n".join(
            f"`{e.time:%H:%M:%S}` *{escape(e.service)}* {escape(e.text)}" for e in analysis.timeline
        )
    return None


def _summary(analysis: Analysis) -> str:
    cause = analysis.root_cause
    if cause is None or analysis.insufficient_evidence:
        conf = confidence_text(analysis.confidence)
        return f"No root cause could be named with confidence ({conf})."
    return (
        f"Root cause: `{escape(cause.service)}` ({cause.fault_type.value}), confidence "
        f"{confidence_text(analysis.confidence)}. {escape(cause.summary or analysis.summary)}"
    )


def answer_question(analysis: Analysis, question: str) -> str:
    """A short mrkdwn answer built only from ``analysis``."""
    words = question.lower()
    parts: list[str] = []
    for evidence_id in dict.fromkeys(re.findall(r"\b([ML]\d+)\b", question.upper())):
        if found := _evidence_answer(analysis, evidence_id):
            parts.append(found)
    named = [
        c.service
        for c in analysis.candidates
        if re.search(rf"\b{re.escape(c.service.lower())}\b", words)
    ]
    parts += [_service_answer(analysis, s) for s in named[:3]]
    for topic, stems in _TOPICS.items():
        asked = any(re.search(rf"\b{stem}", words) for stem in stems)
        if asked and (found := _topic_answer(analysis, topic)):
            parts.append(found)
    if not parts:
        parts.append(_summary(analysis))
        parts.append("_Ask about an evidence id (M1, L2), a service, next steps or confidence._")
    return clip_mrkdwn("\n\n".join(parts), SECTION_TEXT)[0]
