"""The incident report page: one HTML document per analysis, and the list of analyses.

Pure functions of an :class:`~agent.models.Analysis` (and the series and log lines its
charts draw), like :mod:`agent.report`: the served page (``GET /analyses/{id}``) and the
file ``rca analyze --html`` writes are the same template, differing only in where links
point (:class:`PageLinks`). Every number and phrase comes from :mod:`agent.report` and
:mod:`agent.units`, so the page says what the terminal, Markdown and Slack reports say.

Log text and service names are untrusted: Jinja2 escapes everything (autoescape is on and
no input is marked safe), ``<bdi>`` isolates right-to-left text from the page around it,
long text is clipped, and the only markup not from a template is the SVG of
:mod:`agent.page.svg`, which is built from numbers and escaped text. The page needs no
script, so its Content-Security-Policy allows none.

Example::

    html = standalone_page(analysis, snapshot)   # one self-contained file
    Path("report.html").write_text(html, encoding="utf-8")
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from agent import __version__
from agent.chart import matching_logs, matching_signals
from agent.memory.recall import PastIncident
from agent.models import Analysis, Evidence, FaultType, LogRecord, Trigger
from agent.page.svg import inert, log_chart, metric_chart
from agent.report import (
    change_text,
    cited_evidence,
    clock,
    confidence_label,
    confidence_text,
    offset_text,
    onset_text,
    stamp,
    subject,
    verdict_text,
)
from agent.snapshot import Snapshot
from agent.units import format_value
from agent.window import window_line

MAX_SAMPLE_LINES = 5
MAX_LINE_CHARS = 500
MAX_TEXT_CHARS = 5000  # any one text on the page; a log line can be megabytes
PENDING_REFRESH_S = 5
_PATTERN_MARKS = {
    "up": "▲",
    "down": "▼",
    "new": "✚",
    "burst": "▲",
    "unbaselined": "?",
    "vanished": "✖",
    "stopped": "✖",
    "error_rate": "▲",
    "origin": "◆",
    "unreached": "✖",
}
_ANCHOR = re.compile(r"[^A-Za-z0-9_-]")


class Rating(Protocol):
    """A stored rating (``agent.store.queries.FeedbackRecord`` fits)."""

    @property
    def verdict(self) -> str: ...
    @property
    def author(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def actual_service(self) -> str | None: ...
    @property
    def actual_fault_type(self) -> str | None: ...
    @property
    def note(self) -> str: ...


@dataclass(frozen=True)
class PageLinks:
    """Where the page's links and its rating form point."""

    json_href: str
    markdown_href: str | None = None
    chart_src: str | None = None
    list_href: str | None = None
    feedback_action: str | None = None  # None: no rating form (a file has no server)
    share: str | None = None  # carried by the rating form


@dataclass(frozen=True)
class JobView:
    """The job behind a served analysis; a file has only a finished one."""

    id: str
    status: str
    trigger: Trigger
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    error: str | None = None
    incident_status: str | None = None
    resolved_at: datetime | None = None


@dataclass(frozen=True)
class LogLine:
    time: str
    level: str
    pod: str | None
    message: str


@dataclass(frozen=True)
class EvidenceView:
    evidence: Evidence
    anchor: str
    cited: bool
    chart: Markup | None
    link: str | None
    link_host: str
    lines: list[LogLine] = field(default_factory=list)
    matched: int = 0


@dataclass(frozen=True)
class ChangeView:
    verdict: str
    text: str  # as the terminal and Markdown reports say it, less the link
    detail: str  # who made it, where it was learned
    link: str | None
    evidence_ids: list[str]


@dataclass(frozen=True)
class ListRow:
    id: str
    href: str
    status: str
    trigger: str
    created_at: datetime
    root_service: str | None
    confidence: float | None
    rating: str | None
    error: str | None


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def anchor(evidence_id: str) -> str:
    return "ev-" + _ANCHOR.sub("_", evidence_id)


def web_link(url: str | None) -> str | None:
    """``url`` when it is an http(s) address (an evidence link may come from anywhere)."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.netloc else None


def trigger_text(trigger: Trigger) -> str:
    text: str = trigger.kind
    if trigger.alert_name:
        text += f": {trigger.alert_name}"
    if trigger.services:
        text += " · " + ", ".join(trigger.services)
    return text


@cache
def css() -> str:
    return (files("agent") / "templates" / "page.css").read_text(encoding="utf-8")


def csp(standalone: bool) -> str:
    """The policy: no script, no fetch; the one stylesheet by its hash; images from the page
    itself (the served overview chart) or inline; forms only back to the server."""
    digest = base64.b64encode(hashlib.sha256(css().encode()).digest()).decode()
    images = "data:" if standalone else "'self' data:"
    policy = f"default-src 'none'; style-src 'sha256-{digest}'; img-src {images}; "
    policy += "base-uri 'none'; form-action 'self'"
    return policy if standalone else policy + "; frame-ancestors 'none'"


def _shown(value: Any) -> Any:
    """Every ``{{ ... }}`` passes here before it is escaped: text is clipped and its control
    characters made inert; markup built by this package (:class:`Markup`) is kept."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return inert(clip(value, MAX_TEXT_CHARS))
    return value


@cache
def _environment() -> Environment:
    env = Environment(
        finalize=_shown,
        loader=PackageLoader("agent", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["clip"] = clip
    env.filters["weblink"] = web_link
    env.globals.update(
        anchor=anchor,
        change_text=change_text,
        clock=clock,
        confidence_label=confidence_label,
        confidence_text=confidence_text,
        format_value=format_value,
        offset_text=offset_text,
        onset_text=onset_text,
        pattern_mark=lambda pattern: _PATTERN_MARKS.get(pattern, "•"),
        stamp=stamp,
        subject=subject,
        window_line=window_line,
        css=Markup(css()),
        version=__version__,
    )
    return env


def _render(template: str, **context: Any) -> str:
    context.setdefault("standalone", False)
    context.setdefault("refresh", None)
    context.setdefault("list_href", None)
    context["csp"] = csp(context["standalone"])
    return _environment().get_template(template).render(**context)


def _log_lines(records: Sequence[LogRecord], evidence: Evidence) -> list[LogLine]:
    """A few matching lines, from the onset (or the incident range) on when there are any."""
    since = evidence.onset or evidence.start
    chosen = [r for r in records if r.timestamp >= since] or list(records)
    return [
        LogLine(clock(r.timestamp), r.level, r.pod, clip(r.message, MAX_LINE_CHARS))
        for r in chosen[:MAX_SAMPLE_LINES]
    ]


def evidence_views(analysis: Analysis, material: Snapshot | None) -> list[EvidenceView]:
    """Every evidence item in report order (the root cause's own first, then by score),
    with its chart and sample lines drawn from ``material`` when given."""
    cited = set(analysis.candidates[0].evidence_ids) if analysis.candidates else set()
    if analysis.root_cause is None:
        cited = set()
    views = []
    for i, ev in enumerate(cited_evidence(analysis, limit=len(analysis.evidence))):
        key = f"c{i}"
        title = f"[{ev.id}] {subject(ev)}: {ev.pattern}"
        desc = f"{change_text(ev)}; {onset_text(ev, analysis.window.incident_start)}"
        chart: str | None = None
        lines: list[LogLine] = []
        matched = 0
        if material is not None and ev.source == "metric":
            chart = metric_chart(
                key, ev, analysis.window, matching_signals(material, ev), title, desc
            )
        elif material is not None:
            records = sorted(matching_logs(material, ev), key=lambda r: r.timestamp)
            matched = len(records)
            chart = log_chart(key, ev, analysis.window, records, title, desc)
            lines = _log_lines(records, ev)
        link = web_link(ev.link)
        views.append(
            EvidenceView(
                evidence=ev,
                anchor=anchor(ev.id),
                cited=ev.id in cited,
                chart=Markup(chart) if chart else None,  # built from numbers and escaped text
                link=link,
                link_host=urlsplit(link).netloc if link else "",
                lines=lines,
                matched=matched,
            )
        )
    return views


def change_views(analysis: Analysis) -> list[ChangeView]:
    """The judged changes in the reports' order (suspects first), in their words."""
    order = {"suspect": 0, "unknown": 1, "cleared": 2}
    views = []
    for judged in sorted(analysis.changes, key=lambda v: (order[v.verdict], v.change.at)):
        change = judged.change
        unlinked = judged.model_copy(update={"change": change.model_copy(update={"link": None})})
        who = f"by {change.author}; " if change.author else ""
        detail = f"{who}from {change.source}" + (f", {change.id}" if change.id else "")
        views.append(
            ChangeView(
                judged.verdict,
                verdict_text(unlinked),
                detail,
                web_link(change.link),
                judged.evidence_ids,
            )
        )
    return views


def _overview_alt(analysis: Analysis) -> str:
    items = cited_evidence(analysis, limit=4)
    return "; ".join(f"[{e.id}] {subject(e)}: {change_text(e)}" for e in items) or "no evidence"


def analysis_page(
    analysis: Analysis,
    material: Snapshot | None,
    links: PageLinks,
    job: JobView | None = None,
    ratings: Sequence[Rating] = (),
    rated: str | None = None,
    standalone: bool = False,
    views: list[EvidenceView] | None = None,
    seen: Sequence[PastIncident] = (),
) -> str:
    """The report page of a finished analysis; ``views`` are its :func:`evidence_views`
    when the caller has them already (they never change once the analysis is done);
    ``seen`` the similar past analyses incident memory found."""
    job = job or JobView(analysis.id, "done", analysis.trigger, analysis.created_at)
    services = sorted(
        {c.service for c in analysis.candidates} | {e.service for e in analysis.evidence}
    )
    return _render(
        "analysis.html",
        analysis=analysis,
        job=job,
        views=views if views is not None else evidence_views(analysis, material),
        changes=change_views(analysis),
        links=links,
        list_href=links.list_href,
        ratings=ratings,
        rated=rated,
        services=services,
        fault_types=[f.value for f in FaultType],
        overview_alt=_overview_alt(analysis),
        download_name=f"{_ANCHOR.sub('_', analysis.id)}.json",
        standalone=standalone,
        seen=seen,
    )


def pending_page(job: JobView, list_href: str | None = None) -> str:
    """The page of an analysis that is not done: pending and running reload themselves."""
    refresh = PENDING_REFRESH_S if job.status in ("pending", "running") else None
    return _render("pending.html", job=job, refresh=refresh, list_href=list_href)


def list_page(
    rows: Sequence[ListRow],
    filters: dict[str, str | None],
    action: str,
    next_href: str | None,
    statuses: Sequence[str],
    ratings: Sequence[str],
) -> str:
    """The list of analyses, newest first, with its filter form."""
    return _render(
        "analyses.html",
        rows=rows,
        filters=filters,
        action=action,
        next_href=next_href,
        statuses=statuses,
        ratings=ratings,
    )


def error_page(status: int, code: str, message: str, list_href: str | None = None) -> str:
    title = code.replace("_", " ")
    return _render(
        "error.html", status=status, code=code, title=title, message=message, list_href=list_href
    )


def standalone_page(
    analysis: Analysis, snapshot: Snapshot | None, overview_png: bytes | None = None
) -> str:
    """The page as one self-contained file: charts inline, the JSON and the overview chart
    as ``data:`` URIs, no rating form, nothing fetched when it is opened."""
    payload = base64.b64encode(analysis.model_dump_json(indent=2).encode()).decode()
    chart = (
        "data:image/png;base64," + base64.b64encode(overview_png).decode()
        if overview_png is not None
        else None
    )
    links = PageLinks(  # data: URIs of base64 text: markup-safe, and never to be clipped
        json_href=Markup(f"data:application/json;base64,{payload}"),
        chart_src=Markup(chart) if chart is not None else None,
    )
    return analysis_page(analysis, snapshot, links, standalone=True)


def write_page(analysis: Analysis, snapshot: Snapshot | None, path: Path) -> Path:
    """Write :func:`standalone_page` with the overview chart (``agent.chart``) embedded;
    parent directories are created."""
    overview = None
    if snapshot is not None:
        from agent.chart import render_evidence_chart  # matplotlib: only when a page is wanted

        buffer = io.BytesIO()
        render_evidence_chart(analysis, snapshot).savefig(buffer, format="png", dpi=80)
        overview = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_page(standalone_page(analysis, snapshot, overview)))
    return path


def encode_page(html: str) -> bytes:
    """UTF-8 bytes of a page; text that cannot be encoded (a lone surrogate from a log line)
    becomes "?" instead of failing the request."""
    return html.encode("utf-8", "replace")
