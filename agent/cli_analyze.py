"""``rca analyze``, ``rca record`` and ``rca check-sources``: an incident's data, from a
snapshot directory or live from the configured sources (an alert, or the services where it
hurts), analyzed, recorded as a snapshot, or checked for what the sources hold. Registered on
the ``rca`` group in :mod:`agent.cli`. Examples::

    rca analyze path/to/snapshot --markdown report.md --chart evidence.png
    rca analyze path/to/snapshot --html report.html
    rca analyze path/to/snapshot --json | jq .root_cause
    rca analyze path/to/snapshot --json-file analysis.json     # and the report on stdout
    RCA_PROMETHEUS_URL=http://localhost:9090 rca analyze --alert alert.json
    rca record --alert alert.json --out incidents/checkout-latency
    rca check-sources --at 2024-05-14T10:40:00Z --window 2h
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from agent.clikit import (
    FILE_OPTION,
    TIME_FORMATS,
    Duration,
    JsonOut,
    cli_state,
    engine_settings,
    json_options,
    stdout_console,
)
from agent.config import EngineSettings
from agent.errors import UsageError
from agent.models import Analysis, utc
from agent.snapshot import Snapshot, load_snapshot
from agent.summarize import Summarizer
from agent.window import with_window


def run_analysis(
    snapshot: Snapshot, engine: EngineSettings, summarizer: Summarizer | None = None
) -> Analysis:
    from agent.engine.pipeline import analyze

    return with_window(analyze(snapshot, engine, summarizer=summarizer), snapshot.signals)


def _summarizer(ctx: click.Context, backend: str | None) -> Summarizer:
    from agent.summarize.factory import build_summarizer

    return build_summarizer(cli_state(ctx).settings, backend)


def write_outputs(
    analysis: Analysis,
    snapshot: Snapshot,
    markdown: Path | None,
    chart: Path | None,
    html: Path | None = None,
) -> list[Path]:
    written: list[Path] = []
    if chart is not None:
        from agent.chart import write_evidence_chart  # matplotlib is slow to import

        written.append(write_evidence_chart(analysis, snapshot, chart))
    if markdown is not None:
        from agent.report import write_markdown

        written.append(write_markdown(analysis, markdown, chart=chart))
    if html is not None:
        from agent.page.render import write_page

        written.append(write_page(analysis, snapshot, html))
    return written


_ALERT_OPTION = click.option(
    "--alert",
    "alert_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Alertmanager webhook JSON: analyze it live from the configured sources.",
)
_END_OPTION = click.option(
    "--end",
    type=click.DateTime(TIME_FORMATS),
    metavar="TIME",
    help="End of the live window, e.g. 2024-05-14T11:10:00 (UTC) or ...+02:00 (default: "
    "now, at most 30 minutes after the alert).",
)
_BASELINE_OPTION = click.option(
    "--baseline",
    type=click.FloatRange(min=0, min_open=True),
    metavar="MINUTES",
    help="History fetched before the incident as its baseline (default: collect.baseline_minutes).",
)
_BUDGET_OPTION = click.option(
    "--budget",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Time limit of live collection across all sources (default: collect.budget_s).",
)
_SERVICE_OPTION = click.option(
    "--service",
    "services",
    multiple=True,
    metavar="NAME",
    help="Where it hurts (repeatable, or comma separated), as an alert's service: the "
    "incident these services show, with everything they depend on as possible causes; live "
    "from the configured sources, or replaying SNAPSHOT_DIR.",
)
_SINCE_OPTION = click.option(
    "--since",
    type=click.DateTime(TIME_FORMATS),
    metavar="TIME",
    help="With --service, live: when it began to hurt (UTC unless an offset is given; "
    "default: 30 minutes before --end).",
)
_LOOKBACK_OPTION = click.option(
    "--lookback",
    type=click.FloatRange(min=0, min_open=True),
    metavar="MINUTES",
    help="Incident window starts this long before the alert fired (default from settings).",
)


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else utc(moment)


@click.command(short_help="Rank the likely root causes of an incident (snapshot or live alert).")
@click.argument("snapshot_dir", type=click.Path(path_type=Path), required=False)
@_ALERT_OPTION
@json_options("the analysis")
@click.option("--markdown", type=FILE_OPTION, metavar="FILE", help="Also write a Markdown report.")
@click.option(
    "--chart", type=FILE_OPTION, metavar="FILE", help="Also write the evidence chart (PNG)."
)
@click.option(
    "--html",
    type=FILE_OPTION,
    metavar="FILE",
    help="Also write the report page as one self-contained HTML file (charts inline; opens "
    "offline).",
)
@_SERVICE_OPTION
@_SINCE_OPTION
@_LOOKBACK_OPTION
@_END_OPTION
@_BASELINE_OPTION
@_BUDGET_OPTION
@click.option(
    "--backend",
    metavar="SPEC",
    help="Summarizer: extractive | openai[:MODEL] | hf | hf:BASE[+ADAPTER] (default: settings).",
)
@click.pass_context
def analyze(
    ctx: click.Context,
    snapshot_dir: Path | None,
    alert_file: Path | None,
    json_out: JsonOut,
    markdown: Path | None,
    chart: Path | None,
    html: Path | None,
    services: tuple[str, ...],
    since: datetime | None,
    lookback: float | None,
    end: datetime | None,
    baseline: float | None,
    budget: float | None,
    backend: str | None,
) -> None:
    """Analyze the incident snapshot in SNAPSHOT_DIR, or with --alert the incident an
    Alertmanager alert points at, or with --service the incident those services show, live
    from Prometheus/Elasticsearch (RCA_PROMETHEUS_URL, RCA_ELASTICSEARCH_URL); print the
    ranked root cause."""
    from agent.cli_scope import analyze_services, one_scope, service_names

    engine = engine_settings(ctx, lookback)
    names = service_names(services)
    one_scope(snapshot_dir, alert_file, names, since)
    summarizer = _summarizer(ctx, backend)
    if names:
        from agent.cli_sources import collect_options

        options = collect_options(cli_state(ctx).settings.collect, baseline, budget)
        span = (_utc(since), _utc(end))
        snapshot, analysis = analyze_services(
            cli_state(ctx).settings,
            snapshot_dir,
            names,
            span,
            engine,
            summarizer,
            options,
            json_out.stdout,
        )
    elif alert_file is not None:
        from agent.cli_sources import (
            analyze_collected,
            collect_for_alert,
            collect_options,
            report_failures,
        )

        options = collect_options(cli_state(ctx).settings.collect, baseline, budget)
        collected = collect_for_alert(
            cli_state(ctx).settings, alert_file, engine, _utc(end), options
        )
        if json_out.stdout:  # the printed report lists them itself: each failure is said once
            report_failures(collected)
        snapshot = collected.snapshot
        analysis = with_window(analyze_collected(collected, engine, summarizer), snapshot.signals)
    else:
        assert snapshot_dir is not None
        snapshot = load_snapshot(snapshot_dir)
        analysis = run_analysis(snapshot, engine, summarizer)
    if json_out:
        json_out.write(analysis.model_dump_json(indent=2))
    if not json_out.stdout:
        from agent.report import print_report

        print_report(analysis, stdout_console())
    for path in write_outputs(analysis, snapshot, markdown, chart, html):
        click.echo(f"wrote {path}", err=True)


@click.command(short_help="Fetch a live incident and write it as a snapshot directory.")
@click.option(
    "--alert",
    "alert_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Alertmanager webhook JSON of the incident.",
)
@_SERVICE_OPTION
@_SINCE_OPTION
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output dir."
)
@_LOOKBACK_OPTION
@_END_OPTION
@_BASELINE_OPTION
@_BUDGET_OPTION
@click.pass_context
def record(
    ctx: click.Context,
    alert_file: Path | None,
    services: tuple[str, ...],
    since: datetime | None,
    out: Path,
    lookback: float | None,
    end: datetime | None,
    baseline: float | None,
    budget: float | None,
) -> None:
    """Fetch what `rca analyze --alert` (or `--service`) would look at and write it as a
    snapshot in OUT; `rca analyze OUT` (with the same `--service`) then gives the same
    analysis, offline."""
    from agent.cli_scope import service_names
    from agent.cli_sources import collect_options
    from agent.cli_sources import record as record_incident

    names = service_names(services)
    if (alert_file is None) == (not names):
        raise UsageError("give either --alert FILE or --service NAME (exactly one)")
    if since is not None and not names:
        raise UsageError("--since goes with --service")
    options = collect_options(cli_state(ctx).settings.collect, baseline, budget)
    if names:
        from agent.cli_scope import record_request

        span = (_utc(since), _utc(end))
        engine = engine_settings(ctx, lookback)
        record_request(cli_state(ctx).settings, names, span, engine, options, out)
        return
    assert alert_file is not None
    record_incident(
        ctx,
        alert_file,
        out,
        _utc(end),
        lookback,
        options,
    )


@click.command("check-sources", short_help="Say what each source holds in a time window.")
@click.option(
    "--at",
    type=click.DateTime(TIME_FORMATS),
    metavar="TIME",
    help="End of the window, e.g. an old alert's startsAt: 2024-05-14T10:40:00Z (default: now).",
)
@click.option(
    "--window",
    type=Duration(),
    default="1h",
    show_default=True,
    metavar="DURATION",
    help="How far back from TIME to look, e.g. 30m, 2h, 1h30m.",
)
@json_options("what each source holds")
@click.pass_context
def check_sources(
    ctx: click.Context, at: datetime | None, window: timedelta, json_out: JsonOut
) -> None:
    """Check the configured Prometheus/Elasticsearch: reachable, credentials accepted, and
    what each catalog query and log index holds in the window (series, samples, log lines).

    Exits 3 when a source is down or fails, 4 when every source answered but none holds data
    in the window (an old incident needs --at); with --json the JSON comes first."""
    from agent.cli_check import check_sources as run_checks
    from agent.cli_sources import CheckWindow

    moment = utc(at) if at is not None else datetime.now(UTC)
    run_checks(cli_state(ctx).settings, CheckWindow(end=moment, span=window), json_out)
