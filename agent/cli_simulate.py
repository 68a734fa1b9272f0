"""``rca simulate`` and ``rca demo``: simulated incidents (with their ground truth) written
as snapshots, and the offline demo that analyzes one. Registered on the ``rca`` group in
:mod:`agent.cli`. Examples::

    rca demo
    rca simulate --seed 7 --fault memory_leak --out /tmp/incident
    rca simulate --seed 7 --realism --out /tmp/incident
    rca simulate --seed 7 --out /tmp/incident --load-prometheus /tmp/prom-data
"""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli_analyze import run_analysis, write_outputs
from agent.clikit import FAULT_CHOICES, cli_state, engine_settings, stdout_console
from agent.models import Analysis, FaultType
from agent.snapshot import Snapshot, load_snapshot

DEMO_SEED = 36  # a Prometheus-named shop incident whose series carry their units


@click.command(short_help="Write a simulated incident (with ground truth) as a snapshot.")
@click.option("--seed", type=int, required=True, help="Same seed, same incident.")
@click.option(
    "--fault", type=click.Choice(FAULT_CHOICES), help="Fault to inject (default: by seed)."
)
@click.option(
    "--services", type=click.IntRange(min=1), help="Services in a random graph (default: by seed)."
)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output dir."
)
@click.option(
    "--realism",
    is_flag=True,
    help="Add the realism profile drawn for this seed (client-side delay, levels only in the "
    "text, partial logs, an earlier fault, 1-minute data, shared trace ids); docs/simulator.md.",
)
@click.option(
    "--raw",
    is_flag=True,
    help="Also write raw/metrics.om (OpenMetrics) and raw/logs.ndjson (ECS) for real servers.",
)
@click.option(
    "--load-prometheus",
    "prometheus_dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DATA_DIR",
    help="Also backfill the metrics (and call graph) into this Prometheus TSDB with promtool.",
)
@click.option(
    "--load-elasticsearch",
    "elasticsearch_url",
    metavar="URL",
    help="Also bulk-load the logs (ECS) into this Elasticsearch.",
)
@click.pass_context
def simulate(
    ctx: click.Context,
    seed: int,
    fault: str | None,
    services: int | None,
    out: Path,
    realism: bool,
    raw: bool,
    prometheus_dir: Path | None,
    elasticsearch_url: str | None,
) -> None:
    """Simulate an incident and write it as a snapshot directory (with ground truth)."""
    from evals.simulator import simulate as run_simulation
    from evals.simulator import write_scenario

    scenario = run_simulation(
        seed, fault=FaultType(fault) if fault else None, services=services, realism=realism
    )
    loading = prometheus_dir is not None or elasticsearch_url is not None
    path = write_scenario(scenario, out, raw=raw or loading)
    truth = scenario.snapshot.ground_truth
    what = f"{truth.service} / {truth.fault_type.value}" if truth else "no ground truth"
    click.echo(f"wrote scenario seed={seed} ({what}) to {path}")
    if prometheus_dir is not None:
        from agent.cli_sources import load_prometheus

        load_prometheus(scenario, prometheus_dir)
    if elasticsearch_url is not None:
        from agent.cli_sources import load_elasticsearch

        settings = cli_state(ctx).settings
        load_elasticsearch(settings, elasticsearch_url, path / "raw" / "logs.ndjson")
    if loading:
        click.echo(f"then: rca analyze --alert {path / 'alert.json'}")


def _demo_verdict(analysis: Analysis, snapshot: Snapshot) -> str:
    truth = snapshot.ground_truth
    if truth is None:
        return "The simulator recorded no ground truth for this seed."
    top = analysis.candidates[0] if analysis.candidates else None
    said = f"{top.service} / {top.fault_type.value}" if top else "nothing"
    verdict = "matches" if top and top.service == truth.service else "does not match"
    return (
        f"Simulator ground truth: {truth.service} / {truth.fault_type.value} — "
        f"the top candidate ({said}) {verdict}."
    )


@click.command(short_help="Offline demo: simulate an incident, analyze it, write a report.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Where to write the snapshot, report.md and evidence.png.",
)
@click.option("--seed", type=int, default=DEMO_SEED, show_default=True, help="Simulator seed.")
@click.pass_context
def demo(ctx: click.Context, out: Path, seed: int) -> None:
    """Simulate an incident on the shop topology, analyze it, write a report and a chart.

    Offline: no server, no API key.
    """
    from agent.report import print_report
    from evals.simulator import simulate as run_simulation
    from evals.simulator import write_scenario

    scenario = run_simulation(seed)
    snapshot_dir = write_scenario(scenario, out / "snapshot")
    snapshot = load_snapshot(snapshot_dir)
    blind = snapshot.model_copy(update={"ground_truth": None})
    analysis = run_analysis(blind, engine_settings(ctx, None))
    console = stdout_console()
    print_report(analysis, console)
    console.print(_demo_verdict(analysis, snapshot), style="bold")
    (out / "analysis.json").write_text(analysis.model_dump_json(indent=2) + "\n", encoding="utf-8")
    write_outputs(analysis, blind, out / "report.md", out / "evidence.png")
    console.print(
        f"\nWrote {out / 'report.md'}, {out / 'evidence.png'} and {out / 'analysis.json'}.\n"
        f"The incident itself is in {snapshot_dir}; re-run with: rca analyze {snapshot_dir}"
    )
