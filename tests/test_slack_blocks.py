"""Golden Block Kit JSON for a few analyses, checked against Slack's documented limits.

Regenerate after an intended layout change with ``RCA_UPDATE_GOLDEN=1 pytest
tests/test_slack_blocks.py`` and review the diff of tests/fixtures/slack/.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import build_analysis

from agent.engine.pipeline import analyze
from agent.models import Analysis, TimelineEvent
from agent.slack.blocks import (
    ACTION_CORRECT,
    ACTION_RERUN,
    ACTION_WRONG,
    IncidentView,
    fallback_text,
    incident_blocks,
)
from agent.slack.limits import (
    BUTTON_TEXT,
    HEADER_TEXT,
    MAX_BLOCKS,
    SECTION_TEXT,
    clip,
    problems,
)
from evals.simulator import simulate

GOLDEN = Path(__file__).parent / "fixtures" / "slack"


def _view(analysis: Analysis) -> IncidentView:
    url = f"https://rca.example.com/v1/analyses/{analysis.id}/report.md"
    return IncidentView(severity="critical", report_url=url)


def _simulated() -> Analysis:
    """Stored once from ``analyze(simulate(3).snapshot)`` so engine changes do not move it."""
    return Analysis.model_validate_json((GOLDEN / "sim-3.analysis.json").read_text())


def _oversized() -> Analysis:
    base = build_analysis()
    template = "ERROR <!channel> payment gateway said: " + "x" * 4000
    many = [
        ev.model_copy(update={"id": f"L{i}", "template": template, "score": 50.0 - i})
        for i, ev in enumerate([base.evidence[1]] * 12, start=10)
    ]
    events = [
        TimelineEvent(
            time=base.window.incident_start + timedelta(seconds=10 * i),
            service="payments",
            text=f"event {i}",
        )
        for i in range(30)
    ]
    return base.model_copy(
        update={
            "trigger": base.trigger.model_copy(update={"alert_name": "VeryLongAlertName" * 20}),
            "evidence": [*base.evidence, *many],
            "timeline": events,
            "next_steps": [f"step {i}: " + "y" * 900 for i in range(9)],
        }
    )


CASES: dict[str, tuple[Callable[[], Analysis], Callable[[Analysis], IncidentView]]] = {
    "handbuilt": (build_analysis, _view),
    "insufficient-resolved": (
        lambda: build_analysis(insufficient=True),
        lambda _: IncidentView(status="resolved", tz=ZoneInfo("Europe/Berlin")),
    ),
    "simulated": (_simulated, _view),
    "oversized": (_oversized, lambda _: IncidentView(buttons=True)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_blocks_match_golden_file(name: str) -> None:
    make, view_of = CASES[name]
    analysis = make()
    blocks = incident_blocks(analysis, view_of(analysis))
    path = GOLDEN / f"{name}.blocks.json"
    if os.environ.get("RCA_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(blocks, indent=2, ensure_ascii=False) + "\n")
    assert blocks == json.loads(path.read_text())


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_messages_respect_slack_limits(name: str) -> None:
    make, view_of = CASES[name]
    analysis = make()
    view = view_of(analysis)
    assert problems(incident_blocks(analysis, view), fallback_text(analysis, view)) == []
    stored = json.loads((GOLDEN / f"{name}.blocks.json").read_text())
    assert problems(stored) == []


def test_truncation_is_marked_never_silent() -> None:
    blocks = incident_blocks(_oversized(), IncidentView())
    header = blocks[0]["text"]["text"]
    # The alert name gives way; the verdict at the end of the header stays whole.
    assert len(header) == HEADER_TEXT and header.endswith("… · root cause: payments")
    notes = [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]
    note = next(n for n in notes if n.startswith("(truncated)"))
    assert "title" in note and "10 more evidence items" in note
    assert "24 more timeline events" in note and "4 more next steps" in note
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    start = next(i for i, t in enumerate(sections) if t.startswith("*Evidence*"))
    evidence = "\n".join(sections[start : start + 3])
    assert "…" in evidence and all(len(t) <= SECTION_TEXT for t in sections)
    assert "_… and 10 more in the full report_" in evidence


def test_untrusted_log_text_cannot_ping_the_channel() -> None:
    text = json.dumps(incident_blocks(_oversized(), IncidentView()))
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text


def test_evidence_bullets_carry_numbers_onset_and_links(analysis: Analysis) -> None:
    blocks = incident_blocks(analysis, _view(analysis))
    evidence = next(b["text"]["text"] for b in blocks if "*Evidence*" in b["text"].get("text", ""))
    m2 = next(line for line in evidence.splitlines() if "[M2]" in line)
    assert "120 ms → incident peak 830 ms" in m2
    assert "onset 10:43:00 (+3m00s)" in m2
    assert m2.endswith("<http://prom/graph?g0=x|Prometheus graph>")
    kibana = analysis.evidence[1].model_copy(update={"link": "http://kb/app/discover#/?q=a|b"})
    linked = analysis.model_copy(update={"evidence": [analysis.evidence[0], kibana]})
    text = json.dumps(incident_blocks(linked, _view(analysis)))
    assert "<http://kb/app/discover#/?q=a%7Cb|Kibana Discover>" in text


def test_report_link_buttons_and_header(analysis: Analysis) -> None:
    blocks = incident_blocks(analysis, _view(analysis))
    assert blocks[0]["text"]["text"] == "🔴 CheckoutLatencyHigh · critical · root cause: payments"
    context = json.dumps(blocks[-2])
    assert "https://rca.example.com/v1/analyses/an-test-1/report.md" in context
    buttons = blocks[-1]["elements"]
    assert [b["action_id"] for b in buttons] == [ACTION_CORRECT, ACTION_WRONG, ACTION_RERUN]
    assert all(b["value"] == "an-test-1" and len(b["text"]["text"]) <= BUTTON_TEXT for b in buttons)


def test_times_follow_the_configured_zone(analysis: Analysis) -> None:
    blocks = incident_blocks(analysis, IncidentView(tz=ZoneInfo("America/New_York")))
    text = json.dumps(blocks, ensure_ascii=False)
    assert "onset 06:42:00" in text and "analysed 2024-05-14 07:00 EDT" in text


def test_resolved_header_and_insufficient_evidence() -> None:
    view = IncidentView(status="resolved")
    blocks = incident_blocks(build_analysis(insufficient=True), view)
    assert blocks[0]["text"]["text"].startswith("✅ Resolved: CheckoutLatencyHigh")
    assert "*Insufficient evidence*" in blocks[1]["text"]["text"]
    assert "insufficient evidence" in fallback_text(build_analysis(insufficient=True), view)


def test_live_simulated_analysis_renders_within_limits() -> None:
    """The engine as it is today, not a stored result: the root cause reaches the message."""
    analysis = analyze(simulate(3).snapshot)
    blocks = incident_blocks(analysis, _view(analysis))
    assert problems(blocks, fallback_text(analysis, _view(analysis))) == []
    assert len(blocks) <= MAX_BLOCKS
    if analysis.root_cause is not None:
        assert f"`{analysis.root_cause.service}`" in blocks[1]["text"]["text"]


def test_clip_marks_and_keeps_the_limit() -> None:
    assert clip("abc", 3) == ("abc", False)
    assert clip("abcdef", 4) == ("abc…", True)


def write_simulated_fixture() -> None:  # pragma: no cover - run by hand to refresh the input
    analysis = analyze(simulate(3).snapshot).model_copy(
        update={"created_at": datetime(2024, 12, 18, 0, 5, tzinfo=UTC), "timings": {"total": 0.42}}
    )
    (GOLDEN / "sim-3.analysis.json").write_text(analysis.model_dump_json(indent=2) + "\n")
