"""Terminal and Markdown reports, and the evidence chart, on a hand-built analysis."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from conftest import POD, build_analysis

from agent.chart import matching_logs, matching_signals, template_regex, write_evidence_chart
from agent.models import Analysis, Stats
from agent.report import (
    change_text,
    cited_evidence,
    format_value,
    markdown_report,
    report_text,
    write_markdown,
)
from agent.snapshot import Snapshot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (300 * 1024 * 1024, "bytes", "300 MiB"),
        (1.5 * 1024**3, "bytes", "1.5 GiB"),
        (0.12, "seconds", "120 ms"),
        (2.5, "s", "2.5 s"),
        (850, "ms", "850 ms"),
        (0.05, "ratio", "5%"),
        (12345.0, "1/s", "12,345 1/s"),
        (2048.0, "By", "2 KiB"),
        (4.07, "{request}/s", "4.07 request/s"),
        (None, "bytes", "n/a"),
        (0.0, "", "0"),
    ],
)
def test_format_value_uses_human_units(value: float | None, unit: str, expected: str) -> None:
    assert format_value(value, unit) == expected


def test_change_text_compares_baseline_and_incident(analysis: Analysis) -> None:
    memory = analysis.evidence_by_id("M1")
    assert memory is not None
    assert change_text(memory) == "baseline median 300 MiB → incident peak 940 MiB (×3.13)"
    down = memory.model_copy(
        update={"pattern": "down", "incident": Stats(median=120 * 2**20, max=300 * 2**20)}
    )
    assert change_text(down) == "baseline median 300 MiB → incident median 120 MiB (−60.0%)"
    gone = memory.model_copy(update={"pattern": "vanished"})
    assert change_text(gone) == "baseline median 300 MiB → stopped reporting"
    log = analysis.evidence_by_id("L1")
    assert log is not None
    assert change_text(log) == "0 lines in baseline → 30 in incident"
    rated = log.model_copy(
        update={"baseline": Stats(mean=0.5, count=20), "incident": Stats(mean=3.0, count=60)}
    )
    assert change_text(rated) == "20 lines in baseline → 60 in incident (0.5/min → 3/min)"
    unreached = log.model_copy(
        update={
            "pattern": "unreached",
            "baseline": Stats(mean=12.0, count=36),
            "incident": Stats(mean=2.0, count=6),
        }
    )
    assert change_text(unreached) == "in 6 of its companions' traces where 36 were due"


def test_cited_evidence_puts_root_cause_evidence_first(analysis: Analysis) -> None:
    # M2 outranks nothing of the top candidate's; L1 (score 8) must precede M2 (score 6.1)
    assert [e.id for e in cited_evidence(analysis)] == ["M1", "L1", "M2"]
    assert [e.id for e in cited_evidence(analysis, limit=1)] == ["M1"]


def test_terminal_report_names_cause_confidence_and_numbers(analysis: Analysis) -> None:
    text = report_text(analysis, width=120)
    assert "Root cause: payments — memory_leak" in text
    assert "confidence 0.83, high" in text
    assert "baseline median 120 ms → incident peak 830 ms" in text
    assert "onset 10:42:00 (+2m00s)" in text
    assert "[L1]" in text
    assert "network_latency" in text  # second candidate in the table
    assert "elasticsearch: timed out after 10 s" in text
    assert "1. Check heap usage of payments-7d9f-x2" in text
    assert "Insufficient evidence" not in text


def test_terminal_report_shows_insufficient_evidence() -> None:
    text = report_text(build_analysis(insufficient=True))
    assert "Insufficient evidence" in text
    assert "Root cause:" not in text
    assert "confidence 0.20, low" in text


def test_markdown_contains_evidence_ids_numbers_and_links(analysis: Analysis) -> None:
    md = markdown_report(analysis, chart="evidence.png")
    assert md.startswith("# Root cause analysis an-test-1")
    assert "**Root cause:** `payments` — **memory_leak**" in md
    for evidence_id in ("**M1**", "**L1**", "**M2**"):
        assert evidence_id in md
    assert "baseline median 300 MiB → incident peak 940 MiB" in md
    assert "[open](http://prom/graph?g0=x)" in md
    assert "![evidence chart](evidence.png)" in md
    assert "| 2 | `checkout` | network_latency | 0.42 |" in md
    assert "&lt;*&gt;" not in md and "allocating &lt;*> bytes" in md  # template cannot be HTML
    assert "## Source failures" in md
    assert "- Trigger: alert `CheckoutLatencyHigh` (snapshot)" in md


def test_markdown_insufficient_evidence() -> None:
    md = markdown_report(build_analysis(insufficient=True))
    assert "**Insufficient evidence**" in md
    assert "**Root cause:**" not in md


def test_write_markdown_links_chart_relative_to_report(analysis: Analysis, tmp_path: Path) -> None:
    path = write_markdown(
        analysis, tmp_path / "out" / "report.md", chart=tmp_path / "out" / "ev.png"
    )
    assert "![evidence chart](ev.png)" in path.read_text()


def test_matching_signals_exact_pod_then_rollup(analysis: Analysis, snapshot: Snapshot) -> None:
    memory = analysis.evidence_by_id("M1")
    assert memory is not None
    assert [s.pod for s in matching_signals(snapshot, memory)] == [POD]
    rolled_up = memory.model_copy(update={"pod": None})
    assert len(matching_signals(snapshot, rolled_up)) == 2  # both pods of payments


def test_matching_signals_picks_the_labelled_series_described(
    analysis: Analysis, snapshot: Snapshot
) -> None:
    latency = analysis.evidence_by_id("M2")
    assert latency is not None
    base = snapshot.signals[2]
    siblings = [base.model_copy(update={"labels": {"quantile": q}}) for q in ("p50", "p99")]
    labelled = snapshot.model_copy(update={"signals": siblings})
    described = latency.model_copy(
        update={"description": "checkout:http_latency_p99_seconds{quantile=p99} up from 0.12 s"}
    )
    assert [s.labels["quantile"] for s in matching_signals(labelled, described)] == ["p99"]
    assert len(matching_signals(labelled, latency)) == 2  # nothing to narrow by: draw both


def test_matching_logs_by_template(analysis: Analysis, snapshot: Snapshot) -> None:
    log = analysis.evidence_by_id("L1")
    assert log is not None
    assert len(matching_logs(snapshot, log)) == 30
    assert template_regex("took <NUM> ms on <*>").fullmatch("took 12 ms on db-1")
    assert not template_regex("took <NUM> ms").fullmatch("slept 12 ms")
    spaced = 'ERROR: could not extend file "base/<*>/<*>": No space'
    assert template_regex(spaced).fullmatch('ERROR:  could not extend file "base/1/2": No space')


def test_evidence_chart_is_a_png(analysis: Analysis, snapshot: Snapshot, tmp_path: Path) -> None:
    path = write_evidence_chart(analysis, snapshot, tmp_path / "charts" / "evidence.png")
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 10_000  # three panels, not an empty canvas


def test_evidence_chart_without_plottable_evidence(
    analysis: Analysis, snapshot: Snapshot, tmp_path: Path
) -> None:
    empty = analysis.model_copy(update={"evidence": [], "candidates": []})
    path = write_evidence_chart(empty, snapshot, tmp_path / "empty.png")
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_change_text_quotes_the_level_the_finding_held_and_for_how_long(
    analysis: Analysis,
) -> None:
    memory = analysis.evidence_by_id("M1")
    assert memory is not None
    start = memory.start
    held = memory.model_copy(
        update={"value": 900 * 2**20, "samples": 4, "end": start + timedelta(minutes=3)}
    )
    assert change_text(held) == "baseline median 300 MiB → held 900 MiB (×3) for 3m00s"
    dip = held.model_copy(update={"pattern": "down", "value": 100 * 2**20})
    assert change_text(dip) == "baseline median 300 MiB → dipped to 100 MiB (−66.7%) for 3m00s"
    spike = held.model_copy(update={"samples": 1, "end": start})
    assert change_text(spike) == "baseline median 300 MiB → one-sample spike to 900 MiB (×3)"
    from_zero = held.model_copy(update={"baseline": Stats(median=1e-4), "unit": "s", "value": 2.1})
    assert change_text(from_zero) == "baseline median ~0 → held 2.1 s for 3m00s"
