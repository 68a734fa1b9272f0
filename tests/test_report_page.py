"""The report page as a pure rendering: every field of an Analysis is on it, it says what the
other reports say, each evidence item has its chart, the structure reads well to a screen
reader. Hostile text and the self-contained file: ``test_report_page_safety``."""

from __future__ import annotations

import re
from datetime import timedelta
from itertools import pairwise

import pytest
from conftest import END, INCIDENT, START, build_analysis, build_snapshot
from page_support import LINKS, Page

from agent.models import (
    Analysis,
    Change,
    ChangeVerdict,
    Evidence,
    RunbookCitation,
    Stats,
    Trigger,
    Window,
)
from agent.page import analysis_page
from agent.report import (
    change_lines,
    change_text,
    confidence_text,
    markdown_report,
    onset_text,
    stamp,
)
from agent.window import window_line


def _rich() -> Analysis:
    """The hand-built analysis with every optional field set to something recognisable."""
    base = build_analysis()
    late = Evidence(
        id="M9",
        source="metric",
        service="db",
        pod="db-0",
        signal="pool_wait_seconds",
        signal_kind="saturation",  # type: ignore[arg-type]
        unit="seconds",
        pattern="up",
        start=END - timedelta(minutes=1),
        end=END,
        onset=END - timedelta(seconds=15),
        baseline=Stats(median=0.004, p95=0.005, max=0.006, mean=0.0045, count=90),
        incident=Stats(median=0.25, p95=0.31, max=0.33, mean=0.26, count=4),
        value=0.27,
        samples=3,
        at_data_end=True,
        score=2.25,
        description="db pool wait rose at the very end",
        link="http://prometheus:9090/graph?g0.expr=pool_wait_seconds",
    )
    return base.model_copy(
        update={
            "trigger": Trigger(
                kind="api",
                alert_name="CheckoutLatencyHigh",
                services=["checkout", "frontend"],
                group_key='{}:{alertname="CheckoutLatencyHigh"}',
                question="why is checkout slow?",
                since=INCIDENT,
            ),
            "window": Window(start=START, end=END, incident_start=INCIDENT, step_s=15),
            "confidence_basis": {"margin": 0.4125, "top_score": 0.91},
            "evidence": [*base.evidence, late],
            "backend": "openai",
            "summarizer_fallback": "the model cited evidence M99 that does not exist",
            "alternatives": ["checkout network_latency is the close second"],
            "tokens": {"prompt": 1234, "completion": 56},
            "cost_usd": 0.0123,
            "timings": {"collect": 0.5, "total": 1.25},
            "notes": ["close call: checkout scored within 0.1 of payments"],
            "changes": [
                ChangeVerdict(
                    change=Change(
                        service="payments",
                        kind="deploy",  # type: ignore[arg-type]
                        at=INCIDENT - timedelta(minutes=5),
                        from_version="v41",
                        to_version="v42",
                        author="ci-bot",
                        link="https://ci.example.com/run/77",
                        source="api",
                        id="deploy-77",
                    ),
                    verdict="suspect",
                    reasons=["deployed 5 minutes before the memory climb"],
                    evidence_ids=["M1"],
                )
            ],
            "next_steps": ["Check heap usage of payments-7d9f-x2"],
            "runbooks": [
                RunbookCitation(
                    id="R1",
                    title="Payments memory",
                    section="Heap exhaustion",
                    path="payments.md",
                    url="https://wiki.example.com/payments",
                    why="service payments",
                    text="Take a heap dump before restarting the pod.",
                )
            ],
        }
    )


def _expected(a: Analysis) -> dict[str, list[str]]:
    """For every field of an Analysis, what a reader must find on its page."""
    assert a.root_cause is not None
    ev = a.evidence
    return {
        "id": [a.id],
        "version": [f"rca-agent {a.version}"],
        "created_at": [stamp(a.created_at)],
        "trigger": [
            "alert CheckoutLatencyHigh (api)",
            "services checkout, frontend",
            'alertname="CheckoutLatencyHigh"',
            "why is checkout slow?",
            f"hurting since {stamp(INCIDENT)}",
        ],
        "window": [
            window_line(a.window.start, a.window.end, a.window.step_s),
            stamp(a.window.incident_start),
            "Step15 s",
        ],
        "candidates": [
            *(c.service for c in a.candidates),
            *(c.fault_type.value for c in a.candidates),
            *(f"{c.score:.2f}" for c in a.candidates),
            "M1, L1",
            "resource anomaly first",
            "10:43:00",
        ],
        "root_cause": [
            f"Root cause: {a.root_cause.service} — {a.root_cause.fault_type.value}",
            a.root_cause.summary,
        ],
        "confidence": [f"confidence {confidence_text(a.confidence)}"],
        "confidence_basis": ["margin 0.412", "top_score 0.91"],
        "insufficient_evidence": ["Fault typememory_leak"],  # and not "insufficient evidence"
        "evidence": [
            *(f"[{e.id}]" for e in ev),
            *(change_text(e) for e in ev),
            *(onset_text(e, a.window.incident_start) for e in ev),
            *(e.description for e in ev),
            "payments/payments-7d9f-x2 · memory_rss_bytes",
            "java.lang.OutOfMemoryError: Java heap space (allocating <*> bytes)",
            "java.lang.OutOfMemoryError: Java heap space (allocating 512 bytes)",
            "source metric, kind saturation, unit seconds",
            "quoted value 270 ms, 3 samples",
            "at the end of the data",
            f"range {stamp(END - timedelta(minutes=1))} → {stamp(END)}",
            "score 2.25",
            "Open in Prometheus",
            "4.5 ms",  # baseline mean
            "330 ms",  # incident max
        ],
        "timeline": [
            *(e.text for e in a.timeline),
            "10:42:00",
            "+2m00s",
            "+3m00s",
        ],
        "next_steps": a.next_steps,
        "summary": [a.summary],
        "backend": ["backend openai"],
        "summarizer_fallback": ["the model cited evidence M99 that does not exist"],
        "alternatives": a.alternatives,
        "tokens": ["prompt 1234", "completion 56"],
        "cost_usd": ["$0.0123"],
        "timings": ["collect 0.500 s", "total 1.250 s"],
        "source_failures": ["elasticsearch", "timed out after 10 s"],
        "notes": a.notes,
        "runbooks": [
            "[R1]",
            "Payments memory",
            "section Heap exhaustion",
            "matched by service payments",
            "Take a heap dump before restarting the pod.",
        ],
        "changes": [
            "suspect: payments v41 → v42 (deploy at 10:35:00): deployed 5 minutes before "
            "the memory climb [M1]",
            "(by ci-bot; from api, deploy-77)",
        ],
    }


def test_every_field_of_an_analysis_appears_on_its_page() -> None:
    analysis = _rich()
    html = analysis_page(analysis, build_snapshot(), LINKS)
    page = Page(html)
    text = re.sub(r"\s+", " ", page.visible)
    expected = _expected(analysis)
    assert set(expected) == set(Analysis.model_fields), "a new Analysis field needs a check here"
    missing = {
        field: [want for want in wants if re.sub(r"\s+", " ", want) not in text]
        for field, wants in expected.items()
    }
    assert {k: v for k, v in missing.items() if v} == {}
    assert "insufficient evidence" not in text.lower()
    hrefs = [value for tag, name, value in page.attrs if tag == "a" and name == "href"]
    assert "http://prometheus:9090/graph?g0.expr=pool_wait_seconds" in hrefs
    assert "http://prom/graph?g0=x" in hrefs
    assert "https://ci.example.com/run/77" in hrefs
    assert LINKS.json_href in hrefs
    ids = {value for _tag, name, value in page.attrs if name == "id"}
    assert {"ev-M1", "ev-L1", "ev-M2", "ev-M9"} <= ids
    assert all(f"#ev-{e}" in hrefs for e in ("M1", "L1", "M2"))  # candidates link their evidence


def test_page_says_what_the_markdown_report_says() -> None:
    analysis = _rich()
    page = Page(analysis_page(analysis, build_snapshot(), LINKS)).visible
    markdown = markdown_report(analysis)
    for evidence in analysis.evidence:
        phrase = change_text(evidence)
        assert phrase in page and phrase.replace("|", "\\|") in markdown
    assert f"confidence {confidence_text(analysis.confidence)}" in markdown
    assert f"confidence {confidence_text(analysis.confidence)}" in page
    (line,) = change_lines(analysis)
    assert f"- {line}" in markdown
    assert line.removesuffix(" https://ci.example.com/run/77") in page  # the link is a link


def test_each_evidence_item_has_its_chart_or_its_log_lines() -> None:
    analysis = build_analysis()
    page = Page(analysis_page(analysis, build_snapshot(), LINKS))
    svgs = [value for tag, name, value in page.attrs if tag == "svg" and name == "aria-labelledby"]
    assert len(svgs) == len(analysis.evidence)  # M1, L1, M2: two series and one log template
    titles = [t for t in page.text if t.startswith("[M1] payments/payments-7d9f-x2")]
    assert titles, "each chart has a <title> naming its item"
    classes = {value for tag, name, value in page.attrs if tag in ("rect", "line", "path")}
    assert {"band", "incident", "onset", "median", "series s0", "bar"} <= classes
    lines = [t for t in page.text if "OutOfMemoryError" in t and "allocating 51" in t]
    assert len(lines) >= 5  # sample lines of L1, from its onset on
    assert "Sample lines (5 of 30 matching)" in page.visible


def test_without_chart_data_the_page_says_so_and_keeps_the_text() -> None:
    analysis = build_analysis()
    page = Page(analysis_page(analysis, None, LINKS)).visible
    assert "No chart: the series is not stored with this analysis." in page
    assert change_text(analysis.evidence[0]) in page


def test_insufficient_evidence_is_said_in_words() -> None:
    page = Page(analysis_page(build_analysis(insufficient=True), None, LINKS))
    assert (
        page.headings[0] == "h1:Insufficient evidence: no root cause can be named with confidence"
    )
    assert "confidence 0.20, low" in page.visible
    assert "cited by the root cause" not in page.visible.split("Evidence", 2)[-1]


def test_headings_are_in_order_and_images_are_described() -> None:
    page = Page(analysis_page(build_analysis(), build_snapshot(), LINKS))
    levels = [int(h[1]) for h in page.headings]
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(b - a <= 1 for a, b in pairwise(levels))  # no skipped level
    sections = [h.partition(":")[2] for h in page.headings if h.startswith("h2")]
    assert sections[:4] == ["Summary", "Ranked candidates", "Evidence", "Timeline"]
    assert "Rate this analysis" in sections
    for tag, name, _value in page.attrs:
        if tag == "svg" and name == "role":
            assert _value == "img"
    assert ("html", "lang", "en") in page.attrs
    viewport = [
        v for t, n, v in page.attrs if t == "meta" and n == "content" and v and "width=" in v
    ]
    assert viewport == ["width=device-width, initial-scale=1"]
    # Colour is never the only signal: the confidence and each rating button say it in words.
    assert "confidence 0.83, high" in page.visible
    assert {"✓ Correct", "◐ Partially", "✗ Wrong"} <= {t.strip() for t in page.text}


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.9])
def test_confidence_label_matches_the_terminal_report(fraction: float) -> None:
    analysis = build_analysis().model_copy(update={"confidence": fraction})
    page = Page(analysis_page(analysis, None, LINKS)).visible
    assert f"confidence {confidence_text(fraction)}" in page


def test_a_long_series_is_thinned_but_keeps_its_spike_and_its_gap() -> None:
    from agent.models import Signal
    from agent.page.svg import MAX_BUCKETS, Frame, _path, _thinned

    n = 5000
    values: list[float | None] = [1.0] * n
    values[1234] = 50.0  # a one-sample spike
    values[3000:3010] = [None] * 10  # a gap
    stamps = [START.timestamp() + i for i in range(n)]
    signal = Signal(service="s", name="m", timestamps=stamps, values=values)
    frame = Frame(stamps[0], stamps[-1], 0.0, 50.0)
    t, v = _thinned(signal, frame)
    assert len(t) <= 3 * MAX_BUCKETS
    assert 50.0 in v.tolist()
    path = _path(t, v, frame)
    assert path.count("M") == 2  # the pen lifts once, at the gap
    assert f"{frame.y(50.0):.1f}" in path
