"""The ``rca`` commands that talk to live sources: ``analyze --alert``, ``record``,
``check-sources``, and loading a simulated incident into Prometheus and Elasticsearch.

Examples::

    RCA_PROMETHEUS_URL=http://localhost:9090 rca check-sources
    RCA_PROMETHEUS_URL=http://localhost:9090 rca analyze --alert alert.json
    rca record --alert alert.json --out incidents/2024-05-14-checkout && rca analyze incidents/...
    rca simulate --seed 7 --out /tmp/sim --load-prometheus /tmp/prom-data
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click
from pydantic import ValidationError

from agent.clikit import cli_state, stdout_console
from agent.config import EngineSettings, Settings
from agent.errors import ConfigError, SourceError, UsageError
from agent.models import Analysis
from agent.summarize import Summarizer
from connectors.alertmanager import AlertmanagerWebhook
from connectors.collect import Collected, Scope, collect
from connectors.settings import CollectSettings

INCIDENT_MINUTES = 30.0
if TYPE_CHECKING:
    from evals.simulator import Scenario

SIMULATED_LOG_INDEX = "logs-rca-simulated"
SERVICE_GRAPH_FAMILY = "traces_service_graph_request"


def read_alert(path: Path) -> AlertmanagerWebhook:
    """An Alertmanager webhook payload from a file, or a UsageError naming what is wrong."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read alert file {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"alert file {path} is not valid JSON: {exc}") from None
    try:
        return AlertmanagerWebhook.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise UsageError(
            f"alert file {path} is not an Alertmanager webhook payload: {loc}: {err['msg']}"
        ) from None


def alert_scope(
    alert: AlertmanagerWebhook,
    lookback_minutes: float,
    end: datetime | None = None,
    now: datetime | None = None,
) -> Scope:
    """All services under the configured selector, from ``lookback`` before the alert fired to
    ``end`` (default: now, at most ``INCIDENT_MINUTES`` after the alert, so that replaying an
    old alert looks at the incident and not at the months since)."""
    started = alert.starts_at
    moment = now or datetime.now(UTC)
    until = end or min(moment, started + timedelta(minutes=INCIDENT_MINUTES))
    incident_start = started - timedelta(minutes=lookback_minutes)
    if until <= incident_start:
        raise UsageError(
            f"--end {until.isoformat()} is not after the incident start "
            f"{incident_start.isoformat()}"
        )
    return Scope(services=(), incident_start=incident_start, end=until, alert=alert)


def collect_for_alert(
    settings: Settings,
    alert_file: Path,
    engine: EngineSettings,
    end: datetime | None,
    options: CollectSettings,
) -> Collected:
    if not settings.prometheus_url and not settings.elasticsearch_url:
        raise ConfigError(
            "--alert needs a live source: set RCA_PROMETHEUS_URL and/or RCA_ELASTICSEARCH_URL"
        )
    scope = alert_scope(read_alert(alert_file), engine.lookback_minutes, end)
    return collect(scope, settings, options)


def analyze_collected(
    collected: Collected, engine: EngineSettings, summarizer: Summarizer | None = None
) -> Analysis:
    from agent.engine.pipeline import analyze

    analysis = analyze(
        collected.snapshot, engine, summarizer=summarizer, source_failures=collected.failures
    )
    return analysis.model_copy(update={"notes": [*analysis.notes, *collected.notes]})


def collect_options(
    base: CollectSettings, baseline: float | None, budget: float | None
) -> CollectSettings:
    """The configured collection settings with the command line's overrides."""
    options = base
    if baseline is not None:
        options = options.model_copy(update={"baseline_minutes": baseline})
    if budget is not None:
        options = options.model_copy(update={"budget_s": budget})
    return options


def report_failures(collected: Collected) -> None:
    for failure in collected.failures:
        click.echo(f"rca: warning: {failure.source}: {failure.error}", err=True)


# --- rca record ----------------------------------------------------------------------------


def record(
    ctx: click.Context,
    alert_file: Path,
    out: Path,
    end: datetime | None,
    lookback: float | None,
    options: CollectSettings,
) -> None:
    from agent.clikit import engine_settings
    from agent.snapshot import write_snapshot

    engine = engine_settings(ctx, lookback)
    collected = collect_for_alert(cli_state(ctx).settings, alert_file, engine, end, options)
    report_failures(collected)
    path = write_snapshot(collected.snapshot, out)
    snapshot = collected.snapshot
    click.echo(
        f"wrote {len(snapshot.signals)} series and {len(snapshot.logs)} log lines of "
        f"{len(snapshot.services())} services to {path}; replay with: rca analyze {path}"
    )


# --- rca check-sources ------------------------------------------------------------------------


def check_sources(settings: Settings) -> None:
    """Run each catalog query once and print what it found; raise when a source is unusable."""
    from rich.table import Table

    if not settings.prometheus_url and not settings.elasticsearch_url:
        raise ConfigError(
            "no source configured: set RCA_PROMETHEUS_URL and/or RCA_ELASTICSEARCH_URL"
        )
    console = stdout_console()
    problems: list[str] = []
    if settings.prometheus_url:
        from connectors.prometheus import PrometheusSource

        try:
            rows = PrometheusSource(settings.prometheus_url, settings.prometheus).check()
        except SourceError as exc:
            problems.append(str(exc))
            console.print(f"prometheus {settings.prometheus_url}: FAILED: {exc.message}")
        else:
            table = Table(title=f"prometheus {settings.prometheus_url}", title_justify="left")
            for column in ("signal", "series", "services"):
                table.add_column(column)
            for row in rows:
                found = ", ".join(row.services[:6]) + (" ..." if len(row.services) > 6 else "")
                table.add_row(row.name, str(row.series), row.error or found or "-")
            console.print(table)
            rejected = [row.name for row in rows if row.error]
            if rejected:
                problems.append(f"prometheus: the server rejected {', '.join(rejected)}")
    if settings.elasticsearch_url:
        from connectors.elasticsearch import ElasticsearchSource

        try:
            line = ElasticsearchSource(settings.elasticsearch_url, settings.elasticsearch).check()
        except SourceError as exc:
            problems.append(str(exc))
            console.print(f"elasticsearch {settings.elasticsearch_url}: FAILED: {exc.message}")
        else:
            console.print(f"elasticsearch {settings.elasticsearch_url}: {line}")
    if problems:
        raise SourceError("check-sources", "; ".join(problems))


# --- rca simulate --load-prometheus / --load-elasticsearch -----------------------------------


def service_graph_lines(
    edges: list[tuple[str, str]], namespace: str, times: list[float]
) -> Iterator[str]:
    """The call graph as the OpenTelemetry servicegraph connector exports it (a counter per
    client/server pair), so the default catalog's topology query finds it."""
    yield f"# TYPE {SERVICE_GRAPH_FAMILY} counter"
    yield f"# HELP {SERVICE_GRAPH_FAMILY} Requests between two services."
    for caller, callee in edges:
        labels = f'client="{caller}",server="{callee}",namespace="{namespace}"'
        for count, moment in enumerate(times):
            yield f"{SERVICE_GRAPH_FAMILY}_total{{{labels}}} {count} {int(moment)}"


def scenario_openmetrics(scenario: Scenario, path: Path) -> Path:
    """The scenario's OpenMetrics export plus its call graph, as one file for promtool."""
    from evals.simulator.export import openmetrics_lines

    timeline = scenario.telemetry.timeline
    every = max(60, timeline.resolution)
    times = [float(t) for t in range(int(timeline.start), int(timeline.end) + 1, every)]
    edges = [(e.caller, e.callee) for e in scenario.graph.topology().edges]
    with path.open("w", encoding="utf-8") as fh:
        for line in openmetrics_lines(scenario.graph, scenario.telemetry):
            if line == "# EOF":
                break
            fh.write(line + "\n")
        for line in service_graph_lines(edges, scenario.graph.namespace, times):
            fh.write(line + "\n")
        fh.write("# EOF\n")
    return path


def load_prometheus(scenario: Scenario, data_dir: Path) -> None:
    from connectors.promtool import backfill

    with tempfile.TemporaryDirectory(prefix="rca-backfill-") as tmp:
        backfill(scenario_openmetrics(scenario, Path(tmp) / "metrics.om"), data_dir)
    click.echo(
        f"backfilled into {data_dir}; serve it with:\n"
        f"  prometheus --storage.tsdb.path={data_dir} --storage.tsdb.retention.time=100y "
        "--config.file=/etc/prometheus/prometheus.yml\n"
        "(a Prometheus already running on that directory picks the blocks up within minutes)"
    )


def load_elasticsearch(settings: Settings, url: str, logs_file: Path) -> None:
    from connectors.elasticsearch import ElasticsearchSource

    with logs_file.open(encoding="utf-8") as lines:
        docs = (json.loads(line) for line in lines if line.strip())
        loaded = ElasticsearchSource(url, settings.elasticsearch).bulk_load(
            docs, SIMULATED_LOG_INDEX
        )
    click.echo(f"loaded {loaded} log lines into {url}/{SIMULATED_LOG_INDEX}")
