"""The report page against hostile text: whatever a log line, a label or a person puts in an
analysis is shown as text and cannot break the page; long lines are clipped. And the
self-contained file (``rca analyze --html``) loads nothing from the network."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from conftest import INCIDENT, ONSET, build_analysis, build_snapshot
from page_support import LINKS, Page

from agent.cli import cli
from agent.models import (
    Analysis,
    Candidate,
    Change,
    ChangeVerdict,
    LogRecord,
    RootCause,
    SourceFailure,
    TimelineEvent,
    Trigger,
)
from agent.page import analysis_page, standalone_page
from agent.page.render import MAX_TEXT_CHARS
from agent.snapshot import Snapshot

SCRIPT = "<script>alert('x')</script>"
BREAKOUT = '"></pre></bdi></table><img src=x onerror=alert(1)><a href="javascript:alert(2)">'
RTL = "\u202eevil\u202c שלום مرحبا"
HOSTILE = f"{SCRIPT}{BREAKOUT}{RTL} 🔥 \x00\x07 end"
LONG = "A" * 200_000


def _change(service: str, text: str, link: str) -> ChangeVerdict:
    change = Change(
        service=service, at=INCIDENT, from_version=text, to_version=text, author=text, link=link
    )
    return ChangeVerdict(change=change, verdict="suspect", reasons=[text], evidence_ids=[text])


def _hostile() -> tuple[Analysis, Snapshot]:
    """The hand-built incident with hostile text wherever a log, a label or a person can put it."""
    base = build_analysis()
    svc = f"pay{HOSTILE}"
    evidence = [
        e.model_copy(
            update={
                "service": svc if e.service == "payments" else e.service,
                "pod": f"pod{HOSTILE}" if e.pod else None,
                "description": HOSTILE + LONG,
                "unit": e.unit if e.source == "log" else f"u{RTL}",
                "link": "javascript:alert(3)" if e.id == "M2" else e.link,
            }
        )
        for e in base.evidence
    ]
    log = evidence[1].model_copy(
        update={"template": f"ERROR {HOSTILE} <*>", "sample": f"ERROR {HOSTILE} {LONG}"}
    )
    evidence[1] = log
    analysis = base.model_copy(
        update={
            "id": "an-hostile",
            "trigger": Trigger(kind="alert", alert_name=HOSTILE, question=HOSTILE, group_key=RTL),
            "candidates": [
                Candidate(
                    service=svc,
                    fault_type=base.candidates[0].fault_type,
                    score=0.9,
                    evidence_ids=["M1", "L1", HOSTILE],
                    reasons=[HOSTILE],
                ),
                *base.candidates[1:],
            ],
            "root_cause": RootCause(
                service=svc, fault_type=base.candidates[0].fault_type, summary=HOSTILE
            ),
            "evidence": evidence,
            "timeline": [TimelineEvent(time=ONSET, service=svc, text=HOSTILE, evidence_id="L1")],
            "next_steps": [HOSTILE],
            "summary": HOSTILE + LONG,
            "alternatives": [HOSTILE],
            "source_failures": [SourceFailure(source=HOSTILE, error=HOSTILE + LONG)],
            "notes": [HOSTILE],
            "backend": HOSTILE,
            "changes": [_change(svc, HOSTILE, "javascript:alert(4)")],
        }
    )
    snapshot = build_snapshot()
    logs = [
        LogRecord(
            timestamp=ONSET + timedelta(seconds=k),
            service=svc,
            pod=f"pod{HOSTILE}",
            level="ERROR",
            message=f"ERROR {HOSTILE} {k}{LONG if k == 0 else ''}",
        )
        for k in range(3)
    ]
    signals = [
        s.model_copy(update={"service": svc, "pod": f"pod{HOSTILE}"}) for s in snapshot.signals
    ]
    return analysis, snapshot.model_copy(update={"logs": logs, "signals": signals})


def test_hostile_text_is_escaped_and_cannot_break_the_page() -> None:
    analysis, snapshot = _hostile()
    html = analysis_page(analysis, snapshot, LINKS)
    change = _change("payments", "v2", "https://ci.example.com/1")
    plain = build_analysis().model_copy(update={"notes": ["a note"], "changes": [change]})
    hostile, benign = Page(html), Page(analysis_page(plain, build_snapshot(), LINKS))
    assert "script" not in hostile.tags and "iframe" not in hostile.tags
    assert hostile.tags.count("img") == benign.tags.count("img") == 0
    assert not [n for _t, n, _v in hostile.attrs if n.startswith("on")]
    hrefs = [v or "" for t, n, v in hostile.attrs if n == "href"]
    assert not [h for h in hrefs if h.strip().lower().startswith("javascript")]
    assert "Link not shown (not an http(s) address)" in hostile.visible
    # The structure is the benign page's: nothing closed a table, a <pre> or a section early.
    levels = [h.split(":")[0] for h in hostile.headings]
    assert levels == [h.split(":")[0] for h in benign.headings]
    assert hostile.open == [] and benign.open == []
    # The text is shown as text.
    assert SCRIPT in hostile.visible and "&lt;script&gt;" in html
    assert "onerror=alert(1)>" in hostile.visible


def test_bidi_controls_are_shown_not_applied_and_names_are_isolated() -> None:
    analysis, snapshot = _hostile()
    html = analysis_page(analysis, snapshot, LINKS)
    page = Page(html)
    assert not re.search("[\u202a-\u202e\u2066-\u2069]", html)  # not one control survives
    assert "⟪U+202E⟫evil⟪U+202C⟫ שלום مرحبا" in page.visible  # visible; RTL letters kept
    assert "\x00" not in html and "\x07" not in html
    service = "pay" + SCRIPT
    isolated = [text for text in page.bdi if text.startswith(service)]
    assert len(isolated) >= 3  # headline, candidates, timeline (and each subject)


def test_long_lines_are_clipped_and_the_page_stays_small() -> None:
    analysis, snapshot = _hostile()
    html = analysis_page(analysis, snapshot, LINKS)
    assert "more characters)" in html
    assert "A" * (MAX_TEXT_CHARS + 1) not in html
    assert len(html.encode()) < 400_000  # 200 kB lines in ten places; clipped to a few kB each


def test_a_lone_surrogate_from_a_log_does_not_fail_the_page(tmp_path: Path) -> None:
    from agent.page import encode_page

    analysis = build_analysis().model_copy(update={"summary": "bad \ud800 text"})
    data = encode_page(analysis_page(analysis, None, LINKS))
    assert "bad ? text" in data.decode("utf-8")


# --- the self-contained file ----------------------------------------------------------------


def test_standalone_page_needs_no_network() -> None:
    html = standalone_page(build_analysis(), build_snapshot(), b"\x89PNG fake")
    page = Page(html)
    urls = [v or "" for _t, n, v in page.attrs if n in ("src", "href", "action")]
    external = [u for u in urls if not u.startswith(("#", "data:"))]
    assert external == ["http://prom/graph?g0=x"]  # the evidence's own link, not a resource
    assert "form" not in page.tags  # a file has no server to rate through
    assert "rate the analysis where it is served" in page.visible
    csp = [
        v for t, n, v in page.attrs if t == "meta" and n == "content" and v and "default-src" in v
    ]
    assert csp and "default-src 'none'" in csp[0] and "script-src" not in csp[0]
    assert 'download="an-test-1.json"' in html


def test_rca_analyze_html_writes_one_self_contained_file(
    snapshot_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(cli, ["analyze", str(snapshot_dir), "--html", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    page = Page(html)
    assert page.headings[0].startswith("h1:Root cause: payments")
    assert page.tags.count("svg") >= 2
    imgs = [v or "" for t, n, v in page.attrs if t == "img" and n == "src"]
    assert len(imgs) == 1 and imgs[0].startswith("data:image/png;base64,")
    assert len(html.encode()) <= 1_000_000
