"""``rca check-sources``: what each configured source holds in a time window, as a table or
as JSON (``--json``), so a newcomer sees at once whether the agent can see their incident and
a script can tell without parsing a table. Examples::

    RCA_PROMETHEUS_URL=http://localhost:9090 rca check-sources
    rca check-sources --at 2024-05-14T10:40:00Z --window 2h
    rca check-sources --json | jq '.sources[] | {source, series, lines}'

Exit codes: 3 when a source is down or rejects a query, 4 when every source answered and none
holds data in the window; the JSON is printed before either.
"""

from __future__ import annotations

import math
import re
import time
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from agent.cli_sources import CheckWindow
from agent.clikit import JsonOut, clock_span
from agent.config import Settings
from agent.errors import ConfigError, EmptyWindow, SourceError

if TYPE_CHECKING:
    from rich.console import Console


class SignalCount(BaseModel):
    """One catalog signal in the window."""

    name: str
    series: int
    samples: int
    services: list[str]
    error: str | None = None


class SourceCheck(BaseModel):
    """What one source answered. ``error``: it did not (the rest is then empty)."""

    source: str
    url: str
    error: str | None = None
    series: int = 0
    signals: list[SignalCount] = Field(default_factory=list)
    call_graph_edges: int | None = None
    notes: list[str] = Field(default_factory=list)
    overview: str | None = None
    lines: int = 0
    services: int = 0
    newest: str | None = None


class CheckReport(BaseModel):
    """``rca check-sources --json``."""

    start: str
    end: str
    window: str
    sources: list[SourceCheck]
    problems: list[str]


def check_sources(settings: Settings, window: CheckWindow, json_out: JsonOut) -> None:
    """Fetch ``window`` from each configured source as an analysis would and print what came
    back: series and samples per catalog signal, log lines per service.

    Each failure is said once, in the SourceError raised at the end (exit 3); a window in
    which every source answered and none holds anything raises EmptyWindow (exit 4) with
    what to try, rather than exiting 0 over a table of zeros.
    """
    if not settings.prometheus_url and not settings.elasticsearch_url:
        raise ConfigError(
            "no source configured: set RCA_PROMETHEUS_URL and/or RCA_ELASTICSEARCH_URL"
        )
    console = json_out.console()
    console.print(f"window {window}")
    deadline = time.monotonic() + settings.collect.budget_s
    checks: list[SourceCheck] = []
    problems: list[str] = []
    if settings.prometheus_url:
        checks.append(_check_prometheus(settings, window, deadline, console, problems))
    if settings.elasticsearch_url:
        checks.append(_check_elasticsearch(settings, window, deadline, console, problems))
    if json_out:
        report = CheckReport(
            start=window.start.isoformat(),
            end=window.end.isoformat(),
            window=clock_span(window.span),
            sources=checks,
            problems=problems,
        )
        json_out.write(report.model_dump_json(indent=2))
    if problems:
        raise SourceError("check-sources", "; ".join(problems))
    if not sum(check.series + check.lines for check in checks):
        newest = next((c.newest for c in checks if c.newest), None)
        raise EmptyWindow(_empty_window_advice(settings, window, newest))


def _empty_window_advice(settings: Settings, window: CheckWindow, newest_log: str | None) -> str:
    at = newest_log or "TIME"
    where = (
        f"the newest log line is at {newest_log}"
        if newest_log
        else "if the incident was earlier, give its time (the alert's startsAt, e.g. "
        "2024-05-14T10:40:00Z)"
    )
    return (
        f"nothing found in the window {window}: every source answered, none holds data for "
        f"it; {where}: rca check-sources --at {at} --window {clock_span(window.span)}; "
        f"if that finds nothing either, compare {' and '.join(_filters(settings))} with what "
        "the servers hold"
    )


def _filters(settings: Settings) -> list[str]:
    """The settings that decide what a check can find, of the configured sources."""
    named = []
    if settings.prometheus_url:
        named.append("the catalog's metric names, prometheus.selector")
    if settings.elasticsearch_url:
        named.append("elasticsearch.index and elasticsearch.fields")
    return named


def _check_prometheus(
    settings: Settings,
    window: CheckWindow,
    deadline: float,
    console: Console,
    problems: list[str],
) -> SourceCheck:
    """Print a table of the catalog's signals in the window and return the same counts."""
    from rich.table import Table

    from connectors.prometheus import PrometheusSource

    url = settings.prometheus_url or ""
    try:
        source = PrometheusSource(url, settings.prometheus)
        fetch = source.fetch(window.start, window.end, deadline=deadline)
    except SourceError as exc:
        problems.append(str(exc))
        return SourceCheck(source="prometheus", url=url, error=str(exc))
    check = SourceCheck(source="prometheus", url=url, series=len(fetch.signals))
    table = Table(title=f"prometheus {url}", title_justify="left")
    for column in ("signal", "series", "samples", "services"):
        table.add_column(column)
    for entry in source.catalog.signals:
        signals = [s for s in fetch.signals if s.name == entry.name]
        error = next((f for f in fetch.failures if f.startswith(f"{entry.name}: ")), None)
        services = sorted({s.service for s in signals})
        shown = ", ".join(services[:6]) + (" ..." if len(services) > 6 else "")
        samples = sum(v is not None and math.isfinite(v) for s in signals for v in s.values)
        check.signals.append(SignalCount(name=entry.name, series=len(signals), samples=samples,
                                         services=services, error=error))  # fmt: skip
        table.add_row(entry.name, str(len(signals)), f"{samples:,}", error or shown or "-")
    console.print(table)
    if source.catalog.topology:
        check.call_graph_edges = len(fetch.edges)
        console.print(f"call graph: {len(fetch.edges)} edges")
    check.notes = list(fetch.notes)
    for note in fetch.notes:
        console.print(note, style="dim")
    failed = [s.name for s in check.signals if s.error is not None]
    if failed:
        problems.append(f"prometheus: the server rejected {', '.join(failed)} (see the table)")
    return check


def _check_elasticsearch(
    settings: Settings,
    window: CheckWindow,
    deadline: float,
    console: Console,
    problems: list[str],
) -> SourceCheck:
    """Print what the index holds and how many lines fall in the window; return those
    counts and the newest line's time."""
    from connectors.elasticsearch import ElasticsearchSource

    url = settings.elasticsearch_url or ""
    # Counting is what a check needs; one sampled line keeps the fetch cheap.
    options = settings.elasticsearch.model_copy(update={"sample_cap": 1, "max_records": 1})
    try:
        source = ElasticsearchSource(url, options)
        try:
            overview = source.check()
            fetch = source.fetch((), window.start, window.end, deadline)
        finally:
            source.close()
    except SourceError as exc:
        problems.append(str(exc))
        return SourceCheck(source="elasticsearch", url=url, error=str(exc))
    lines = 0
    for signal in fetch.count_signals:
        # Each value is lines per second over the part of its bucket inside the window.
        for moment, rate in signal.points():
            step = signal.resolution_s or 0.0
            lo = max(moment, window.start.timestamp())
            hi = min(moment + step, window.end.timestamp())
            lines += round(rate * max(hi - lo, 0.0))
    services = {s.service for s in fetch.count_signals}
    console.print(f"elasticsearch {url}: {overview}")
    console.print(f"  in the window: {lines:,} log lines from {len(services)} services")
    newest = re.search(r"newest (\S+)", overview)
    return SourceCheck(
        source="elasticsearch",
        url=url,
        overview=overview,
        lines=lines,
        services=len(services),
        newest=newest.group(1) if newest else None,
    )
